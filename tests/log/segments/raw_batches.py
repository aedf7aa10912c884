"""Reading a segment file's raw layout in tests that damage it on purpose."""

from __future__ import annotations

import struct
from pathlib import Path


def batch_positions(path: Path) -> list[int]:
    """Where each batch of a segment file starts (its data ends at a zero length)."""
    data = path.read_bytes()
    positions, pos = [], 0
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        if not length:
            break
        positions.append(pos)
        pos += 4 + length
    return positions
