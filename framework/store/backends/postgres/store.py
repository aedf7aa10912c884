"""``PostgresEventStore``: the event store natively on PostgreSQL.

The database enforces the promises in the statement that writes: stream id +
version is unique (optimistic concurrency), the event id is unique (idempotent
retries), and offsets are taken under the partition's row lock held to the commit
(gapless per partition). Several streams are one transaction, locking partitions
in ascending order so that writers cannot deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from itertools import islice

from framework.errors import CorruptLogError, StoreError
from framework.log.backends.postgres import PostgresLog
from framework.log.config import TopicConfig
from framework.log.partitioner import partition_for
from framework.postgres.database import Cursor, Database, fetchall_on, fetchone_on
from framework.postgres.errors import DuplicateRowError, PreparedStatementLostError
from framework.postgres.url import PostgresURL
from framework.store.backends.postgres.copy_append import copy_append
from framework.store.backends.postgres.hook import AppendHook
from framework.store.backends.postgres.params import (
    append_params,
    head_params,
)
from framework.store.backends.postgres.refused import RefusedAppends
from framework.store.backends.postgres.rows import (
    appended_by,
    stored_event,
    stored_events,
    stream_data,
)
from framework.store.backends.postgres.statements import (
    StoreStatements,
    kind_of,
)
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
#: Rows per network chunk when a page streams in.
_STREAM_ROWS = 500


class _NotWritten(Exception):
    """The expected version was not found; abort the transaction."""

    def __init__(self, index: int) -> None:
        self.index = index


class _Conflict(Exception):
    def __init__(self, index: int, cause: DuplicateRowError) -> None:
        self.index = index
        self.cause = cause


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
        self._sql = StoreStatements(self.db)
        self._refused = RefusedAppends(
            self.db, self._sql, self._topic_id, self.stream_version
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
            statements = (
                self._sql.append_one if len(events) == 1 else self._sql.append_many
            )
            try:
                row = self.db.fetchone_prepared(
                    statements[kind_of(expected_version)],
                    append_params(
                        self._topic_id, stream_id, events, expected_version, partition
                    ),
                )
            except DuplicateRowError:
                row = None
            if row is not None and row[0] is not None:
                appended = appended_by(
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
                    found = self._refused.stored_ids(appends[i])
                    if found is not None:
                        results[i] = found
                index = pending[conflict.index]
                if index not in results:
                    self._refused.after_conflict(appends[index], conflict.cause)
                continue
            except _NotWritten as missing:
                self._refused.after_missing(appends[pending[missing.index]])
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
        kind = kind_of(append.expected_version)
        if len(events) >= COPY_FROM:
            params = head_params(
                self._topic_id, append.stream_id, append.expected_version, partition
            )
            copied = copy_append(
                cur,
                append,
                params,
                statements=self._sql,
                topic_id=self._topic_id,
                kind=kind,
            )
            if copied is None:
                raise _NotWritten(index)
            return copied
        statements = self._sql.append_one if len(events) == 1 else self._sql.append_many
        found = fetchone_on(
            cur.connection,
            statements[kind],
            append_params(
                self._topic_id,
                append.stream_id,
                events,
                append.expected_version,
                partition,
            ),
        )
        if found is None or found[0] is None:
            raise _NotWritten(index)
        return appended_by(
            append.stream_id, events, append.expected_version, partition, found
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

    # -- reading ---------------------------------------------------------------

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version: 0 if it has no events."""
        row = self.db.fetchone_prepared(
            self._sql.version, {"topic": self._topic_id, "key": stream_id.encode()}
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
            self._sql.read_stream,
            {
                "topic": self._topic_id,
                "key": stream_id.encode(),
                "first": from_version,
                "last": upper,
            },
        )
        return stored_events(self.topic, rows)

    def read_stream_data(
        self, stream_id: str, *, to_version: int | None = None
    ) -> list[tuple[str, int, bytes, int]]:
        """(name, schema version, data, stamp) of versions ``1..to_version``, in
        order: the same index range scan as ``read_stream``, two columns wide
        (the headers, whose ``$m`` header begins with the versions and stamp,
        and the data)."""
        check_versions(1, to_version)
        rows = self.db.fetchall_prepared(
            self._sql.read_stream_data,
            {
                "topic": self._topic_id,
                "key": stream_id.encode(),
                "last": _MAX_VERSION if to_version is None else to_version,
            },
        )
        return stream_data(stream_id, rows)

    def read_partition(
        self, partition: int, from_offset: int = 0, max_events: int = 1000
    ) -> list[StoredEvent]:
        """Events of one partition from ``from_offset``, in offset order; only
        committed ones, and never with a gap (see the module docstring)."""
        self.log.checked_topic_id(self.topic, partition)
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
            rows = fetchall_on(conn, self._sql.read_partition, params)
        return stored_events(self.topic, rows)

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
        rows = fetchall_on(cursor.connection, self._sql.read_partition, params)
        return stored_events(self.topic, rows)

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
        self.log.checked_topic_id(self.topic, partition)
        if from_offset < 0:
            raise ValueError(f"from_offset counts from 0, got {from_offset}")
        offset = from_offset
        topic = self.topic
        while True:
            count = 0
            with self.db.connection() as conn:
                rows = conn.cursor().stream(
                    self._sql.read_partition_text,
                    {
                        "topic": self._topic_id,
                        "partition": partition,
                        "offset": offset,
                        "limit": chunk,
                    },
                    binary=True,
                    size=_STREAM_ROWS,
                )
                # Decoded a network chunk at a time: one call per chunk rather
                # than per event.
                while batch := list(islice(rows, _STREAM_ROWS)):
                    try:
                        events = stored_events(topic, batch)
                    except CorruptLogError:
                        # The events before the bad row first, then its error.
                        for row in batch:
                            yield stored_event(topic, row)
                        raise
                    yield from events
                    count += len(batch)
                    offset = batch[-1][1]
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
