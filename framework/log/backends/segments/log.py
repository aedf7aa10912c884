"""``SegmentLog``: the embedded, crash-safe ``Log`` on segment files in one folder.

``<root>/topics/<topic>.json`` holds each topic's settings; ``<root>/<topic>-<n>/``
holds partition ``n`` as segments ``<base offset>.log`` / ``.index`` / ``.timeindex``.
``docs/segments.md`` describes the format, durability, recovery and the rules for
several processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from framework.errors import (
    ConfigurationError,
    EndOffsetMismatchError,
    TopicConfigConflictError,
    UnknownPartitionError,
    UnknownTopicError,
)
from framework.files import make_dirs
from framework.log.backends.segments import cleaner, reader, recovery
from framework.log.backends.segments.appender import (
    encode_for_append,
    write,
    write_held,
)
from framework.log.backends.segments.batch import EncodedBatch, transactional
from framework.log.backends.segments.errors import LogClosedError, storage_error
from framework.log.backends.segments.flusher import Flusher
from framework.log.backends.segments.groupcommit import Pending
from framework.log.backends.segments.partition import Partition
from framework.log.backends.segments.topics import TopicCatalog
from framework.log.backends.segments.transactions import (
    COORDINATOR,
    TailTxn,
    commit_record,
    commits,
)
from framework.log.config import TopicConfig
from framework.log.records import (
    AppendResult,
    LogRecord,
    PartitionBatch,
    Record,
    check_atomic_batches,
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextmanager
def _storage_errors(path: Path, doing: str) -> Iterator[None]:
    """Raise the system's errors of a maintenance task as ``LogStorageError``s (a
    full disk as ``DiskFullError``), naming the file where the system does."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, path, doing) from exc


