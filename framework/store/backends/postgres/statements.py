"""The event store's SQL: its appends (a statement per way of giving the expected
version), the head lock of a COPY append, and its reads, prepared once per store.

Offsets are taken with the log's own head-row update and pages read with the log's
own clause (``framework.log.backends.postgres.statements``): the store writes the
log's rows natively, so the two must take and read offsets the same way.
"""

from __future__ import annotations

from psycopg import sql

from framework.log.backends.postgres.statements import PAGE, take_offsets
from framework.postgres.database import Database
from framework.postgres.prepared import (
    BYTEA,
    BYTEA_ARRAY,
    INT4,
    INT8,
    INT8_ARRAY,
    UUID,
    UUID_ARRAY,
    Prepared,
)
from framework.store.backends.postgres.rows import META_VALUE_AT, READ_COLUMNS

#: How the expected version of an append is given: ``any`` (None), ``new`` (0) or
#: ``at`` (a version that must exist).
KINDS = ("any", "new", "at")
#: The parameter types of the single-event append (``Prepared``). ``key`` is the
#: stream id in UTF-8, ``headers`` the record's headers in the log's encoding: the
#: packed ``$m`` metadata first, then the user headers.
APPEND_TYPES = {
    "topic": INT4,
    "partition": INT4,
    "expected": INT4,
    "key": BYTEA,
    "ts": INT8,
    "data": BYTEA,
    "headers": BYTEA,
    "id": UUID,
    "stamp": INT8,
}
#: The parameter types of the multi-event append: the events' fields as arrays.
APPEND_MANY_TYPES = {
    **APPEND_TYPES,
    "n": INT8,
    "ts": INT8_ARRAY,
    "data": BYTEA_ARRAY,
    "headers": BYTEA_ARRAY,
    "id": UUID_ARRAY,
}
#: The columns a COPY append writes, in this order, and their types.
COPY_COLUMNS = sql.SQL(
    'topic_id, partition, "offset", timestamp_ms, key, value, headers, '
    "stream_version, event_id"
)
COPY_TYPES = (
    "int4",
    "int4",
    "int8",
    "int8",
    "bytea",
    "bytea",
    "bytea",
    "int4",
    "uuid",
)
#: The columns of a full read, in the order ``rows.stored_events`` unpacks them.
EVENT_COLUMNS = sql.SQL(", ".join(READ_COLUMNS))
#: Where the stream version and the stamp sit in a row's headers, counted from 1
#: as SQL does: the ``$m`` value's first and third fields.
_VERSION_AT = META_VALUE_AT + 1
_STAMP_AT = META_VALUE_AT + 1 + 4 + 2


def stamp_from_text(raw: bytes) -> int:
    """A stamp returned as the header's eight bytes, in bytea's text form
    (``\\x`` and 16 hex digits, big-endian)."""
    return int(raw[2:], 16)


def kind_of(expected: int | None) -> str:
    """How an expected version is given: ``any`` (None), ``new`` (0) or ``at``."""
    return "any" if expected is None else "new" if expected == 0 else "at"


