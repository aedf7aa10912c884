"""``PostgresEventStore``: the event store natively on PostgreSQL.

The database enforces the promises in the statement that writes: stream id +
version is unique (optimistic concurrency), the event id is unique (idempotent
retries), and offsets are taken under the partition's row lock held to the commit
(gapless per partition). Several streams are one transaction, locking partitions
in ascending order so that writers cannot deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, cast

from psycopg import sql

from framework.errors import ConcurrencyError, CorruptLogError, StoreError
from framework.log.backends.postgres import PostgresLog
from framework.log.config import TopicConfig
from framework.log.partitioner import partition_for
from framework.postgres.database import Cursor, Database, fetchall_on, fetchone_on
from framework.postgres.errors import DuplicateRowError, PreparedStatementLostError
from framework.postgres.headers import decode_user_headers, encode_user_headers
from framework.postgres.prepared import (
    BYTEA,
    BYTEA_ARRAY,
    INT4,
    INT4_ARRAY,
    INT8,
    INT8_ARRAY,
    TEXT,
    TEXT_ARRAY,
    UUID,
    UUID_ARRAY,
    Prepared,
)
from framework.postgres.url import PostgresURL
from framework.store.event_store import events_topic
from framework.store.events import Appended, NewEvent, StoredEvent
from framework.store.limits import check_append, check_appends, check_versions
from framework.store.ports import StreamAppend
from framework.store.position import Position

logger = logging.getLogger("framework.store")

#: How often an append is retried after a conflict that turned out not to be one
#: (a concurrent writer committed while this statement waited for the lock).
_MAX_TRIES = 5
_MAX_VERSION = 2**31 - 1
#: From this many events a stream's append locks the head and COPYs its rows in,
#: instead of one INSERT ... unnest of binary arrays: four round trips more, which
#: the batch insert repays only for long appends (measured on two cores: unnest
#: 1.7x faster at 16 events, 1.36x at 100; COPY 1.14x faster at 300, even at
#: 1,000).
COPY_FROM = 200
#: The events topic's partitions when the store creates it unconfigured (an
#: existing topic keeps its own count). Writers of one partition wait for each
#: other's flush, so more partitions let concurrent writers commit side by side;
#: projections read only the partitions that moved, so they do not pay per
#: partition (docs/postgres.md has the measurements).
DEFAULT_PARTITIONS = 64
#: The parameter types of the single-event append (``Prepared``).
_APPEND_TYPES = {
    "topic": INT4,
    "partition": INT4,
    "expected": INT4,
    "stream": TEXT,
    "ts": INT8,
    "data": BYTEA,
    "headers": BYTEA,
    "id": UUID,
    "name": TEXT,
    "version": INT4,
    "corr": TEXT,
    "caus": TEXT,
}
#: The parameter types of the multi-event append: the events' fields as arrays.
_APPEND_MANY_TYPES = {
    **_APPEND_TYPES,
    "n": INT8,
    "ts": INT8_ARRAY,
    "data": BYTEA_ARRAY,
    "headers": BYTEA_ARRAY,
    "id": UUID_ARRAY,
    "name": TEXT_ARRAY,
    "version": INT4_ARRAY,
    "corr": TEXT_ARRAY,
    "caus": TEXT_ARRAY,
}
#: Rows per network chunk when a page streams in.
_STREAM_ROWS = 500
#: Stands for "no headers" in every event read without any (read-only by type).
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
#: The COPY columns' types, in ``_copy_statement``'s order.
_COPY_TYPES = (
    "int4",
    "int4",
    "int8",
    "int8",
    "bytea",
    "bytea",
    "text",
    "int4",
    "uuid",
    "text",
    "int4",
    "text",
    "text",
)
_new_tuple = tuple.__new__


class _NotWritten(Exception):
    """The expected version was not found; abort the transaction."""

    def __init__(self, index: int) -> None:
        self.index = index


class _Conflict(Exception):
    def __init__(self, index: int, cause: DuplicateRowError) -> None:
        self.index = index
        self.cause = cause


class AppendHook(Protocol):
    """Work that must commit or fail with an append: inline projections."""

    def in_transaction(self, cursor: Cursor, written: Sequence[Appended]) -> None:
        """Called inside the append's transaction, after its rows are written and
        before the commit, with the written partitions' heads still locked (so
        every earlier offset of them is committed and stable). Raising aborts the
        append: nothing is written."""
        ...

    def committed(self, written: Sequence[Appended]) -> None:
        """Called after the append's commit (for announcements)."""
        ...


