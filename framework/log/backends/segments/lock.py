"""The writer lock of a partition: an ``flock`` on a file, shared by every process.

``flock`` locks belong to an open file description, so two ``SegmentLog`` objects in
one process exclude each other as two processes do. The lock has no kernel timeout;
it is polled with a growing pause until ``timeout``.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from framework.log.backends.segments.errors import storage_error

#: First and longest pause between attempts while another writer holds the lock.
_FIRST_PAUSE = 0.0001
_LONGEST_PAUSE = 0.005


class FileLock:
    """An exclusive lock on ``path``. Not re-entrant; one holder thread at a time."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def _ensure_open(self) -> int:
        if self._fd < 0:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise storage_error(
                    exc, self.path, "opening the lock file", "Nothing was written. "
                ) from exc
        return self._fd

    def try_acquire(self) -> bool:
        """Take the lock if it is free now; ``False`` if another holder has it."""
        fd = self._fd if self._fd >= 0 else self._ensure_open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds; ``False`` on timeout."""
        if self.try_acquire():
            return True
        deadline = time.monotonic() + timeout
        pause = _FIRST_PAUSE
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            if self.try_acquire():
                return True
            pause = min(pause * 2, _LONGEST_PAUSE)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing also releases a held lock
            self._fd = -1
