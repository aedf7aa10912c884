"""The time index of a segment: sparse ``max timestamp so far -> offset`` entries.

Entry ``(t, o)`` says that no record of the segment up to and including the batch at
offset ``o`` has a timestamp above ``t``: the running maximum, as Kafka keeps it, so
the entries are sorted even when producers hand in timestamps out of order. The time
index has an entry wherever the offset index has one; like it, it is a rebuildable hint.
"""

from __future__ import annotations

import os
import struct
from array import array
from pathlib import Path

from framework.log.backends.segments.fsutil import replace_atomically

#: running maximum timestamp (UTC ms), offset (absolute).
ENTRY = struct.Struct(">qq")


def load_time_index(path: Path) -> tuple[array[int], array[int]] | None:
    """The (timestamps, offsets) in ``path``, or ``None`` if it is missing or not
    sorted (it is then rebuilt)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) % ENTRY.size:
        return None
    timestamps: array[int] = array("q")
    offsets: array[int] = array("q")
    for timestamp, offset in ENTRY.iter_unpack(data):
        if offsets and (offset <= offsets[-1] or timestamp < timestamps[-1]):
            return None
        timestamps.append(timestamp)
        offsets.append(offset)
    return timestamps, offsets


def append_time_entry(fd: int, timestamp: int, offset: int) -> None:
    """Add one entry at the end of the file ``fd`` was opened for appending
    (``index.open_for_append``)."""
    os.write(fd, ENTRY.pack(timestamp, offset))


def write_time_index(path: Path, timestamps: array[int], offsets: array[int]) -> None:
    data = b"".join(ENTRY.pack(t, o) for t, o in zip(timestamps, offsets, strict=True))
    replace_atomically(path, data)
