"""Errors only the segment-file log raises, beside the log's own error family."""

from __future__ import annotations

import errno
import os
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


class LogStorageError(LogError):
    """A file or folder of the log could not be written or created: names it, what
    was being done, and the system's error (``errno``)."""

    def __init__(
        self, path: Path, doing: str, exc: OSError, consequence: str = ""
    ) -> None:
        self.path = path
        self.doing = doing
        self.errno = exc.errno
        super().__init__(self._message(path, doing, exc, consequence))

    @staticmethod
    def _message(path: Path, doing: str, exc: OSError, consequence: str) -> str:
        return (
            f"{doing} {path} failed ({exc.strerror or exc}). {consequence}Check the "
            "file system and the permissions, then retry"
        )


class DiskFullError(LogStorageError):
    """The file system holding the log is full, out of inodes or over a quota
    (``ENOSPC``, ``EDQUOT``). Retrying helps once space is freed."""

    retriable = True

    @staticmethod
    def _message(path: Path, doing: str, exc: OSError, consequence: str) -> str:
        return (
            f"{doing} {path} failed ({exc.strerror or exc}): the file system holding "
            "it is full, out of inodes, or over a quota. "
            f"{consequence}Free space on it (see `df -h` and `df -i`), then retry"
        )


#: The errors of a file system that has no room left (space, inodes, or quota).
_FULL = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None
)


def storage_error(
    exc: OSError, path: Path, doing: str, consequence: str = ""
) -> LogStorageError:
    """The ``LogError`` for ``exc``, raised while ``doing`` (a phrase such as
    "writing a batch to") ``path``, or the file the system names; ``consequence``
    says what did or did not happen (a sentence ending in a space)."""
    named = exc.filename
    where = Path(named) if isinstance(named, (str, os.PathLike)) else path
    kind = DiskFullError if exc.errno in _FULL else LogStorageError
    return kind(where, doing, exc, consequence)