class StoreStatements:
    """Every statement of one store's schema, built and named once."""

    def __init__(self, db: Database) -> None:
        t = db.table
        #: (single event?, kind) -> the append statement.
        self.append = {
            (single, kind): append_statement(db, single=single, kind=kind)
            for single in (True, False)
            for kind in KINDS
        }
        #: kind -> the single-event append, run below the cursor.
        self.append_one = {
            kind: Prepared(
                f"fw_append_{kind}",
                self.append[True, kind],
                APPEND_TYPES,
                (int, int, stamp_from_text)
                if kind == "any"
                else (int, stamp_from_text),
            )
            for kind in KINDS
        }
        #: The same for several events, their fields as binary arrays.
        self.append_many = {
            kind: Prepared(
                f"fw_append_many_{kind}",
                self.append[False, kind],
                APPEND_MANY_TYPES,
                (int, int, int),
            )
            for kind in KINDS
        }
        #: kind -> the head lock of a COPY append.
        self.take = {
            kind: Prepared(
                f"fw_take_{kind}",
                take_statement(db, kind),
                {**APPEND_TYPES, "n": INT8},
                (int, int, int),
            )
            for kind in KINDS
        }
        self.copy = (
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
            .format(t("records"), COPY_COLUMNS)
            .as_bytes(None)
        )
        self.read_stream = Prepared(
            "fw_read_stream",
            sql.SQL(
                "SELECT {columns} FROM {records} "
                "WHERE topic_id = %(topic)s AND key = %(key)s "
                "AND stream_version BETWEEN %(first)s AND %(last)s "
                "ORDER BY stream_version"
            )
            .format(columns=EVENT_COLUMNS, records=t("records"))
            .as_bytes(None),
            {"topic": INT4, "key": BYTEA, "first": INT4, "last": INT4},
        )
        #: The two columns a replay reads: the name and schema version are read
        #: from the front of the headers (``rows.stream_data``); the event ids,
        #: positions and the rest of the metadata are not loaded into Python
        #: objects.
        self.read_stream_data = Prepared(
            "fw_read_stream_data",
            sql.SQL(
                "SELECT headers, value FROM {records} "
                "WHERE topic_id = %(topic)s AND key = %(key)s "
                "AND stream_version BETWEEN 1 AND %(last)s "
                "ORDER BY stream_version"
            )
            .format(records=t("records"))
            .as_bytes(None),
            {"topic": INT4, "key": BYTEA, "last": INT4},
        )
        #: One page of a partition; ``iter_partition`` streams the same statement
        #: through psycopg (``read_partition_text``).
        self.read_partition_text = (
            sql.SQL("SELECT {columns} FROM {records} {page}")
            .format(columns=EVENT_COLUMNS, records=t("records"), page=PAGE)
            .as_bytes(None)
        )
        self.read_partition = Prepared(
            "fw_read_partition",
            self.read_partition_text,
            {"topic": INT4, "partition": INT4, "offset": INT8, "limit": INT8},
        )
        self.version = Prepared(
            "fw_stream_version",
            sql.SQL("SELECT {} FROM {} WHERE topic_id = %(topic)s AND {}")
            .format(_MAX_VERSION, t("records"), _OF_STREAM)
            .as_bytes(None),
            {"topic": INT4, "key": BYTEA},
            (int,),
        )
        self.by_ids = Prepared(
            "fw_events_by_id",
            sql.SQL(
                "SELECT event_id, key, stream_version, partition, "
                '"offset" FROM {} '
                "WHERE topic_id = %(topic)s AND event_id = ANY(%(ids)s::uuid[])"
            )
            .format(t("records"))
            .as_bytes(None),
            {"topic": INT4, "ids": UUID_ARRAY},
        )


#: The stream's rows. ``stream_version IS NOT NULL`` is the unique index's
#: predicate, spelled out where nothing else in the statement implies it, so that
#: the planner may use the index (records the log alone wrote have a key too).
_OF_STREAM = sql.SQL("key = %(key)s AND stream_version IS NOT NULL")
#: A stream's current version, 0 without events.
_MAX_VERSION = sql.SQL("coalesce(max(stream_version), 0)")


def _version_guard(records: sql.Composable, kind: str) -> sql.Composable:
    """For ``kind == "at"``: version ``expected`` must exist. Checked in the head
    row's UPDATE, so that a miss locks nothing and takes no offsets (an EXISTS in
    the INSERT would leave a gap)."""
    if kind != "at":
        return sql.SQL("")
    return sql.SQL(
        " AND EXISTS (SELECT 1 FROM {} WHERE topic_id = %(topic)s "
        "AND key = %(key)s AND stream_version = %(expected)s::integer)"
    ).format(records)


def _base_version(records: sql.Composable, kind: str) -> sql.Composable:
    """The version the new events follow. With no expected version (``any``) the
    statement's snapshot may predate the writer it waited for; the unique index
    then refuses the rows and the store tries again."""
    if kind != "any":
        return sql.SQL("%(expected)s::integer")
    return sql.SQL("(SELECT {} FROM {} WHERE topic_id = %(topic)s AND {})").format(
        _MAX_VERSION, records, _OF_STREAM
    )


def _stamps(db: Database, count: sql.Composable) -> tuple[sql.Composed, sql.Composed]:
    """The head row's ``SET`` and ``RETURNING`` parts that stamp an append: its
    first stamp is above the partition's last, the causes' (``%(stamp)s``) and the
    schema's ``stamps`` sequence, so stamps grow along each partition, and order
    all events as the sequence handed them out (a global order)."""
    sequence = sql.Literal(db.table("stamps").as_string(None))
    return (
        sql.SQL(
            ", last_stamp = greatest(last_stamp + 1, %(stamp)s::bigint, "
            "nextval({}::regclass)) + {} - 1"
        ).format(sequence, count),
        sql.SQL(", last_stamp - {} + 1 AS stamp").format(count),
    )


def _with_stamp(headers: sql.Composable, stamp: sql.Composable) -> sql.Composable:
    """``headers`` with ``stamp`` written into its ``$m`` header (big-endian, as
    ``int8send`` writes it): the stamp is known only under the head row's lock."""
    return sql.SQL("overlay({} placing int8send(({})::bigint) from {} for 8)").format(
        headers, stamp, sql.Literal(_STAMP_AT)
    )