class PostgresEventStore:
    """An ``EventStore`` in a PostgreSQL schema; thread- and process-safe.

    ``append`` is one statement (one round trip): it locks the partition head,
    checks the expected version, inserts and commits; a stream of ``COPY_FROM``
    events or more takes the head and COPYs its rows in one transaction instead.
    Loading a stream is an index lookup on (stream id, version).
    """

    def __init__(
        self,
        url: PostgresURL | str | Database | None = None,
        *,
        topic: str = "events",
        config: TopicConfig | None = None,
    ) -> None:
        self._owns_db = not isinstance(url, Database)
        self.db = url if isinstance(url, Database) else Database(url)
        try:
            self.log = PostgresLog(self.db)
            self.config = events_topic(
                self.log, topic, config, default_partitions=DEFAULT_PARTITIONS
            )
        except BaseException:
            if self._owns_db:
                self.db.close()
            raise
        self.topic = topic
        self.partitions = self.config.partitions
        #: ``append_streams`` is one transaction.
        self.atomic_multi_stream = True
        self._topic_id = self.log.topic_id(topic)
        self._hooks: list[AppendHook] = []
        t = self.db.table
        #: (single event?, "any" | "new" | "at") -> the append statement.
        self._q_append = {
            (single, kind): _append_statement(self.db, single=single, kind=kind)
            for single in (True, False)
            for kind in ("any", "new", "at")
        }
        #: "any" | "new" | "at" -> the single-event append, run below the cursor.
        self._p_append_one = {
            kind: Prepared(
                f"fw_append_{kind}",
                self._q_append[True, kind],
                _APPEND_TYPES,
                (int, int) if kind == "any" else (int,),
            )
            for kind in ("any", "new", "at")
        }
        #: The same for several events, their fields as binary arrays.
        self._p_append_many = {
            kind: Prepared(
                f"fw_append_many_{kind}",
                self._q_append[False, kind],
                _APPEND_MANY_TYPES,
                (int, int),
            )
            for kind in ("any", "new", "at")
        }
        #: "any" | "new" | "at" -> the head lock of a COPY append.
        self._p_take = {
            kind: Prepared(
                f"fw_take_{kind}",
                _take_statement(self.db, kind),
                {**_APPEND_TYPES, "n": INT8},
                (int, int),
            )
            for kind in ("any", "new", "at")
        }
        self._q_copy = (
            sql.SQL(
                'COPY {} (topic_id, partition, "offset", timestamp_ms, value, headers, '
                "stream_id, stream_version, event_id, event_name, event_version, "
                "correlation_id, causation_id) FROM STDIN (FORMAT BINARY)"
            )
            .format(t("records"))
            .as_bytes(None)
        )
        columns = sql.SQL(
            "event_id, stream_id, stream_version, event_name, event_version, value, "
            'timestamp_ms, correlation_id, causation_id, headers, partition, "offset"'
        )
        self._q_read_stream = (
            sql.SQL(
                "SELECT {columns} FROM {records} "
                "WHERE topic_id = %(topic)s AND stream_id = %(stream)s "
                "AND stream_version BETWEEN %(first)s AND %(last)s "
                "ORDER BY stream_version"
            )
            .format(columns=columns, records=t("records"))
            .as_bytes(None)
        )
        self._p_read_stream = Prepared(
            "fw_read_stream",
            self._q_read_stream,
            {"topic": INT4, "stream": TEXT, "first": INT4, "last": INT4},
        )
        #: The three columns a replay reads: a 20-event stream in 148 µs against
        #: 181 for the full read (the event ids, positions and metadata are not
        #: sent, nor loaded into Python objects).
        self._p_read_stream_data = Prepared(
            "fw_read_stream_data",
            sql.SQL(
                "SELECT event_name, event_version, value FROM {records} "
                "WHERE topic_id = %(topic)s AND stream_id = %(stream)s "
                "AND stream_version BETWEEN 1 AND %(last)s "
                "ORDER BY stream_version"
            )
            .format(records=t("records"))
            .as_bytes(None),
            {"topic": INT4, "stream": TEXT, "last": INT4},
        )
        self._p_read_partition = Prepared(
            "fw_read_partition",
            sql.SQL(
                "SELECT {columns} FROM {records} "
                "WHERE topic_id = %(topic)s AND partition = %(partition)s "
                'AND "offset" >= %(offset)s ORDER BY "offset" LIMIT %(limit)s'
            )
            .format(columns=columns, records=t("records"))
            .as_bytes(None),
            {"topic": INT4, "partition": INT4, "offset": INT8, "limit": INT8},
        )
        #: The same for ``iter_partition``, which streams its rows through psycopg.
        self._q_read_partition = (
            sql.SQL(
                "SELECT {columns} FROM {records} "
                "WHERE topic_id = %s AND partition = %s "
                'AND "offset" >= %s ORDER BY "offset" LIMIT %s'
            )
            .format(columns=columns, records=t("records"))
            .as_bytes(None)
        )
        self._p_version = Prepared(
            "fw_stream_version",
            sql.SQL(
                "SELECT coalesce(max(stream_version), 0) FROM {} "
                "WHERE topic_id = %(topic)s AND stream_id = %(stream)s"
            )
            .format(t("records"))
            .as_bytes(None),
            {"topic": INT4, "stream": TEXT},
            (int,),
        )
        self._p_by_ids = Prepared(
            "fw_events_by_id",
            sql.SQL(
                "SELECT event_id, stream_id, stream_version, partition, "
                '"offset" FROM {} '
                "WHERE topic_id = %(topic)s AND event_id = ANY(%(ids)s::uuid[])"
            )
            .format(t("records"))
            .as_bytes(None),
            {"topic": INT4, "ids": UUID_ARRAY},
        )

    def partition_of(self, stream_id: str) -> int:
        return partition_for(stream_id, self.partitions)

    def add_hook(self, hook: AppendHook) -> None:
        """Run ``hook`` inside every append's transaction from now on (every
        append then takes the transaction path, a round trip or two more)."""
        self._hooks.append(hook)

    # -- writing ---------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> Appended:
        """Append ``events`` as versions ``expected_version + 1 ...`` in one
        statement. ``expected_version`` 0 means the stream must not exist, ``None``
        any version.

        Raises ``ConcurrencyError`` (nothing written) if the stream is at another
        version. If these event ids are already stored as consecutive versions of
        this stream (a retry), nothing is written and the original positions come
        back with ``already_stored=True``.
        """
        if len(events) < COPY_FROM and not self._hooks:
            # The usual save, one statement in autocommit, without the bookkeeping
            # that keeps several streams apart, nor its objects (with them, and
            # with Python-level parameter encoders, a save cost its writer 121,070
            # instructions against 92,786). Whatever it cannot decide alone (a
            # conflict, a retry of stored events, a missing version) goes the
            # general way, which tries the statement again and sorts it out.
            check_append(stream_id, events, expected_version)
            partition = self.partition_of(stream_id)
            statements = self._p_append_one if len(events) == 1 else self._p_append_many
            try:
                row = self.db.fetchone_prepared(
                    statements[_kind(expected_version)],
                    self._params(stream_id, events, expected_version, partition),
                )
            except DuplicateRowError:
                row = None
            if row is not None and row[0] is not None:
                appended = _appended(
                    stream_id, events, expected_version, partition, row
                )
                notifier = self.db.notifier
                if notifier is not None:
                    notifier.publish(self.topic, partition, appended.last_offset)
                return appended
        return self.append_streams(
            [
                StreamAppend(
                    stream_id=stream_id,
                    events=events,
                    expected_version=expected_version,
                )
            ]
        )[0]

    def append_streams(self, appends: Sequence[StreamAppend]) -> list[Appended]:
        """Append to several streams in one transaction: all or nothing.

        Partitions are locked in ascending order, so concurrent multi-stream
        appends cannot deadlock. A stream whose events are already stored (a retry)
        is reported ``already_stored`` and the others are written.
        """
        check_appends([(a.stream_id, a.events, a.expected_version) for a in appends])
        partitions = [self.partition_of(a.stream_id) for a in appends]
        # Sorted by partition: the lock order that keeps writers deadlock-free.
        todo = sorted(range(len(appends)), key=partitions.__getitem__)
        results: dict[int, Appended] = {}
        lost: PreparedStatementLostError | None = None
        for _ in range(_MAX_TRIES):
            pending = [i for i in todo if i not in results]
            if not pending:
                break
            try:
                written = self._write(
                    [appends[i] for i in pending], [partitions[i] for i in pending]
                )
            except PreparedStatementLostError as exc:
                # Rolled back: the next try prepares the statement again.
                lost = exc
                continue
            except _Conflict as conflict:
                # A retried save finds all its streams stored; look at each once.
                for i in pending:
                    found = self._stored_ids(appends[i])
                    if found is not None:
                        results[i] = found
                index = pending[conflict.index]
                if index not in results:
                    self._after_conflict(appends[index], conflict.cause)
                continue
            except _NotWritten as missing:
                self._after_missing(appends[pending[missing.index]])
                continue
            results.update(zip(pending, written, strict=True))
            self._announce(written)
            for hook in self._hooks:
                hook.committed(written)
            break
        else:
            if lost is not None:
                raise lost
            raise StoreError(
                f"append to {', '.join(repr(a.stream_id) for a in appends)} kept "
                f"meeting concurrent writers after {_MAX_TRIES} tries; nothing more "
                "was written; try again later"
            )
        return [results[i] for i in range(len(appends))]

    def _write(
        self, appends: Sequence[StreamAppend], partitions: Sequence[int]
    ) -> list[Appended]:
        index = 0
        try:
            with self.db.cursor() as cur:
                if (
                    len(appends) == 1
                    and len(appends[0].events) < COPY_FROM
                    and not self._hooks
                ):
                    # One statement in autocommit is its own transaction: the lock
                    # is held only for the statement and its commit, one round trip.
                    return [self._write_one(cur, 0, appends[0], partitions[0])]
                written = []
                with cur.connection.transaction():
                    for index, append in enumerate(appends):
                        written.append(
                            self._write_one(cur, index, append, partitions[index])
                        )
                    for hook in self._hooks:
                        hook.in_transaction(cur, written)
                return written
        except DuplicateRowError as exc:
            raise _Conflict(index, exc) from exc

    def _write_one(
        self, cur: Cursor, index: int, append: StreamAppend, partition: int
    ) -> Appended:
        events = append.events
        kind = _kind(append.expected_version)
        if len(events) >= COPY_FROM:
            params = self._params_head(
                append.stream_id, append.expected_version, partition
            )
            return self._copy_one(cur, index, append, kind, params)
        statements = self._p_append_one if len(events) == 1 else self._p_append_many
        found = fetchone_on(
            cur.connection,
            statements[kind],
            self._params(append.stream_id, events, append.expected_version, partition),
        )
        if found is None or found[0] is None:
            raise _NotWritten(index)
        return _appended(
            append.stream_id, events, append.expected_version, partition, found
        )

    def _params_head(
        self, stream_id: str, expected: int | None, partition: int
    ) -> dict[str, Any]:
        return {
            "topic": self._topic_id,
            "partition": partition,
            "expected": expected,
            "stream": stream_id,
        }

    def _params(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: int | None,
        partition: int,
    ) -> dict[str, Any]:
        """The parameters of an append statement (below ``COPY_FROM`` events)."""
        params = self._params_head(stream_id, expected, partition)
        if len(events) == 1:
            # Scalars, not arrays: dumping eight one-element arrays costs more
            # than the insert on the fast path of single-event saves.
            event = events[0]
            params["ts"] = event.timestamp_ms
            params["data"] = event.data
            params["headers"] = encode_user_headers(event.headers)
            params["id"] = event.event_id
            params["name"] = event.name
            params["version"] = event.version
            params["corr"] = event.correlation_id
            params["caus"] = event.causation_id
        else:
            params["n"] = len(events)
            params["ts"] = [e.timestamp_ms for e in events]
            params["data"] = [e.data for e in events]
            params["headers"] = [encode_user_headers(e.headers) for e in events]
            params["id"] = [e.event_id for e in events]
            params["name"] = [e.name for e in events]
            params["version"] = [e.version for e in events]
            params["corr"] = [e.correlation_id for e in events]
            params["caus"] = [e.causation_id for e in events]
        return params

    def _copy_one(
        self,
        cur: Cursor,
        index: int,
        append: StreamAppend,
        kind: str,
        params: dict[str, Any],
    ) -> Appended:
        """A long append, inside the caller's transaction: lock the head and take
        the offsets (checking the expected version as the one-statement append
        does), then COPY the rows in. The unique indexes check every row as the
        INSERT would; the head stays locked to the commit."""
        events = append.events
        params["n"] = len(events)
        row = fetchone_on(cur.connection, self._p_take[kind], params)
        if row is None:
            raise _NotWritten(index)
        first_offset, first_version = int(row[0]), int(row[1])
        topic, stream, partition = self._topic_id, append.stream_id, params["partition"]
        with cur.copy(self._q_copy) as copy:
            copy.set_types(_COPY_TYPES)
            write_row = copy.write_row
            for i, event in enumerate(events):
                write_row(
                    (
                        topic,
                        partition,
                        first_offset + i,
                        event.timestamp_ms,
                        event.data,
                        encode_user_headers(event.headers),
                        stream,
                        first_version + i,
                        event.event_id,
                        event.name,
                        event.version,
                        event.correlation_id,
                        event.causation_id,
                    )
                )
        n = len(events)
        return Appended(
            append.stream_id,
            partition,
            first_offset,
            first_offset + n - 1,
            first_version,
            first_version + n - 1,
        )

    def _announce(self, written: Sequence[Appended]) -> None:
        notifier = self.db.notifier
        if notifier is None:
            return
        last: dict[int, int] = {}
        for appended in written:
            last[appended.partition] = max(
                last.get(appended.partition, -1), appended.last_offset
            )
        for partition, offset in last.items():
            notifier.publish(self.topic, partition, offset)

    def _after_conflict(self, append: StreamAppend, cause: DuplicateRowError) -> None:
        """A unique constraint refused an append whose events are not stored: a
        real conflict (raised), or a stale view of the stream (return: try again).
        """
        actual = self.stream_version(append.stream_id)
        if append.expected_version is not None and append.expected_version != actual:
            raise ConcurrencyError(
                append.stream_id, append.expected_version, actual
            ) from cause
        found = self._ids_found_elsewhere(append)
        if found:
            raise ConcurrencyError(
                append.stream_id,
                append.expected_version,
                actual,
                note=f"event ids {', '.join(found)} are stored already elsewhere; "
                "give new events new ids",
            ) from cause
        # The statement saw the stream as it was before the writer it waited for
        # committed; the stream is now where the caller expects: try again.

    def _after_missing(self, append: StreamAppend) -> None:
        """The expected version was not found by the statement: conflict, unless
        it has been committed meanwhile (then the caller tries again)."""
        actual = self.stream_version(append.stream_id)
        if actual != append.expected_version:
            raise ConcurrencyError(append.stream_id, append.expected_version, actual)

    def _lookup_ids(self, append: StreamAppend) -> list[tuple[Any, ...]]:
        return self.db.fetchall_prepared(
            self._p_by_ids,
            {"topic": self._topic_id, "ids": [e.event_id for e in append.events]},
        )

    def _stored_ids(self, append: StreamAppend) -> Appended | None:
        rows = {row[0]: row for row in self._lookup_ids(append)}
        ordered = [rows.get(e.event_id) for e in append.events]
        if any(r is None or r[1] != append.stream_id for r in ordered):
            return None
        first = ordered[0]
        assert first is not None
        versions = [int(r[2]) for r in ordered if r is not None]
        if versions != list(range(versions[0], versions[0] + len(versions))):
            return None
        if (
            append.expected_version is not None
            and versions[0] != append.expected_version + 1
        ):
            return None
        offsets = [int(r[4]) for r in ordered if r is not None]
        logger.debug(
            "append to %r: versions %d..%d already stored, nothing written",
            append.stream_id,
            versions[0],
            versions[-1],
        )
        return Appended(
            stream_id=append.stream_id,
            partition=int(first[3]),
            first_offset=offsets[0],
            last_offset=offsets[-1],
            first_version=versions[0],
            last_version=versions[-1],
            already_stored=True,
        )

    def _ids_found_elsewhere(self, append: StreamAppend) -> list[str]:
        return [str(row[0]) for row in self._lookup_ids(append)]

    # -- reading ---------------------------------------------------------------

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version: 0 if it has no events."""
        row = self.db.fetchone_prepared(
            self._p_version, {"topic": self._topic_id, "stream": stream_id}
        )
        return int(row[0]) if row else 0

    def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredEvent]:
        """The stream's events ``from_version..to_version`` in order: one index
        range scan, O(events returned)."""
        check_versions(from_version, to_version)
        upper = _MAX_VERSION if to_version is None else to_version
        rows = self.db.fetchall_prepared(
            self._p_read_stream,
            {
                "topic": self._topic_id,
                "stream": stream_id,
                "first": from_version,
                "last": upper,
            },
        )
        return _to_stored(self.topic, rows)

    def read_stream_data(
        self, stream_id: str, *, to_version: int | None = None
    ) -> list[tuple[str, int, bytes]]:
        """(name, schema version, data) of versions ``1..to_version``, in order:
        the same index range scan as ``read_stream``, three columns wide."""
        check_versions(1, to_version)
        rows = self.db.fetchall_prepared(
            self._p_read_stream_data,
            {
                "topic": self._topic_id,
                "stream": stream_id,
                "last": _MAX_VERSION if to_version is None else to_version,
            },
        )
        return cast("list[tuple[str, int, bytes]]", rows)

    def read_partition(
        self, partition: int, from_offset: int = 0, max_events: int = 1000
    ) -> list[StoredEvent]:
        """Events of one partition from ``from_offset``, in offset order; only
        committed ones, and never with a gap (see the module docstring)."""
        self.log._checked(self.topic, partition)
        if from_offset < 0:
            raise ValueError(f"from_offset counts from 0, got {from_offset}")
        params = {
            "topic": self._topic_id,
            "partition": partition,
            "offset": from_offset,
            "limit": max_events,
        }
        # A pooled connection: a long read on the short-statement one would send
        # this process's saves to the pool meanwhile.
        with self.db.connection() as conn:
            rows = fetchall_on(conn, self._p_read_partition, params)
        return _to_stored(self.topic, rows)

    def read_partition_in(
        self, cursor: Cursor, partition: int, from_offset: int, max_events: int
    ) -> list[StoredEvent]:
        """``read_partition`` on ``cursor``'s connection, inside its transaction
        (an append hook sees the rows its append wrote)."""
        params = {
            "topic": self._topic_id,
            "partition": partition,
            "offset": from_offset,
            "limit": max_events,
        }
        rows = fetchall_on(cursor.connection, self._p_read_partition, params)
        return _to_stored(self.topic, rows)

    def iter_partition(
        self, partition: int, from_offset: int = 0, chunk: int = 5000
    ) -> Iterator[StoredEvent]:
        """Every event of a partition from ``from_offset`` to its end, in pages of
        ``chunk`` by keyset pagination.

        A page's rows stream in while the first ones are handed out, so the server
        reads on while the caller decodes; the page's connection stays checked out
        until its last event is taken (or the iterator is closed), and nothing is
        held between pages.
        """
        self.log._checked(self.topic, partition)
        if from_offset < 0:
            raise ValueError(f"from_offset counts from 0, got {from_offset}")
        offset = from_offset
        topic = self.topic
        while True:
            count = 0
            with self.db.connection() as conn:
                rows = conn.cursor().stream(
                    self._q_read_partition,
                    (self._topic_id, partition, offset, chunk),
                    binary=True,
                    size=_STREAM_ROWS,
                )
                for row in rows:
                    yield _stored(topic, row)
                    count += 1
                    offset = row[11]
            if count < chunk:
                return
            offset += 1

    def end_position(self) -> Position:
        """The last committed offset of every non-empty partition."""
        ends = self.log.end_offsets(self.topic)
        return Position({p: end - 1 for p, end in ends.items() if end > 0})

    def close(self) -> None:
        """Close the pool (if this store opened it). Idempotent."""
        if self._owns_db:
            self.db.close()


def _version_guard(records: sql.Composable, kind: str) -> sql.Composable:
    """For ``kind == "at"``: version ``expected`` must exist. Checked in the head
    row's UPDATE, so that a miss locks nothing and takes no offsets (an EXISTS in
    the INSERT would leave a gap)."""
    if kind != "at":
        return sql.SQL("")
    return sql.SQL(
        "AND EXISTS (SELECT 1 FROM {} WHERE topic_id = %(topic)s "
        "AND stream_id = %(stream)s AND stream_version = %(expected)s::integer)"
    ).format(records)


def _base_version(records: sql.Composable, kind: str) -> sql.Composable:
    """The version the new events follow. With no expected version (``any``) the
    statement's snapshot may predate the writer it waited for; the unique index
    then refuses the rows and the store tries again."""
    if kind != "any":
        return sql.SQL("%(expected)s::integer")
    return sql.SQL(
        "coalesce((SELECT max(stream_version) FROM {} WHERE topic_id = %(topic)s "
        "AND stream_id = %(stream)s), 0)"
    ).format(records)


def _append_statement(db: Database, *, single: bool, kind: str) -> bytes:
    """The one-statement append: lock the head row, check, insert, return the
    first offset and version (no row when the expected version is missing).

    ``kind`` is how the expected version is given: ``any`` (None), ``new`` (0) or
    ``at`` (a version that must exist). A statement per kind, because a generic
    plan cannot skip the parts a parameter makes unnecessary.
    """
    records = db.table("records")
    guard = _version_guard(records, kind)
    base_version = _base_version(records, kind)
    count = sql.SQL("1") if single else sql.SQL("%(n)s::bigint")
    if single:
        source = sql.SQL(
            "SELECT head.base, %(ts)s::bigint, %(data)s::bytea, %(headers)s::bytea, "
            "{version} + 1, %(id)s::uuid, %(name)s::text, %(version)s::integer, "
            "%(corr)s::text, %(caus)s::text FROM head"
        ).format(version=base_version)
    else:
        source = sql.SQL(
            "SELECT head.base + e.i - 1, e.ts, e.data, e.headers, {version} + e.i, "
            "e.id, e.name, e.version, e.corr, e.caus "
            "FROM head, unnest(%(ts)s::bigint[], %(data)s::bytea[], "
            "%(headers)s::bytea[], %(id)s::uuid[], %(name)s::text[], "
            "%(version)s::integer[], %(corr)s::text[], %(caus)s::text[]) "
            "WITH ORDINALITY AS e(ts, data, headers, id, name, version, corr, caus, i)"
        ).format(version=base_version)
    # A single event with an expected version is written as that version + 1:
    # returning it too cost the server 6,000 of 256,000 instructions per append
    # (``benchmarks.pg_instructions``).
    returning = (
        sql.SQL('"offset"')
        if single and kind != "any"
        else sql.SQL('"offset", stream_version')
    )
    insert = sql.SQL(
        """WITH head AS (
            UPDATE {partitions} SET next_offset = next_offset + {count}
            WHERE topic_id = %(topic)s AND partition = %(partition)s {guard}
            RETURNING next_offset - {count} AS base
        ){written}
            INSERT INTO {records} ("offset", timestamp_ms, value, headers,
                stream_version, event_id, event_name, event_version, correlation_id,
                causation_id, topic_id, partition, stream_id)
            SELECT s.*, %(topic)s, %(partition)s, %(stream)s FROM ({source}) AS s
            RETURNING {returning}{tail}"""
    )
    return insert.format(
        written=sql.SQL("") if single else sql.SQL(", written AS ("),
        tail=sql.SQL("")
        if single
        else sql.SQL(
            ')\n        SELECT min("offset"), min(stream_version) FROM written'
        ),
        partitions=db.table("partitions"),
        records=records,
        count=count,
        guard=guard,
        source=source,
        returning=returning,
    ).as_bytes(None)


def _take_statement(db: Database, kind: str) -> bytes:
    """The head lock of a COPY append: take ``n`` offsets (no row when the
    expected version is missing) and return the first offset and version."""
    records = db.table("records")
    guard = _version_guard(records, kind)
    version = sql.SQL("{} + 1").format(_base_version(records, kind))
    return (
        sql.SQL(
            "UPDATE {partitions} SET next_offset = next_offset + %(n)s::bigint "
            "WHERE topic_id = %(topic)s AND partition = %(partition)s {guard} "
            "RETURNING next_offset - %(n)s::bigint, {version}"
        )
        .format(partitions=db.table("partitions"), guard=guard, version=version)
        .as_bytes(None)
    )


def _appended(
    stream_id: str,
    events: Sequence[NewEvent],
    expected: int | None,
    partition: int,
    row: Sequence[Any],
) -> Appended:
    """What an append statement's ``row`` says it wrote: its first offset, and its
    first version when no version was expected (else the one after it)."""
    n = len(events)
    first_offset = int(row[0])
    first_version = int(row[1]) if expected is None else expected + 1
    # Positional: a named tuple built by keyword costs a save 2 µs more.
    return Appended(
        stream_id,
        partition,
        first_offset,
        first_offset + n - 1,
        first_version,
        first_version + n - 1,
    )


def _kind(expected: int | None) -> str:
    """How an expected version is given: ``any`` (None), ``new`` (0) or ``at``."""
    return "any" if expected is None else "new" if expected == 0 else "at"


def _to_stored(topic: str, rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
    return [_stored(topic, row) for row in rows]


def _stored(topic: str, row: tuple[Any, ...]) -> StoredEvent:
    """A row of the read statements (``StoredEvent``'s field order) as the event."""
    (
        event_id,
        stream,
        version,
        name,
        ev_version,
        data,
        ts,
        corr,
        caus,
        headers,
        p,
        o,
    ) = row
    if stream is None:
        raise CorruptLogError(
            f"record {topic}/{p} offset {o} was not written by the event store; "
            "only the event store may write to its topic"
        )
    # Positional, through tuple.__new__: this runs once per replayed event.
    return _new_tuple(
        StoredEvent,
        (
            event_id,
            stream,
            version,
            name,
            ev_version,
            data,
            ts,
            corr,
            caus,
            _NO_HEADERS if headers is None else decode_user_headers(headers),
            p,
            o,
        ),
    )


class StoreSettings(Protocol):
    """What the opener reads of ``AppSettings`` (the store may not import the
    application layer)."""

    @property
    def events_topic(self) -> str: ...

    @property
    def partitions(self) -> int | None: ...


def open_postgres_store(url: str, settings: StoreSettings) -> PostgresEventStore:
    """The ``STORE_OPENERS`` entry: a native store for ``postgresql://`` URLs.

    ``settings`` is the application's ``AppSettings`` (topic name and partitions
    on creation; an existing topic keeps its count).
    """
    return PostgresEventStore(
        url,
        topic=settings.events_topic,
        config=None
        if settings.partitions is None
        else TopicConfig(partitions=settings.partitions),
    )
