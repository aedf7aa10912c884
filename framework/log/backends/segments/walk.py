"""Walking a segment file: checking its batches in order up to the first one that is
not whole and valid (``Problem``), and looking past a bad one for a valid batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs

from framework.log.backends.segments import batch
from framework.log.backends.segments.batch import (
    COMPACTED,
    HEADER,
    HEADER_SIZE,
    LENGTH_SIZE,
    MAGIC,
    PREFIX,
    BatchHeader,
    parse_header,
    structure_problem,
)
from framework.log.backends.segments.preallocation import ZERO_HEADER

#: Bytes read by the first call while walking a file, and by any call at most.
FIRST_CHUNK = 64 * 1024
CHUNK = 1 << 20


def pread_exactly(fd: int, size: int, position: int) -> bytes:
    """``size`` bytes at ``position``, or fewer only where the file ends."""
    data = os.pread(fd, size, position)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, position + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


@attrs.frozen
class Problem:
    """The first batch of a walk that is not whole and valid."""

    position: int
    reason: str
    #: The batch runs past the end of the file (a write in flight, or torn by a crash).
    incomplete: bool


def walk(  # noqa: PLR0911 - one return for each way a batch can be unusable
    fd: int,
    start: int,
    end: int,
    expected_offset: int,
    on_batch: Callable[[int, BatchHeader], object],
) -> Problem | None:
    """Check the batches in ``[start, end)`` in order, calling ``on_batch`` for each
    whole, valid one; stop at the first that is not and describe it.

    An all-zero header (preallocated space) ends the data without a problem; the
    caller learns where from the last ``on_batch`` and decides whether the rest of
    the file must be checked (``preallocation.first_nonzero``).
    """
    pos = start
    buf = b""
    buf_pos = start
    view = memoryview(buf)
    # Small first: a walk usually takes in a few new batches before preallocated
    # zeros, and reading a whole chunk of zeros each time would cost more than them.
    chunk = FIRST_CHUNK
    while pos < end:
        rel = pos - buf_pos
        if rel + HEADER_SIZE > len(buf):
            buf = pread_exactly(fd, min(max(chunk, HEADER_SIZE), end - pos), pos)
            chunk = min(chunk * 2, CHUNK)
            buf_pos, rel, view = pos, 0, memoryview(buf)
            if len(buf) < HEADER_SIZE:
                if buf and not buf.strip(b"\0"):
                    return None  # the file ends in preallocated zeros
                return Problem(pos, "the batch header is cut short", incomplete=True)
        header = parse_header(buf, rel)
        if not header.length and buf[rel : rel + HEADER_SIZE] == ZERO_HEADER:
            return None
        problem = structure_problem(header)
        if problem is not None:
            return Problem(pos, problem, incomplete=False)
        size = header.size
        if pos + size > end:
            return Problem(
                pos,
                f"the batch of {size} bytes runs past the end of the file at {end}",
                incomplete=True,
            )
        if rel + size > len(buf):
            buf = pread_exactly(fd, max(chunk, size), pos)
            chunk = min(chunk * 2, CHUNK)
            buf_pos, rel, view = pos, 0, memoryview(buf)
            if len(buf) < size:
                return Problem(pos, "the file shrank while it was read", True)
        if not batch.crc_matches(view, rel, header):
            return Problem(pos, "the batch fails its CRC check", incomplete=False)
        if header.base_offset != expected_offset and not (
            header.attributes & COMPACTED and header.base_offset > expected_offset
        ):
            return Problem(
                pos,
                f"the batch starts at offset {header.base_offset} where offset "
                f"{expected_offset} was expected",
                incomplete=False,
            )
        on_batch(pos, header)
        expected_offset = header.last_offset + 1
        pos += size
    return None


def valid_batch_after(
    fd: int, start: int, end: int, expected_offset: int
) -> int | None:
    """The position of a valid batch somewhere in ``(start, end)``, if there is one.

    A crash tears only the last batch written, so bad bytes followed by a good batch
    are corruption, not a torn tail. Candidates are found by their magic byte and a
    plausible base offset (records take at least 24 bytes each), then CRC-checked.
    """
    first = start + 1
    if end - first < HEADER_SIZE:
        return None
    data = pread_exactly(fd, end - first, first)
    view = memoryview(data)
    magic = bytes([MAGIC])
    highest = expected_offset + (end - start) // batch.RECORD.size + 1
    find = data.find
    at = find(magic, LENGTH_SIZE)
    while at >= 0:
        rel = at - LENGTH_SIZE
        if rel + HEADER_SIZE > len(data):
            return None
        length, _, base_offset, _ = PREFIX.unpack_from(data, rel)
        if (
            expected_offset <= base_offset <= highest
            and rel + LENGTH_SIZE + length <= len(data)
        ):
            header = BatchHeader._make(HEADER.unpack_from(data, rel))
            if structure_problem(header) is None and batch.crc_matches(
                view, rel, header
            ):
                return first + rel
        at = find(magic, at + 1)
    return None
