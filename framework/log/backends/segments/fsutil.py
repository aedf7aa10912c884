"""Durable file-system steps of the segment log: atomic replacement, whole writes
and data syncs (directories are made and synced by ``framework.files``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from framework.files import sync_dir

#: ``fdatasync`` also persists the size of an appended file, which is all a log needs;
#: platforms without it (macOS) fall back to ``fsync``.
_datasync = getattr(os, "fdatasync", os.fsync)


def sync_data(fd: int) -> None:
    """Make the file's bytes (and its size) durable."""
    _datasync(fd)


def write_all(fd: int, parts: Sequence[bytes], position: int) -> None:
    """Write ``parts`` back to back at ``position``; short writes are continued."""
    total = sum(map(len, parts))
    written = os.pwritev(fd, parts, position)
    if written == total:
        return
    # Regular files write short only near a full disk or on a signal; finish the rest.
    data = memoryview(b"".join(parts))
    while written < total:
        n = os.pwrite(fd, data[written:], position + written)
        if n <= 0:
            raise OSError(f"pwrite wrote nothing at byte {position + written}")
        written += n


def replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new file whole.

    Temp file in the same folder, fsync, rename over, fsync the folder.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            write_all(fd, [data], 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # A full disk must not leave half-written temporary files behind.
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(path.parent)
