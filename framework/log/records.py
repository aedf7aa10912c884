"""Records: what a producer hands the log, and what it hands back with a position."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import attrs

#: Record headers, Kafka-style: ordered (name, value) pairs; a name may repeat.
Headers = tuple[tuple[str, bytes], ...]


class Record(NamedTuple):
    """One record to append; ``timestamp`` (UTC milliseconds) defaults to now.

    A named tuple, as ``LogRecord``: every append builds one per record.
    """

    value: bytes
    key: bytes | None = None
    headers: Headers = ()
    timestamp: int | None = None


class LogRecord(NamedTuple):
    """A stored record at its position: ``offset`` in ``partition`` of ``topic``.

    A named tuple rather than a frozen attrs class: replay builds one per record,
    and a tuple is built in half the time.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: Headers = ()


class PartitionBatch(NamedTuple):
    """One partition's part of an atomic multi-partition append
    (``Log.append_atomic``); ``expected_end_offset`` as in ``Log.append``."""

    partition: int
    records: Sequence[Record]
    expected_end_offset: int | None = None


def check_atomic_batches(topic: str, batches: Sequence[PartitionBatch]) -> None:
    """``ValueError`` naming the problem unless every batch has records and
    each partition appears once."""
    if not batches:
        raise ValueError(f"an atomic append to {topic} needs at least one batch")
    seen: set[int] = set()
    for batch in batches:
        if not batch.records:
            raise ValueError(
                f"an atomic append to {topic} has no records for partition "
                f"{batch.partition}: give each partition at least one"
            )
        if batch.partition in seen:
            raise ValueError(
                f"an atomic append to {topic} names partition {batch.partition} "
                "twice: put its records in one batch"
            )
        seen.add(batch.partition)


#: The one header of a void record: what an offset of a transaction that never
#: committed reads as (``Log.append_atomic``). Offsets stay contiguous, and a
#: reader that follows offsets (a consumer, an index) steps over it.
VOID = "$void"
_VOID_HEADERS: Headers = ((VOID, b""),)


def void_record(topic: str, partition: int, offset: int, timestamp: int) -> LogRecord:
    """What ``offset`` of a transaction that never committed reads as."""
    return LogRecord(topic, partition, offset, timestamp, None, b"", _VOID_HEADERS)


def is_void(record: LogRecord) -> bool:
    """Whether ``record`` stands for an offset of a transaction that never
    committed (it has no key and one ``$void`` header)."""
    return record.key is None and record.headers == _VOID_HEADERS


@attrs.frozen(kw_only=True, slots=True)
class AppendResult:
    """Where one appended batch landed: offsets ``base_offset..last_offset``."""

    topic: str
    partition: int
    base_offset: int
    last_offset: int
    #: The log-assigned or producer-given timestamp of the batch's last record.
    timestamp: int

    @property
    def count(self) -> int:
        return self.last_offset - self.base_offset + 1
