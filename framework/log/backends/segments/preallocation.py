"""Preallocated space: the zero-filled tail a segment file is extended by ahead of its
data (Kafka's ``log.preallocate``), so that an append's ``fdatasync`` does not have
to change the file's size too.

Preallocated bytes read as zeros and no batch starts with a zero length, so the
logical end of a segment is the first all-zero batch header, not the file's size.
Only a writer holding the partition's file lock extends a file, and a segment sealed
by a roll has its preallocated tail cut off before the next segment is created.
"""

from __future__ import annotations

import logging
import os

from framework.log.backends.segments.batch import HEADER_SIZE

logger = logging.getLogger("framework.log")

#: What an unwritten batch header in preallocated space reads as.
ZERO_HEADER = bytes(HEADER_SIZE)
#: Every extension: the same size each time. ext4 then lays successive steps end to
#: end, so the file stays a few extents. Growing steps (doubling from 1 MiB) left
#: gaps between them; past the four extents an inode holds, each fdatasync also
#: rewrote an extent-tree block, and 15 KB appends fsynced 25-30% slower. The step
#: also bounds the zeros a recovery scan reads on open.
STEP = 4 << 20
#: Bytes read per call while checking that a tail holds nothing but zeros.
_SCAN_CHUNK = 1 << 20

#: Whether this platform can preallocate (macOS has no ``posix_fallocate``).
SUPPORTED = hasattr(os, "posix_fallocate")


def target_size(size: int, needed: int, limit: int) -> int:
    """The size to extend a file of ``size`` bytes to so that ``needed`` fit: one
    ``STEP`` more, never past ``limit`` (the segment size) unless ``needed`` itself
    is larger."""
    return max(needed, min(size + STEP, limit))


def extend(fd: int, size: int, target: int) -> bool:
    """Allocate ``[size, target)`` of the file as zeros; ``False`` if the file system
    refused (full, or unsupported), in which case appends simply grow the file."""
    try:
        os.posix_fallocate(fd, size, target - size)
    except OSError as exc:
        logger.debug("could not preallocate %d bytes: %s", target - size, exc)
        return False
    return True


def first_nonzero(fd: int, start: int, end: int) -> int | None:
    """The position of the first non-zero byte in ``[start, end)``, if any."""
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(_SCAN_CHUNK, end - pos), pos)
        if not chunk:
            return None
        stripped = chunk.lstrip(b"\0")
        if stripped:
            return pos + len(chunk) - len(stripped)
        pos += len(chunk)
    return None


def data_end(fd: int, start: int, end: int) -> int:
    """The position after the last non-zero byte in ``[start, end)`` (``start`` if
    there is none): where written bytes end and preallocated zeros begin."""
    pos = end
    while pos > start:
        low = max(start, pos - _SCAN_CHUNK)
        chunk = os.pread(fd, pos - low, low)
        stripped = chunk.rstrip(b"\0")
        if stripped:
            return low + len(stripped)
        pos = low
    return start
