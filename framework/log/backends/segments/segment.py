"""A segment: one ``.log`` file of whole batches, and what is known about it.

The file is named by the base offset (20 digits, Kafka style), beside its ``.index``
and ``.timeindex``. A segment knows how many of its bytes hold whole, checked batches
(``size``); bytes after that are either a batch still being written by another
process or a torn batch a crash left behind, and are never handed to a reader.
"""

from __future__ import annotations

import bisect
import os
from array import array
from collections.abc import Callable
from pathlib import Path

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
from framework.log.backends.segments.errors import CorruptSegmentError
from framework.log.backends.segments.index import (
    INTERVAL,
    append_offset_entry,
    load_offset_index,
    write_offset_index,
)
from framework.log.backends.segments.timeindex import (
    append_time_entry,
    load_time_index,
    write_time_index,
)

#: Bytes read per call while walking a file.
CHUNK = 1 << 20
#: Running maximum of no timestamps at all.
NO_TIMESTAMP = -(1 << 63)


def file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


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
    whole, valid one; stop at the first that is not and describe it."""
    pos = start
    buf = b""
    buf_pos = start
    view = memoryview(buf)
    while pos < end:
        rel = pos - buf_pos
        if rel + HEADER_SIZE > len(buf):
            buf = pread_exactly(fd, min(max(CHUNK, HEADER_SIZE), end - pos), pos)
            buf_pos, rel, view = pos, 0, memoryview(buf)
            if len(buf) < HEADER_SIZE:
                return Problem(pos, "the batch header is cut short", incomplete=True)
        header = parse_header(buf, rel)
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
            buf = pread_exactly(fd, max(CHUNK, size), pos)
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


class Segment:
    """One segment of a partition. Guarded by the partition's state lock."""

    __slots__ = (
        "base_offset",
        "fd",
        "first_batch_timestamp",
        "index_path",
        "index_stale",
        "log_path",
        "max_timestamp",
        "next_offset",
        "offsets",
        "pins",
        "positions",
        "retired",
        "size",
        "time_path",
        "times",
    )

    def __init__(self, directory: Path, base_offset: int, fd: int) -> None:
        self.base_offset = base_offset
        self.log_path = directory / file_name(base_offset, ".log")
        self.index_path = directory / file_name(base_offset, ".index")
        self.time_path = directory / file_name(base_offset, ".timeindex")
        self.fd = fd
        #: Bytes of whole, valid batches, and the offset after the last of them.
        self.size = 0
        self.next_offset = base_offset
        self.max_timestamp = NO_TIMESTAMP
        #: Max timestamp of the first batch: segment age for rolling, as in Kafka.
        self.first_batch_timestamp: int | None = None
        #: Sparse index kept in memory: offset, position and running max timestamp.
        self.offsets: array[int] = array("q")
        self.positions: array[int] = array("q")
        self.times: array[int] = array("q")
        #: The in-memory index was rebuilt and not yet written to the index files.
        self.index_stale = False
        #: Readers using the file right now; a retired segment closes at zero.
        self.pins = 0
        self.retired = False

    @classmethod
    def open(
        cls, directory: Path, base_offset: int, *, create: bool = False
    ) -> Segment:
        path = directory / file_name(base_offset, ".log")
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        return cls(directory, base_offset, os.open(path, flags, 0o644))

    # -- what is known ------------------------------------------------------------

    def note_batch(self, position: int, header: BatchHeader) -> bool:
        """Record a whole, valid batch at ``position``; ``True`` if it got an entry in
        the sparse index (by the rule every process applies the same way)."""
        self.size = position + header.size
        self.next_offset = header.last_offset + 1
        self.max_timestamp = max(self.max_timestamp, header.max_timestamp)
        if self.first_batch_timestamp is None and position == 0:
            self.first_batch_timestamp = header.max_timestamp
        positions = self.positions
        if not positions or position - positions[-1] >= INTERVAL:
            if positions and position <= positions[-1]:
                return False
            self.offsets.append(header.base_offset)
            positions.append(position)
            self.times.append(self.max_timestamp)
            return True
        return False

    def load_index(self) -> bool:
        """Load the index files if they agree with each other and with the log's first
        bytes; ``False`` if they must be rebuilt."""
        loaded = load_offset_index(self.index_path)
        timed = load_time_index(self.time_path)
        if loaded is None or timed is None:
            return False
        offsets, positions = loaded
        times, time_offsets = timed
        if offsets != time_offsets or not offsets:
            return False
        if offsets[0] < self.base_offset or positions[0] != 0:
            return False
        self.offsets, self.positions, self.times = offsets, positions, times
        return True

    def reset(self) -> None:
        """Forget everything known, to walk the file again from its start."""
        self.size = 0
        self.next_offset = self.base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.first_batch_timestamp = None
        self.offsets = array("q")
        self.positions = array("q")
        self.times = array("q")

    def rebuild_index(self) -> None:
        """Index the known bytes again from the log itself, after an index entry
        proved wrong; the files are rewritten by the next holder of the file lock."""
        size, next_offset = self.size, self.next_offset
        self.reset()
        problem = walk(self.fd, 0, size, self.base_offset, self.note_batch)
        if problem is not None:
            raise self.corrupt(problem.position, problem.reason)
        if (self.size, self.next_offset) != (size, next_offset):
            raise self.corrupt(self.size, "the batches end before the known end")
        self.index_stale = True

    def trim_index_to(self, keep: int) -> None:
        del self.offsets[keep:]
        del self.positions[keep:]
        del self.times[keep:]

    def entry_checks_out(self, i: int, file_size: int) -> bool:
        """Whether index entry ``i`` points at a whole, valid batch of its offset."""
        position = self.positions[i]
        if position + HEADER_SIZE > file_size:
            return False
        head = pread_exactly(self.fd, HEADER_SIZE, position)
        header = parse_header(head, 0)
        if structure_problem(header) is not None:
            return False
        if header.base_offset != self.offsets[i] or position + header.size > file_size:
            return False
        data = pread_exactly(self.fd, header.size, position)
        return len(data) == header.size and batch.crc_matches(
            memoryview(data), 0, header
        )

    def resume_point(self) -> tuple[int, int, int]:
        """(position, offset, running max timestamp) of the last index entry, from
        where a walk continues; the segment start when there is none."""
        if not self.offsets:
            return 0, self.base_offset, NO_TIMESTAMP
        return self.positions[-1], self.offsets[-1], self.times[-1]

    def first_batch_header(self) -> BatchHeader | None:
        if self.size < HEADER_SIZE:
            return None
        return parse_header(pread_exactly(self.fd, HEADER_SIZE, 0), 0)

    def file_size(self) -> int:
        return os.fstat(self.fd).st_size

    def is_current(self) -> bool:
        """Whether the open file is still the one at ``log_path`` (retention or
        compaction in another process may have deleted or replaced it)."""
        try:
            on_disk = os.stat(self.log_path)
        except FileNotFoundError:
            return False
        return os.fstat(self.fd).st_ino == on_disk.st_ino

    # -- lookups --------------------------------------------------------------------

    def span_for(self, offset: int, size: int) -> tuple[int, int, int]:
        """(entry offset, start, stop): the bytes ``[start, stop)`` hold the batch with
        ``offset`` if this segment has it, starting with a batch at ``entry offset``.
        """
        i = bisect.bisect_right(self.offsets, offset) - 1
        if i < 0:
            return self.base_offset, 0, size
        stop = self.positions[i + 1] if i + 1 < len(self.positions) else size
        return self.offsets[i], self.positions[i], min(stop, size)

    def position_for_time(self, timestamp: int) -> tuple[int, int]:
        """(offset, position) from which a scan for ``timestamp`` must start: every
        record of this segment before it is older than ``timestamp``."""
        i = bisect.bisect_left(self.times, timestamp) - 1
        if i < 0:
            return self.base_offset, 0
        return self.offsets[i], self.positions[i]

    # -- writing --------------------------------------------------------------------

    def write_index_entry(self, i: int) -> None:
        """Append in-memory index entry ``i`` to the index files."""
        append_offset_entry(self.index_path, self.offsets[i], self.positions[i])
        append_time_entry(self.time_path, self.times[i], self.offsets[i])

    def write_index(self) -> None:
        """Replace the index files with the in-memory index."""
        write_offset_index(self.index_path, self.offsets, self.positions)
        write_time_index(self.time_path, self.times, self.offsets)
        self.index_stale = False

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def delete_files(self) -> None:
        """Remove the index files first, so a crash never leaves a .log whose index
        is gone but thought current (a missing index is simply rebuilt)."""
        for path in (self.time_path, self.index_path, self.log_path):
            path.unlink(missing_ok=True)

    def corrupt(self, position: int, what: str) -> CorruptSegmentError:
        return CorruptSegmentError(self.log_path, position, what)
