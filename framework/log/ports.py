"""The ``Log`` port: topics of partitions, each an ordered append-only offset run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from framework.log.config import TopicConfig
from framework.log.records import AppendResult, LogRecord, PartitionBatch, Record


@runtime_checkable
class Log(Protocol):
    """A partitioned log, as Kafka's: order is promised per partition, never across.

    Offsets in a partition are contiguous from its start offset (0 until retention
    deletes old records). Every backend passes ``framework.testing.log_contract``.
    """

    def create_topic(self, name: str, config: TopicConfig) -> None:
        """Create a topic. Raises ``TopicConfigConflictError`` if it exists already
        with another configuration; creating it again with the same one is a no-op."""

    def ensure_topic(self, name: str, config: TopicConfig) -> TopicConfig:
        """Create the topic if it is missing; return its stored configuration.

        Raises ``TopicConfigConflictError`` if it exists with another partition count.
        """

    def topic_config(self, name: str) -> TopicConfig:
        """The stored configuration of a topic; ``UnknownTopicError`` if none."""

    def topics(self) -> list[str]:
        """The names of all topics, sorted."""

    def append(
        self,
        topic: str,
        partition: int,
        records: Sequence[Record],
        *,
        expected_end_offset: int | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> AppendResult:
        """Append a batch atomically: all of it becomes visible together, or none does.

        With ``expected_end_offset``, the append happens only if the partition's end
        offset is that number; otherwise ``EndOffsetMismatchError`` and nothing is
        written (the check and the write are one step, also across processes).
        Returns when the batch is as durable as the topic's configuration promises.

        ``on_written(base_offset)`` is called in the appending thread once the
        batch has its offsets, before ``append`` returns: on the segment files
        before the fsync, which appends written by other threads meanwhile then
        share; elsewhere once the batch is durable. A caller that holds a lock of
        its own for the check before the append can release it there. If it
        raises, the batch stays written and is made durable all the same, and
        ``append`` raises its error.
        """

    def append_atomic(
        self, topic: str, batches: Sequence[PartitionBatch]
    ) -> list[AppendResult]:
        """Append a batch to each of several partitions as one transaction (Kafka's
        transactions): readers in any process see all of the batches or none of
        them, and a crash at any point leaves all of them or none.

        Every ``expected_end_offset`` is checked before anything becomes visible; a
        mismatch raises ``EndOffsetMismatchError`` and no batch becomes visible.
        The partitions must differ, and every batch have records (``ValueError``).
        Returns each batch's ``AppendResult`` in the order given, once all are as
        durable as the topic's configuration promises.

        A backend that cannot make its batches visible at one instant writes them
        first and commits after, and a reader stops before a batch whose commit is
        not yet decided. What a transaction that never committed (its writer
        crashed or failed) wrote reads as void records (``records.is_void``), so
        that offsets stay contiguous; a backend with transactions of its own
        (PostgreSQL, memory) never leaves any.
        """

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[LogRecord]:
        """Records from ``offset`` on, in offset order, at most ``max_records``.

        Returns ``[]`` at the end offset. An offset below the start offset or above
        the end offset raises ``OffsetOutOfRangeError``.
        """

    def read_at(
        self, topic: str, partition: int, offsets: Sequence[int]
    ) -> list[LogRecord]:
        """The records at exactly these offsets, in the order given.

        Raises ``OffsetOutOfRangeError`` if one is not stored.
        """

    def start_offset(self, topic: str, partition: int) -> int:
        """The first offset still stored (0 until retention removed records)."""

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next appended record will get (Kafka's log end offset)."""

    def end_offsets(self, topic: str) -> dict[int, int]:
        """``end_offset`` of every partition of the topic."""

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        """The earliest offset whose record timestamp is at or after ``timestamp``
        (UTC ms), or ``None`` if every record is older (Kafka's offsetsForTimes)."""

    def close(self) -> None:
        """Release files, locks and connections. Idempotent."""