def _with_version(headers: sql.Composable, version: sql.Composable) -> sql.Composable:
    """``headers`` with ``version`` written into its ``$m`` header (big-endian):
    an append without an expected version learns its versions on the server, so
    its client packs placeholders there (``params.append_params``)."""
    return sql.SQL("overlay({} placing int4send(({})::integer) from {} for 4)").format(
        headers, version, sql.Literal(_VERSION_AT)
    )


def append_statement(db: Database, *, single: bool, kind: str) -> bytes:
    """The one-statement append: lock the head row, check, insert, return the
    first offset and version (no row when the expected version is missing).

    ``kind`` is how the expected version is given (``kind_of``). A statement per
    kind, because a generic plan cannot skip the parts a parameter makes
    unnecessary.
    """
    records = db.table("records")
    count = sql.SQL("1") if single else sql.SQL("%(n)s::bigint")
    base: sql.Composable
    follows: sql.Composable
    if kind == "any":
        # The versions are known only here, so they go into the headers here.
        base = sql.SQL(", (SELECT {} AS v) AS b").format(_base_version(records, kind))
        follows = sql.SQL("b.v")
    else:
        base = sql.SQL("")
        follows = _base_version(records, kind)
    if single:
        version = sql.SQL("{} + 1").format(follows)
        stamp: sql.Composable = sql.SQL("head.stamp")
        headers: sql.Composable = sql.SQL("%(headers)s::bytea")
        template = sql.SQL(
            "SELECT head.base, %(ts)s::bigint, %(data)s::bytea, {headers}, "
            "{version}, %(id)s::uuid FROM head{base}"
        )
    else:
        version = sql.SQL("{} + e.i").format(follows)
        stamp = sql.SQL("head.stamp + e.i - 1")
        headers = sql.SQL("e.headers")
        template = sql.SQL(
            "SELECT head.base + e.i - 1, e.ts, e.data, {headers}, {version}, e.id "
            "FROM head{base}, unnest(%(ts)s::bigint[], %(data)s::bytea[], "
            "%(headers)s::bytea[], %(id)s::uuid[]) "
            "WITH ORDINALITY AS e(ts, data, headers, id, i)"
        )
    headers = _with_stamp(headers, stamp)
    if kind == "any":
        headers = _with_version(headers, version)
    source = template.format(headers=headers, version=version, base=base)
    # A single event with an expected version is written as that version + 1:
    # returning it too cost the server 6,000 of 256,000 instructions per append
    # (``benchmarks.pg_instructions``).
    # The stamp comes back from the row's own headers: cheaper for the server
    # than a look into the head row's CTE.
    stamp_back = sql.SQL("substring(headers from {} for 8)").format(
        sql.Literal(_STAMP_AT)
    )
    returning = (
        sql.SQL('"offset", {}').format(stamp_back)
        if single and kind != "any"
        else sql.SQL('"offset", stream_version, {}').format(stamp_back)
        if single
        else sql.SQL('"offset", stream_version')
    )
    stamp_set, stamp_returned = _stamps(db, count)
    insert = sql.SQL(
        """WITH head AS ({taken}){written}
            INSERT INTO {records} ("offset", timestamp_ms, value, headers,
                stream_version, event_id, topic_id, partition, key)
            SELECT s.*, %(topic)s, %(partition)s, %(key)s FROM ({source}) AS s
            RETURNING {returning}{tail}"""
    )
    return insert.format(
        taken=take_offsets(
            db.table("partitions"),
            count,
            _version_guard(records, kind),
            stamp_returned,
            stamp_set,
        ),
        written=sql.SQL("") if single else sql.SQL(", written AS ("),
        tail=sql.SQL("")
        if single
        else sql.SQL(
            ')\n        SELECT min("offset"), min(stream_version), '
            "(SELECT stamp FROM head) FROM written"
        ),
        records=records,
        source=source,
        returning=returning,
    ).as_bytes(None)


def take_statement(db: Database, kind: str) -> bytes:
    """The head lock of a COPY append: take ``n`` offsets (no row when the
    expected version is missing) and return the first offset, version and
    stamp."""
    records = db.table("records")
    count = sql.SQL("%(n)s::bigint")
    stamp_set, stamp_returned = _stamps(db, count)
    version = sql.SQL(", {} + 1{}").format(_base_version(records, kind), stamp_returned)
    return take_offsets(
        db.table("partitions"),
        count,
        _version_guard(records, kind),
        version,
        stamp_set,
    ).as_bytes(None)
