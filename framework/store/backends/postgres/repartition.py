"""Repartitioning on PostgreSQL: the events topic's rows copied into a new topic
of another partition count with one ``INSERT ... SELECT``, inside the caller's
transaction, and the switch of the topics' names that makes the store read it.

The rows are copied column for column, whatever columns the log and the store
give ``records`` (only the topic, partition and offset change), so the copy
never decodes or re-encodes an event.
"""

from __future__ import annotations

import attrs
import psycopg
from psycopg import sql

from framework.errors import ConfigurationError
from framework.log.partitioner import partition_for
from framework.store.backends.postgres.rows import STAMP_AT

__all__ = ["TopicRow", "copy_rows", "lock_partitions", "switch_names", "topic_row"]


@attrs.frozen(kw_only=True)
class TopicRow:
    """A topic's row: its id, name and partition count."""

    topic_id: int
    name: str
    partitions: int


def _t(schema: str, table: str) -> sql.Composable:
    return sql.Identifier(schema, table)


def topic_row(
    cur: psycopg.Cursor[tuple[object, ...]], schema: str, name: str
) -> TopicRow | None:
    """The topic called ``name``, or None."""
    row = cur.execute(
        sql.SQL("SELECT topic_id, partitions FROM {} WHERE name = %s").format(
            _t(schema, "topics")
        ),
        (name,),
    ).fetchone()
    if row is None:
        return None
    return TopicRow(topic_id=int(str(row[0])), name=name, partitions=int(str(row[1])))


def lock_partitions(
    cur: psycopg.Cursor[tuple[object, ...]], schema: str, topic: TopicRow
) -> dict[int, int]:
    """Lock every head row of ``topic`` until the transaction ends (an append
    updates its partition's head row, so none runs meanwhile) and return the
    partitions' end offsets. Raises ``ConfigurationError`` naming the first
    partition another transaction holds (the transaction is then aborted)."""
    ends = {}
    statement = sql.SQL(
        "SELECT next_offset FROM {} WHERE topic_id = %s AND partition = %s "
        "FOR UPDATE NOWAIT"
    ).format(_t(schema, "partitions"))
    for partition in range(topic.partitions):
        try:
            row = cur.execute(statement, (topic.topic_id, partition)).fetchone()
        except psycopg.errors.LockNotAvailable:
            raise ConfigurationError(
                f"partition {partition} of {topic.name!r} in schema {schema!r} is "
                "being written (another transaction holds its head row); stop the "
                "applications writing to the store, then repartition again"
            ) from None
        assert row is not None  # every partition has its row from creation
        ends[partition] = int(str(row[0]))
    return ends


def copy_rows(
    cur: psycopg.Cursor[tuple[object, ...]],
    schema: str,
    source: TopicRow,
    target_name: str,
    partitions: int,
) -> tuple[TopicRow, dict[int, int]]:
    """Create ``target_name`` with ``partitions`` partitions (``source``'s other
    settings) and copy every row of ``source`` into the partition of its key,
    numbered from 0 in the order of (old partition, offset), so that each
    stream keeps its order. Returns the new topic and its end offsets.

    Raises ``ConfigurationError`` for a row without a key. PostgreSQL leaves no
    void records (its transactions are its own), so every row is copied.
    """
    topics, parts, records = (
        _t(schema, "topics"),
        _t(schema, "partitions"),
        _t(schema, "records"),
    )
    keyless = cur.execute(
        sql.SQL(
            'SELECT partition, "offset" FROM {} WHERE topic_id = %s AND key IS NULL '
            "LIMIT 1"
        ).format(records),
        (source.topic_id,),
    ).fetchone()
    if keyless is not None:
        raise ConfigurationError(
            f"{source.name}/{keyless[0]} offset {keyless[1]} has no key, so its "
            "stream's partition is unknown: only keyed topics (the events topic) "
            "can be repartitioned"
        )
    row = cur.execute(
        sql.SQL(
            "INSERT INTO {} (name, partitions, config) SELECT %s, %s, "
            "jsonb_set(config, '{{partitions}}', to_jsonb(%s::integer)) "
            "FROM {} WHERE topic_id = %s RETURNING topic_id"
        ).format(topics, topics),
        (target_name, partitions, partitions, source.topic_id),
    ).fetchone()
    assert row is not None
    target = TopicRow(
        topic_id=int(str(row[0])), name=target_name, partitions=partitions
    )
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (topic_id, partition) "
            "SELECT %s, p FROM generate_series(0, %s - 1) AS p"
        ).format(parts),
        (target.topic_id, partitions),
    )
    # murmur2 runs here, once per stream, rather than in SQL.
    keys = [
        bytes(k)
        for (k,) in cur.execute(
            sql.SQL("SELECT DISTINCT key FROM {} WHERE topic_id = %s").format(records),
            (source.topic_id,),
        ).fetchall()
        if isinstance(k, bytes | memoryview)
    ]
    columns = [
        sql.Identifier(str(name))
        for (name,) in cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema "
            "= %s AND table_name = 'records' AND is_generated = 'NEVER' AND "
            "column_name NOT IN ('topic_id', 'partition', 'offset') "
            "ORDER BY ordinal_position",
            (schema,),
        ).fetchall()
    ]
    cur.execute(
        sql.SQL(
            """INSERT INTO {records} (topic_id, partition, "offset", {columns})
            SELECT %(target)s, k.partition, row_number() OVER (
                       PARTITION BY k.partition
                       ORDER BY substring(r.headers from {stamp_at} for 8),
                                r.partition, r."offset"
                   ) - 1, {selected}
            FROM {records} AS r
            JOIN unnest(%(keys)s::bytea[], %(partitions)s::integer[])
                 AS k(key, partition) ON k.key = r.key
            WHERE r.topic_id = %(source)s"""
        ).format(
            records=records,
            # In Lamport-stamp order (the big-endian stamp compares as bytes),
            # so that stamps grow along every new partition.
            stamp_at=sql.Literal(STAMP_AT + 1),
            columns=sql.SQL(", ").join(columns),
            selected=sql.SQL(", ").join(sql.SQL("r.") + c for c in columns),
        ),
        {
            "target": target.topic_id,
            "source": source.topic_id,
            "keys": keys,
            "partitions": [partition_for(k, partitions) for k in keys],
        },
    )
    ends = dict.fromkeys(range(partitions), 0)
    for partition, count in cur.execute(
        sql.SQL(
            "UPDATE {parts} AS p SET next_offset = c.n FROM ("
            "SELECT partition, count(*) AS n FROM {records} WHERE topic_id = %s "
            "GROUP BY partition) AS c "
            "WHERE p.topic_id = %s AND p.partition = c.partition "
            "RETURNING p.partition, p.next_offset"
        ).format(parts=parts, records=records),
        (target.topic_id, target.topic_id),
    ).fetchall():
        ends[int(str(partition))] = int(str(count))
    return target, ends


def switch_names(
    cur: psycopg.Cursor[tuple[object, ...]],
    schema: str,
    source: TopicRow,
    target: TopicRow,
    kept_as: str,
) -> None:
    """Give ``target`` the name ``source`` had, which a store opens by, and keep
    ``source`` as ``kept_as``; in the caller's transaction."""
    statement = sql.SQL("UPDATE {} SET name = %s WHERE topic_id = %s").format(
        _t(schema, "topics")
    )
    cur.execute(statement, (kept_as, source.topic_id))
    cur.execute(statement, (source.name, target.topic_id))
