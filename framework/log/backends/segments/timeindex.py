"""The time index of a segment: sparse ``max timestamp so far -> offset`` entries.

Entry ``(t, o)`` says that no record of the segment up to and including the batch at
offset ``o`` has a timestamp above ``t``: the running maximum, as Kafka keeps it, so
the entries are sorted even when producers hand in timestamps out of order. The time
index has an entry wherever the offset index has one; like it, it is a rebuildable hint.

Unlike an offset, a running maximum cannot be checked against the one batch its
entry points at: a damaged entry that still sorts would send a seek past the record
it wants. So each entry carries a CRC-32 chained from the previous entry's (the
first from the segment's base offset): an entry is used only if it and every entry
before it check out, and the rest is rebuilt from the log.
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from pathlib import Path

from framework.log.backends.segments.fsutil import replace_atomically

#: running maximum timestamp (UTC ms), offset (absolute), chained CRC-32.
ENTRY = struct.Struct(">qqI")
_CHECKED = struct.Struct(">qq")
_SEED = struct.Struct(">q")


def chain_start(base_offset: int) -> int:
    """The CRC the first entry of a segment's time index chains from."""
    return zlib.crc32(_SEED.pack(base_offset))


def chain(previous: int, timestamp: int, offset: int) -> int:
    """The CRC of an entry that follows an entry whose CRC is ``previous``."""
    return zlib.crc32(_CHECKED.pack(timestamp, offset), previous)


def load_time_index(
    path: Path, base_offset: int
) -> tuple[array[int], array[int], bool] | None:
    """(timestamps, offsets, whole) of the entries in ``path`` that check out: every
    entry up to the first whose CRC breaks the chain or that is out of order.
    ``whole`` says the file held nothing else. ``None`` if the file is missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    timestamps: array[int] = array("q")
    offsets: array[int] = array("q")
    crc = chain_start(base_offset)
    usable = len(data) - len(data) % ENTRY.size
    for timestamp, offset, stored in ENTRY.iter_unpack(data[:usable]):
        crc = chain(crc, timestamp, offset)
        if stored != crc or offset < base_offset:
            break
        if offsets and (offset <= offsets[-1] or timestamp < timestamps[-1]):
            break
        timestamps.append(timestamp)
        offsets.append(offset)
    return timestamps, offsets, len(offsets) * ENTRY.size == len(data)


def encode_time_entry(previous: int, timestamp: int, offset: int) -> tuple[bytes, int]:
    """The bytes of an entry after one whose CRC is ``previous``, and its CRC."""
    crc = chain(previous, timestamp, offset)
    return ENTRY.pack(timestamp, offset, crc), crc


def append_time_entry(fd: int, entry: bytes) -> None:
    """Add one encoded entry at the end of the file ``fd`` was opened for appending
    (``index.open_for_append``)."""
    os.write(fd, entry)


def write_time_index(
    path: Path, timestamps: array[int], offsets: array[int], base_offset: int
) -> int:
    """Replace the file with these entries, atomically; returns the last CRC."""
    crc = chain_start(base_offset)
    parts = []
    for timestamp, offset in zip(timestamps, offsets, strict=True):
        entry, crc = encode_time_entry(crc, timestamp, offset)
        parts.append(entry)
    replace_atomically(path, b"".join(parts))
    return crc
