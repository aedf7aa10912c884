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

from framework.files import make_dirs

logger = logging.getLogger("framework.store")

MAGIC = b"FWSI"
FORMAT_VERSION = 2
#: magic, format version, next offset, stream count
_HEADER = struct.Struct("<4sHqI")
#: id length, offset count, by format version (the first kept ids under 64 KiB)
_ENTRIES = {1: struct.Struct("<HI"), 2: struct.Struct("<II")}
_ENTRY = _ENTRIES[FORMAT_VERSION]
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
    """The streams and next offset in a snapshot, or ``None`` if it is not valid
    (whatever the bytes: a snapshot is a cache, and a bad one is rebuilt)."""
    if len(data) < _HEADER.size + _CRC.size:
        return None
    body, (crc,) = data[: -_CRC.size], _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(body) != crc:
        return None
    magic, version, next_offset, count = _HEADER.unpack_from(body, 0)
    entry = _ENTRIES.get(version)
    if magic != MAGIC or entry is None:
        return None
    try:
        return _decode_entries(body, entry, count, next_offset)
    except (struct.error, UnicodeDecodeError, ValueError):
        # The checksum matched but the counts do not fit the bytes.
        return None


def _decode_entries(
    body: bytes, entry: struct.Struct, count: int, next_offset: int
) -> tuple[Streams, int] | None:
    view = memoryview(body)
    position = _HEADER.size
    streams: Streams = {}
    unpack_entry = entry.unpack_from
    entry_size = entry.size
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
    """Replace the snapshot at ``path`` atomically (temp file, then rename).
    Raises ``OSError`` (a full disk, say), leaving no temp file behind."""
    make_dirs(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(encode(streams, next_offset))
        # No fsync: a snapshot lost in a power cut is rebuilt from the log.
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read(path: Path) -> tuple[Streams, int] | None:
    """The snapshot at ``path``, or ``None`` if there is none or it is unusable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read the stream-index snapshot %s: %s", path, exc)
        return None
    found = decode(data)
    if found is None:
        logger.warning("ignoring the damaged stream-index snapshot %s", path)
    return found
