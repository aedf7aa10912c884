"""The offset index of a segment: sparse ``offset -> byte position`` entries.

An entry is written for the first batch of a segment and then for the first batch
that starts at least ``INTERVAL`` bytes after the previous entry, so every process
derives the same entries from the same log. The file is a hint, never the truth:
it is not fsynced, an entry is trusted only after the batch at its position proves
to start at its offset, and a missing or inconsistent file is rebuilt from the log.
"""

from __future__ import annotations

import os
import struct
from array import array
from pathlib import Path

from framework.log.backends.segments.fsutil import replace_atomically

#: Bytes of log between index entries (Kafka's ``index.interval.bytes``).
INTERVAL = 4096
#: offset (absolute), position in the .log file.
ENTRY = struct.Struct(">qq")


def load_offset_index(path: Path) -> tuple[array[int], array[int]] | None:
    """The (offsets, positions) in ``path``, or ``None`` if it is missing or does not
    parse as increasing entries (it is then rebuilt)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) % ENTRY.size:
        return None
    offsets: array[int] = array("q")
    positions: array[int] = array("q")
    for offset, position in ENTRY.iter_unpack(data):
        if offsets and (offset <= offsets[-1] or position <= positions[-1]):
            return None
        if offset < 0 or position < 0:
            return None
        offsets.append(offset)
        positions.append(position)
    return offsets, positions


def open_for_append(path: Path) -> int:
    """An fd that adds entries at the end of an index file (creating it)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def append_offset_entry(fd: int, offset: int, position: int) -> None:
    """Add one entry at the end of the file ``fd`` was opened for appending."""
    os.write(fd, ENTRY.pack(offset, position))


def write_offset_index(path: Path, offsets: array[int], positions: array[int]) -> None:
    """Replace the file with these entries, atomically."""
    data = b"".join(ENTRY.pack(o, p) for o, p in zip(offsets, positions, strict=True))
    replace_atomically(path, data)
