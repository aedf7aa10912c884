"""The in-memory log: the reference implementation every other backend is held to."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence

from framework.errors import (
    EndOffsetMismatchError,
    OffsetOutOfRangeError,
    TopicConfigConflictError,
    UnknownPartitionError,
    UnknownTopicError,
)
from framework.log.config import TopicConfig
from framework.log.records import (
    AppendResult,
    LogRecord,
    PartitionBatch,
    Record,
    check_atomic_batches,
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Partition:
    __slots__ = ("lock", "max_timestamps", "records")

    def __init__(self) -> None:
        self.records: list[LogRecord] = []
        # Running maximum of timestamps, so that seek-by-time is a binary search even
        # when producers hand in timestamps out of order (as Kafka's time index does).
        self.max_timestamps: list[int] = []
        self.lock = threading.Lock()


class MemoryLog:
    """A ``Log`` held in process memory. Thread-safe; gone when the process ends.

    Readers see a partition up to its end in the topic's published ends, one
    tuple replaced whole by every append: so the batches of an atomic
    multi-partition append all become visible in one assignment.
    """

    def __init__(self) -> None:
        self._configs: dict[str, TopicConfig] = {}
        self._partitions: dict[str, list[_Partition]] = {}
        self._ends: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()
        #: Held while an append publishes its topic's new ends.
        self._publish = threading.Lock()

    def create_topic(self, name: str, config: TopicConfig) -> None:
        with self._lock:
            existing = self._configs.get(name)
            if existing is not None:
                if existing != config:
                    raise TopicConfigConflictError(name, existing, config)
                return
            self._configs[name] = config
            self._partitions[name] = [_Partition() for _ in range(config.partitions)]
            self._ends[name] = (0,) * config.partitions

    def ensure_topic(self, name: str, config: TopicConfig) -> TopicConfig:
        with self._lock:
            existing = self._configs.get(name)
            if existing is None:
                self._configs[name] = config
                self._partitions[name] = [
                    _Partition() for _ in range(config.partitions)
                ]
                self._ends[name] = (0,) * config.partitions
                return config
        if existing.partitions != config.partitions:
            raise TopicConfigConflictError(name, existing, config)
        return existing

    def topic_config(self, name: str) -> TopicConfig:
        try:
            return self._configs[name]
        except KeyError:
            raise UnknownTopicError(name, self._configs) from None

    def topics(self) -> list[str]:
        return sorted(self._configs)

    def _partition(self, topic: str, partition: int) -> _Partition:
        try:
            partitions = self._partitions[topic]
        except KeyError:
            raise UnknownTopicError(topic, self._configs) from None
        if not 0 <= partition < len(partitions):
            raise UnknownPartitionError(topic, partition, len(partitions))
        return partitions[partition]

    def append(
        self,
        topic: str,
        partition: int,
        records: Sequence[Record],
        *,
        expected_end_offset: int | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> AppendResult:
        if not records:
            raise ValueError(f"append to {topic}/{partition} needs at least one record")
        part = self._partition(topic, partition)
        with part.lock:
            base = len(part.records)
            if expected_end_offset is not None and expected_end_offset != base:
                raise EndOffsetMismatchError(
                    topic, partition, expected_end_offset, base
                )
            batch = self._extend(topic, partition, part, records, now_ms())
            self._publish_ends(topic, {partition: base + len(batch)})
        if on_written is not None:
            on_written(base)
        return AppendResult(
            topic=topic,
            partition=partition,
            base_offset=base,
            last_offset=base + len(batch) - 1,
            timestamp=batch[-1].timestamp,
        )

    def append_atomic(
        self, topic: str, batches: Sequence[PartitionBatch]
    ) -> list[AppendResult]:
        check_atomic_batches(topic, batches)
        parts = {b.partition: self._partition(topic, b.partition) for b in batches}
        # Locked in partition order, so that two transactions never wait for
        # each other in a circle.
        locked = [parts[p].lock for p in sorted(parts)]
        for lock in locked:
            lock.acquire()
        try:
            for b in batches:
                actual = len(parts[b.partition].records)
                if (
                    b.expected_end_offset is not None
                    and b.expected_end_offset != actual
                ):
                    raise EndOffsetMismatchError(
                        topic, b.partition, b.expected_end_offset, actual
                    )
            now = now_ms()
            results = []
            ends = {}
            for b in batches:
                part = parts[b.partition]
                base = len(part.records)
                written = self._extend(topic, b.partition, part, b.records, now)
                ends[b.partition] = base + len(written)
                results.append(
                    AppendResult(
                        topic=topic,
                        partition=b.partition,
                        base_offset=base,
                        last_offset=base + len(written) - 1,
                        timestamp=written[-1].timestamp,
                    )
                )
            # Nothing above is visible yet: readers stop at the published ends.
            self._publish_ends(topic, ends)
            return results
        finally:
            for lock in reversed(locked):
                lock.release()

    @staticmethod
    def _extend(
        topic: str,
        partition: int,
        part: _Partition,
        records: Sequence[Record],
        now: int,
    ) -> list[LogRecord]:
        """Add ``records`` after the partition's last (not yet published)."""
        stored = part.records
        base = len(stored)
        running = part.max_timestamps[-1] if part.max_timestamps else -1
        batch = []
        maxima = []
        for i, record in enumerate(records):
            ts = now if record.timestamp is None else record.timestamp
            running = max(running, ts)
            maxima.append(running)
            batch.append(
                LogRecord(
                    topic=topic,
                    partition=partition,
                    offset=base + i,
                    timestamp=ts,
                    key=record.key,
                    value=record.value,
                    headers=record.headers,
                )
            )
        stored.extend(batch)
        part.max_timestamps.extend(maxima)
        return batch

    def _publish_ends(self, topic: str, ends: dict[int, int]) -> None:
        """Make the new ends visible to readers, all in one assignment."""
        with self._publish:
            current = list(self._ends[topic])
            for partition, end in ends.items():
                current[partition] = end
            self._ends[topic] = tuple(current)

    def _end(self, topic: str, partition: int) -> int:
        self._partition(topic, partition)
        return self._ends[topic][partition]

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[LogRecord]:
        stored = self._partition(topic, partition).records
        end = self._ends[topic][partition]
        if not 0 <= offset <= end:
            raise OffsetOutOfRangeError(topic, partition, offset, 0, end)
        return stored[offset : min(end, offset + max_records)]

    def read_at(
        self, topic: str, partition: int, offsets: Sequence[int]
    ) -> list[LogRecord]:
        stored = self._partition(topic, partition).records
        end = self._ends[topic][partition]
        out = []
        for offset in offsets:
            if not 0 <= offset < end:
                raise OffsetOutOfRangeError(topic, partition, offset, 0, end)
            out.append(stored[offset])
        return out

    def start_offset(self, topic: str, partition: int) -> int:
        self._partition(topic, partition)
        return 0

    def end_offset(self, topic: str, partition: int) -> int:
        return self._end(topic, partition)

    def end_offsets(self, topic: str) -> dict[int, int]:
        config = self.topic_config(topic)
        return {p: self.end_offset(topic, p) for p in range(config.partitions)}

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        part = self._partition(topic, partition)
        with part.lock:
            end = self._ends[topic][partition]
            first = bisect.bisect_left(part.max_timestamps, timestamp, 0, end)
            if first == end:
                return None
            return first

    def close(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""
