"""The segment-file log: an embedded, crash-safe ``Log`` in a folder of Kafka-style
segment files, safe to share between processes (``docs/segments.md``)."""

from __future__ import annotations

from framework.log.backends.segments.errors import (
    CorruptSegmentError,
    DiskFullError,
    LogLockTimeoutError,
    LogStorageError,
    OffsetCompactedError,
)
from framework.log.backends.segments.groupcommit import FsyncFailedError
from framework.log.backends.segments.log import SegmentLog
from framework.log.backends.segments.recovery import RepairReport

__all__ = [
    "CorruptSegmentError",
    "DiskFullError",
    "FsyncFailedError",
    "LogLockTimeoutError",
    "LogStorageError",
    "OffsetCompactedError",
    "RepairReport",
    "SegmentLog",
]
