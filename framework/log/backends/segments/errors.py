"""Errors only the segment-file log raises, beside the log's own error family."""

from __future__ import annotations

from pathlib import Path

from framework.errors import CorruptLogError, LogError, OffsetOutOfRangeError


class LogLockTimeoutError(LogError):
    """Another writer held a partition's file lock for longer than ``lock_timeout``.

    Nothing was written. The holder is usually another process appending; retrying
    helps unless that process hangs while holding the lock.
    """

    retriable = True

    def __init__(self, topic: str, partition: int, lock_file: Path, timeout: float):
        self.topic = topic
        self.partition = partition
        self.lock_file = lock_file
        self.timeout = timeout
        super().__init__(
            f"could not lock {topic}/{partition} for writing within {timeout:g} s: "
            f"another process holds {lock_file}; nothing was written. Retry, raise "
            "lock_timeout, or stop the process that holds the lock (`fuser` names it)"
        )


class OffsetCompactedError(OffsetOutOfRangeError):
    """The offset lies inside the partition but compaction removed its record."""

    def __init__(
        self, topic: str, partition: int, offset: int, start: int, end: int
    ) -> None:
        super().__init__(topic, partition, offset, start, end)
        self.args = (
            f"offset {offset} of {topic}/{partition} was removed by compaction (a "
            f"later record has the same key); the partition holds offsets "
            f"{start}..{end - 1} with gaps; read() from {offset} skips to the next "
            "record kept",
        )


class LogClosedError(LogError):
    """The log was used after ``close()``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        super().__init__(f"the segment log at {root} is closed; open a new SegmentLog")


class CorruptSegmentError(CorruptLogError):
    """Bytes of a segment file fail their checksum or structure: names file and byte."""

    def __init__(self, path: Path, position: int, what: str) -> None:
        self.path = path
        self.position = position
        self.what = what
        super().__init__(
            f"{path} is corrupt at byte {position}: {what}. The data from there on "
            "cannot be trusted; restore the partition from a backup or replica, or "
            "truncate it at the first bad batch with `python -m framework log "
            "repair` (run without --yes, it says what it would drop) or "
            "SegmentLog.repair(topic, partition)"
        )