class SegmentLog:
    """A ``Log`` stored in segment files under ``path``; thread-safe, and several
    processes may use one folder at once (see the module docs for the rules).

    ``lock_timeout`` bounds how long an append waits for another process to finish
    its own append on the same partition before ``LogLockTimeoutError``.
    ``preallocate`` extends active segments with zeros ahead of their data, so that
    an fsync need not record a new file size (``docs/segments.md`` has the
    trade-off); files written either way read the same.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 10.0,
        preallocate: bool = True,
    ) -> None:
        self.root = Path(path)
        try:
            make_dirs(self.root)
        except OSError as exc:
            raise storage_error(exc, self.root, "creating the log folder") from exc
        self.lock_timeout = lock_timeout
        self.preallocate = preallocate
        self._catalog = TopicCatalog(self.root, lock_timeout)
        self._partitions: dict[str, list[Partition]] = {}
        self._lock = threading.Lock()
        self._flusher = Flusher()
        self._closed = False

    # -- topics ---------------------------------------------------------------------

    def create_topic(self, name: str, config: TopicConfig) -> None:
        """Create a topic; a no-op if it exists with this very configuration.

        Raises ``TopicConfigConflictError`` if it exists with another one.
        """
        self._check_open()
        stored, created = self._catalog.create(name, config)
        if not created and stored != config:
            raise TopicConfigConflictError(name, stored, config)

    def ensure_topic(self, name: str, config: TopicConfig) -> TopicConfig:
        """Create the topic if it is missing; return its stored configuration.

        Raises ``TopicConfigConflictError`` if it exists with another partition count.
        """
        self._check_open()
        stored, _ = self._catalog.create(name, config)
        if stored.partitions != config.partitions:
            raise TopicConfigConflictError(name, stored, config)
        return stored

    def topic_config(self, name: str) -> TopicConfig:
        self._check_open()
        config = self._catalog.get(name)
        if config is None:
            raise UnknownTopicError(name, self._catalog.names())
        return config

    def topics(self) -> list[str]:
        """The topics, without the log's internal ones (``__`` names)."""
        self._check_open()
        return [n for n in self._catalog.names() if not n.startswith("__")]

    def _partition(self, topic: str, partition: int) -> Partition:
        parts = self._partitions.get(topic)
        if parts is None:
            self._check_open()
            config = self.topic_config(topic)
            with self._lock:
                parts = self._partitions.get(topic)
                if parts is None:
                    parts = [
                        Partition(
                            self.root,
                            topic,
                            number,
                            config,
                            lock_timeout=self.lock_timeout,
                            flusher=self._flusher,
                            write=write,
                            preallocate=self.preallocate,
                        )
                        for number in range(config.partitions)
                    ]
                    for part in parts:
                        part.commit_of = self._commit_of
                    self._partitions[topic] = parts
        if not 0 <= partition < len(parts):
            raise UnknownPartitionError(topic, partition, len(parts))
        return parts[partition]

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(self.root)

    # -- the Log protocol -----------------------------------------------------------

    def append(
        self,
        topic: str,
        partition: int,
        records: Sequence[Record],
        *,
        expected_end_offset: int | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> AppendResult:
        """Append ``records`` as one batch, atomically: readers in any process see
        all of it or none of it. ``on_written(base_offset)`` is called once it is
        written, before its fsync (see ``Log.append``).

        Returns once the batch is on disk (fsynced), unless the topic has
        ``fsync="interval"``. With ``expected_end_offset``, the end offset is checked
        under the partition's file lock, so the check and the write are one step
        across processes too; a mismatch raises ``EndOffsetMismatchError`` and writes
        nothing. Raises ``LogLockTimeoutError`` if another process holds the
        partition for longer than ``lock_timeout``.
        """
        if not records:
            raise ValueError(f"append to {topic}/{partition} needs at least one record")
        part = self._partition(topic, partition)
        encoded = encode_for_append(records, _now_ms(), part)
        base = part.append(encoded, expected_end_offset, on_written)
        return AppendResult(
            topic=topic,
            partition=partition,
            base_offset=base,
            last_offset=base + encoded.last_offset_delta,
            timestamp=encoded.last_timestamp,
        )

    def append_atomic(
        self, topic: str, batches: Sequence[PartitionBatch]
    ) -> list[AppendResult]:
        """Append to several partitions as one transaction (``transactions`` has
        the protocol): the batches are written and fsynced, then a commit record
        is appended to the coordinator and fsynced, and that is the instant all
        of them become visible. A crash before it leaves them aborted: they read
        as void records. Returns once everything is fsynced.

        Raises ``EndOffsetMismatchError`` (nothing written) if an expected end
        offset is off, and ``ConfigurationError`` for a compacted topic.
        """
        check_atomic_batches(topic, batches)
        config = self.topic_config(topic)
        if config.cleanup_policy == "compact":
            raise ConfigurationError(
                f"topic {topic!r} is compacted, and compaction would keep the "
                "records of aborted transactions: append to it one partition at "
                "a time"
            )
        parts = {b.partition: self._partition(topic, b.partition) for b in batches}
        coordinator = self._coordinator()
        now = _now_ms()
        encoded = {
            b.partition: encode_for_append(b.records, now, parts[b.partition])
            for b in batches
        }
        with ExitStack() as held:
            # Partitions in order, the coordinator last: two transactions never
            # wait for each other in a circle, and single appends take one lock.
            for number in sorted(parts):
                held.enter_context(parts[number].writing())
            held.enter_context(coordinator.writing())
            for part in parts.values():
                with part.state:
                    part.ensure_loaded()
                    part.follow(writer=True)
                    if part.stale_indexes:
                        part.write_stale_indexes()
                    part.resolve_tail(writer=True)
            for b in batches:
                actual = parts[b.partition].end_offset
                if (
                    b.expected_end_offset is not None
                    and b.expected_end_offset != actual
                ):
                    raise EndOffsetMismatchError(
                        topic, b.partition, b.expected_end_offset, actual
                    )
            with coordinator.state:
                coordinator.ensure_loaded()
                coordinator.follow(writer=True)
                txn_id = coordinator.end_offset
            return self._write_transaction(
                topic,
                batches=batches,
                parts=parts,
                encoded=encoded,
                coordinator=coordinator,
                txn_id=txn_id,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_transaction(
        self,
        topic: str,
        *,
        batches: Sequence[PartitionBatch],
        parts: dict[int, Partition],
        encoded: dict[int, EncodedBatch],
        coordinator: Partition,
        txn_id: int,
    ) -> list[AppendResult]:
        """The writes of ``append_atomic``, every lock held."""
        written: list[Partition] = []
        results = []
        committed = False
        try:
            for b in batches:
                part = parts[b.partition]
                part.commit.check()
                pending = Pending(transactional(encoded[b.partition], txn_id), None)
                write_held(part, pending)
                written.append(part)
                results.append(
                    AppendResult(
                        topic=topic,
                        partition=b.partition,
                        base_offset=pending.base,
                        last_offset=pending.base
                        + encoded[b.partition].last_offset_delta,
                        timestamp=encoded[b.partition].last_timestamp,
                    )
                )
            # Durable before the commit record is: a commit never names a batch a
            # power cut could take away.
            for part in written:
                part.commit.written()
                part.commit.sync_now()
            record = commit_record(
                topic, [(r.partition, r.base_offset, r.last_offset) for r in results]
            )
            pending = Pending(
                encode_for_append([Record(record)], _now_ms(), coordinator), None
            )
            write_held(coordinator, pending)
            committed = True
            coordinator.commit.written()
            coordinator.commit.sync_now()
        finally:
            for part in written:
                with part.state:
                    tail = part.tail_txn
                    if tail is not None and tail.txn_id == txn_id:
                        if committed:
                            tail.committed = True
                        else:
                            part.resolve_tail(writer=True)
        return results

    def _coordinator(self) -> Partition:
        """The one partition of the commit records' topic, created when first
        needed."""
        if COORDINATOR not in self._partitions:
            self._catalog.create(COORDINATOR, TopicConfig(partitions=1))
        return self._partition(COORDINATOR, 0)

    def _commit_of(self, part: Partition, tail: TailTxn) -> bool | None:
        """What the coordinator says of ``part``'s transactional last batch:
        ``True`` committed, ``False`` another transaction's record is where its
        commit would be (so it never committed), ``None`` no record there yet."""
        coordinator = self._coordinator()
        with coordinator.state:
            coordinator.ready()
            if tail.txn_id >= coordinator.end_offset:
                return None
        (record,) = reader.read_at(coordinator, [tail.txn_id])
        return commits(record.value, part.topic, part.number, tail.base)

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[LogRecord]:
        """Records from ``offset`` on, in offset order, at most ``max_records``.

        Sees every whole batch written so far by any process. Offsets removed by
        compaction are skipped. Raises ``OffsetOutOfRangeError`` outside
        ``start_offset..end_offset`` and ``CorruptLogError`` for damaged bytes.
        """
        return reader.read(self._partition(topic, partition), offset, max_records)

    def read_at(
        self, topic: str, partition: int, offsets: Sequence[int]
    ) -> list[LogRecord]:
        """The records at exactly these offsets, in the order given; one small
        positioned read per batch. Raises ``OffsetOutOfRangeError`` for an offset not
        stored (``OffsetCompactedError``, a subclass, if compaction removed it)."""
        return reader.read_at(self._partition(topic, partition), offsets)

    def start_offset(self, topic: str, partition: int) -> int:
        """The first offset stored. Only retention moves it, and retention in another
        process is seen on reopening (see the docs), so this needs no look at what
        other processes appended."""
        part = self._partition(topic, partition)
        with part.state:
            part.ensure_loaded()
            return part.start_offset

    def end_offset(self, topic: str, partition: int) -> int:
        part = self._partition(topic, partition)
        with part.state:
            part.ready()
            return part.end_offset

    def end_offsets(self, topic: str) -> dict[int, int]:
        config = self.topic_config(topic)
        return {p: self.end_offset(topic, p) for p in range(config.partitions)}

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        """The earliest offset whose record timestamp is at or after ``timestamp``
        (out-of-order timestamps included), or ``None``; uses the time index."""
        part = self._partition(topic, partition)
        found = reader.offset_for_time(part, timestamp)
        stable = part.stable_end
        return (
            None if found is None or (stable is not None and found >= stable) else found
        )

    def close(self) -> None:
        """Flush interval-mode topics, release files and locks. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            parts = [p for ps in self._partitions.values() for p in ps]
        self._flusher.stop()
        for part in parts:
            part.close()
        self._catalog.close()

    def __enter__(self) -> SegmentLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- maintenance ----------------------------------------------------------------

    def enforce_retention(self, topic: str) -> int:
        """Delete whole sealed segments older than ``retention_ms`` (by their newest
        record), then the oldest while a partition is over ``retention_bytes``. The
        active segment always stays. Returns the number of segments deleted."""
        config = self.topic_config(topic)
        with _storage_errors(self.root, "enforcing retention in"):
            return sum(
                cleaner.enforce_retention(self._partition(topic, p), _now_ms())
                for p in range(config.partitions)
            )

    def compact(self, topic: str) -> int:
        """Rewrite the sealed segments of every partition keeping only the latest
        record per key (a key whose latest record has an empty value is removed
        altogether); offsets are kept. Returns the number of records removed.

        Works on any topic it is called for; ``cleanup_policy="compact"`` topics are
        the ones meant for it.
        """
        config = self.topic_config(topic)
        for p in range(config.partitions):
            part = self._partition(topic, p)
            with part.state:
                part.ready()
                if part.aborted:
                    raise ConfigurationError(
                        f"{topic}/{p} holds aborted transactions, whose records "
                        "compaction would keep: it cannot be compacted"
                    )
        with _storage_errors(self.root, "compacting in"):
            return sum(
                cleaner.compact(self._partition(topic, p))
                for p in range(config.partitions)
            )

    def repair(
        self, topic: str, partition: int, *, dry_run: bool = False
    ) -> recovery.RepairReport:
        """Check every batch of a partition and truncate it at the first bad one,
        deleting later segments; returns what was dropped (nothing if it was sound).
        Use after a ``CorruptLogError`` once no backup is to be restored. With
        ``dry_run`` nothing changes: the report says what would be dropped."""
        part = self._partition(topic, partition)
        with _storage_errors(part.directory, "repairing"):
            return recovery.repair(part, dry_run=dry_run)

    @property
    def fsync_count(self) -> int:
        """fsyncs made to acknowledge appends so far (group commit shares them)."""
        return sum(p.commit.fsyncs for ps in self._partitions.values() for p in ps)
