"""Stream-index snapshots: the index of a partition saved to a file, so that opening a
large log reads the snapshot and catches up with the tail instead of scanning it all.

The snapshot is a cache: it is checked (CRC, and the last record it covers must still
hold the stream version it claims) and ignored if it does not match, after which the
index is rebuilt from the log. Nothing acknowledged depends on it.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from array import array
from pathlib import Path

from framework.log.backends.segments.fsutil import make_dirs

logger = logging.getLogger("framework.store")

MAGIC = b"FWSI"
FORMAT_VERSION = 1
#: magic, format version, next offset, stream count
_HEADER = struct.Struct("<4sHqI")
#: id length, offset count
_ENTRY = struct.Struct("<HI")
_CRC = struct.Struct("<I")

Streams = dict[str, "array[int]"]


def encode(streams: Streams, next_offset: int) -> bytes:
    parts = [_HEADER.pack(MAGIC, FORMAT_VERSION, next_offset, len(streams))]
    for stream_id, offsets in streams.items():
        key = stream_id.encode()
        parts.append(_ENTRY.pack(len(key), len(offsets)))
        parts.append(key)
        parts.append(offsets.tobytes())
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode(data: bytes) -> tuple[Streams, int] | None:
    """The streams and next offset in a snapshot, or ``None`` if it is not valid."""
    if len(data) < _HEADER.size + _CRC.size:
        return None
    body, (crc,) = data[: -_CRC.size], _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(body) != crc:
        return None
    magic, version, next_offset, count = _HEADER.unpack_from(body, 0)
    if magic != MAGIC or version != FORMAT_VERSION:
        return None
    view = memoryview(body)
    position = _HEADER.size
    streams: Streams = {}
    unpack_entry = _ENTRY.unpack_from
    entry_size = _ENTRY.size
    for _ in range(count):
        key_length, offset_count = unpack_entry(body, position)
        position += entry_size
        stream_id = bytes(view[position : position + key_length]).decode()
        position += key_length
        offsets = array("q")
        offsets.frombytes(view[position : position + 8 * offset_count])
        position += 8 * offset_count
        streams[stream_id] = offsets
    if position != len(body):
        return None
    return streams, next_offset


def write(path: Path, streams: Streams, next_offset: int) -> None:
    """Replace the snapshot at ``path`` atomically (temp file, then rename)."""
    make_dirs(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(encode(streams, next_offset))
    # No fsync: a snapshot lost in a power cut is rebuilt from the log.
    temporary.replace(path)


def read(path: Path) -> tuple[Streams, int] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    found = decode(data)
    if found is None:
        logger.warning("ignoring the damaged stream-index snapshot %s", path)
    return found
