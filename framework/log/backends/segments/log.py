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
from contextlib import contextmanager
from pathlib import Path

from framework.errors import (
    TopicConfigConflictError,
    UnknownPartitionError,
    UnknownTopicError,
)
from framework.files import make_dirs
from framework.log.backends.segments import cleaner, reader, recovery
from framework.log.backends.segments.appender import encode_for_append, write
from framework.log.backends.segments.errors import LogClosedError, storage_error
from framework.log.backends.segments.flusher import Flusher
from framework.log.backends.segments.partition import Partition
from framework.log.backends.segments.topics import TopicCatalog
from framework.log.config import TopicConfig
from framework.log.records import AppendResult, LogRecord, Record


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
        self._check_open()
        return self._catalog.names()

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
        return reader.offset_for_time(self._partition(topic, partition), timestamp)

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
