"""The SQL of the log's tables that more than one writer or reader runs: written
once here, so that the log and the event store (which writes the same rows
natively) take offsets and read pages with the same statements."""

from __future__ import annotations

from psycopg import sql

#: An empty part of a statement.
NOTHING = sql.SQL("")

#: The columns of a log record, in ``LogRecord``'s order after topic and partition.
RECORD_COLUMNS = sql.SQL('"offset", timestamp_ms, key, value, headers')

#: The columns a log append writes, in this order.
APPEND_COLUMNS = sql.SQL(
    'topic_id, partition, "offset", timestamp_ms, key, value, headers'
)

#: One page of a partition from an offset on: keyset pagination on the primary key.
PAGE = sql.SQL(
    "WHERE topic_id = %(topic)s AND partition = %(partition)s "
    'AND "offset" >= %(offset)s ORDER BY "offset" LIMIT %(limit)s'
)

#: The log's own check of an expected end offset, made under the head row's lock.
EXPECTED_END = sql.SQL(
    " AND (%(expected)s::bigint IS NULL OR next_offset = %(expected)s::bigint)"
)


def take_offsets(
    partitions: sql.Composable,
    count: sql.Composable,
    guard: sql.Composable = NOTHING,
    also: sql.Composable = NOTHING,
    sets: sql.Composable = NOTHING,
) -> sql.Composed:
    """Take ``count`` offsets of a partition: lock its head row, move
    ``next_offset`` on (and set ``sets``, ``, column = ...``) and return the first
    taken (``base``), then ``also``.

    The row lock is held to the commit, so a partition commits in offset order.
    ``guard`` (``AND ...``) is checked under the lock: when it fails, no row comes
    back and nothing is taken.
    """
    return sql.SQL(
        "UPDATE {partitions} SET next_offset = next_offset + {count}{sets} "
        "WHERE topic_id = %(topic)s AND partition = %(partition)s{guard} "
        "RETURNING next_offset - {count} AS base{also}"
    ).format(partitions=partitions, count=count, guard=guard, also=also, sets=sets)
