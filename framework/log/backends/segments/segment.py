"""A segment: one ``.log`` file of whole batches, and what is known about it.

The file is named by the base offset (20 digits, Kafka style), beside its ``.index``
and ``.timeindex``. A segment knows how many of its bytes hold whole, checked batches
(``size``); bytes after that are preallocated zeros, a batch still being written by
another process or a torn batch a crash left behind, and are never handed to a
reader.
"""

from __future__ import annotations

import bisect
import os
from array import array
from pathlib import Path

from framework.log.backends.segments import batch
from framework.log.backends.segments.batch import (
    HEADER_SIZE,
    BatchHeader,
    parse_header,
    structure_problem,
)
from framework.log.backends.segments.errors import CorruptSegmentError
from framework.log.backends.segments.index import (
    INTERVAL,
    append_offset_entry,
    load_offset_index,
    open_for_append,
    write_offset_index,
)
from framework.log.backends.segments.timeindex import (
    append_time_entry,
    chain,
    chain_start,
    encode_time_entry,
    load_time_index,
    write_time_index,
)
from framework.log.backends.segments.walk import Problem, pread_exactly, walk

#: Running maximum of no timestamps at all.
NO_TIMESTAMP = -(1 << 63)


def file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


def segment_bases(directory: Path) -> list[int]:
    """Base offsets of the segments in ``directory`` (its ``.log`` files), sorted."""
    bases = []
    for name in os.listdir(directory):
        stem, dot, suffix = name.partition(".")
        if dot and suffix == "log" and len(stem) == 20 and stem.isdigit():
            bases.append(int(stem))
    return sorted(bases)


class Segment:
    """One segment of a partition. Guarded by the partition's state lock."""

    __slots__ = (
        "allocated",
        "base_offset",
        "fd",
        "first_batch_timestamp",
        "index_fds",
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
        "time_chain",
        "time_chained",
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
        #: The CRC of time-index entry ``time_chained - 1`` (``timeindex``), kept so
        #: that appending an entry does not checksum the ones before it again.
        self.time_chain = chain_start(base_offset)
        self.time_chained = 0
        #: Readers using the file right now; a retired segment closes at zero.
        self.pins = 0
        self.retired = False
        #: The file's size as this process last knew it (``0``: look it up); bytes
        #: from ``size`` to it are preallocated zeros.
        self.allocated = 0
        #: The index files opened for appending, kept open: opening and closing
        #: them for every entry cost more than the rest of an append's bookkeeping.
        self.index_fds: tuple[int, int] | None = None

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
        return self.note(
            position,
            header.size,
            header.base_offset,
            header.last_offset,
            header.max_timestamp,
        )

    def note(
        self, position: int, size: int, base: int, last: int, max_timestamp: int
    ) -> bool:
        """``note_batch`` from the batch's figures (an appender has them at hand)."""
        self.size = position + size
        self.next_offset = last + 1
        self.max_timestamp = max(self.max_timestamp, max_timestamp)
        if self.first_batch_timestamp is None and position == 0:
            self.first_batch_timestamp = max_timestamp
        positions = self.positions
        if not positions or position - positions[-1] >= INTERVAL:
            if positions and position <= positions[-1]:
                return False
            self.offsets.append(base)
            positions.append(position)
            self.times.append(self.max_timestamp)
            return True
        return False

    def load_index(self) -> bool:
        """Load the entries of the index files that agree with each other and with
        the log's first bytes; ``False`` if there are none (the index is then
        rebuilt). Entries after the first that does not check out are dropped, and
        the files marked for rewriting: the walk from the last entry kept finds the
        batches after it again."""
        loaded = load_offset_index(self.index_path)
        timed = load_time_index(self.time_path, self.base_offset)
        if loaded is None or timed is None:
            return False
        offsets, positions = loaded
        times, time_offsets, whole = timed
        if not offsets or offsets[0] < self.base_offset or positions[0] != 0:
            return False
        agree = 0
        for offset, timed_offset in zip(offsets, time_offsets, strict=False):
            if offset != timed_offset:
                break
            agree += 1
        if not agree:
            return False
        if not whole or agree < len(offsets) or agree < len(time_offsets):
            self.index_stale = True
        del offsets[agree:], positions[agree:], times[agree:]
        self.offsets, self.positions, self.times = offsets, positions, times
        self.time_chained = -1  # checked on load; chained again when next appended
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
        self.time_chained = -1

    def rebuild_index(self) -> None:
        """Index the known bytes again from the log itself, after an index entry
        proved wrong; the files are rewritten by the next holder of the file lock."""
        known = (
            self.size,
            self.next_offset,
            self.max_timestamp,
            self.first_batch_timestamp,
            self.offsets,
            self.positions,
            self.times,
        )
        size, next_offset = self.size, self.next_offset
        self.reset()
        problem = walk(self.fd, 0, size, self.base_offset, self.note_batch)
        if problem is None and (self.size, self.next_offset) != (size, next_offset):
            problem = Problem(self.size, "the batches end before the known end", False)
        if problem is not None:
            # Keep what was known: a half-walked index would hide the batches
            # after the damage (from seeks by time, say) instead of raising.
            (
                self.size,
                self.next_offset,
                self.max_timestamp,
                self.first_batch_timestamp,
                self.offsets,
                self.positions,
                self.times,
            ) = known
            self.time_chained = -1
            raise self.corrupt(problem.position, problem.reason)
        self.index_stale = True

    def trim_index_to(self, keep: int) -> None:
        del self.offsets[keep:]
        del self.positions[keep:]
        del self.times[keep:]
        if self.time_chained > keep:
            self.time_chained = -1

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

    def position_for_time(self, timestamp: int) -> tuple[int, int, int]:
        """(offset, position, claimed running maximum) from which a scan for
        ``timestamp`` must start: every record of this segment before it is older
        than ``timestamp``. The batch there must start at that offset and carry no
        timestamp above the claim, or the index is wrong."""
        i = bisect.bisect_left(self.times, timestamp) - 1
        if i < 0:
            return self.base_offset, 0, NO_TIMESTAMP
        return self.offsets[i], self.positions[i], self.times[i]

    # -- writing --------------------------------------------------------------------

    def write_index_entry(self, i: int) -> None:
        """Append in-memory index entry ``i`` to the index files."""
        fds = self.index_fds
        if fds is None:
            index_fd = open_for_append(self.index_path)
            try:
                fds = self.index_fds = (index_fd, open_for_append(self.time_path))
            except OSError:
                os.close(index_fd)
                raise
        entry, crc = encode_time_entry(
            self._time_chain_before(i), self.times[i], self.offsets[i]
        )
        append_offset_entry(fds[0], self.offsets[i], self.positions[i])
        append_time_entry(fds[1], entry)
        self.time_chain, self.time_chained = crc, i + 1

    def _time_chain_before(self, i: int) -> int:
        """The CRC of time-index entry ``i - 1``: the chain so far, extended over
        entries noted since (batches other processes appended, which they indexed
        in the files already), or computed afresh after the index was trimmed."""
        if not 0 <= self.time_chained <= i:
            self.time_chain, self.time_chained = chain_start(self.base_offset), 0
        crc = self.time_chain
        times, offsets = self.times, self.offsets
        for n in range(self.time_chained, i):
            crc = chain(crc, times[n], offsets[n])
        self.time_chain, self.time_chained = crc, i
        return crc

    def _close_index_files(self) -> None:
        # They may name files that a rewrite replaced: reopen by path when needed.
        if self.index_fds is not None:
            for fd in self.index_fds:
                os.close(fd)
            self.index_fds = None

    def write_index(self) -> None:
        """Replace the index files with the in-memory index."""
        self._close_index_files()
        write_offset_index(self.index_path, self.offsets, self.positions)
        self.time_chain = write_time_index(
            self.time_path, self.times, self.offsets, self.base_offset
        )
        self.time_chained = len(self.offsets)
        self.index_stale = False

    def truncate(self, size: int) -> None:
        """Cut the file at ``size`` (dropping any preallocated space), durably."""
        os.ftruncate(self.fd, size)
        os.fsync(self.fd)
        self.allocated = size

    def close(self) -> None:
        self._close_index_files()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def delete_files(self) -> None:
        """Remove the index files first, so a crash never leaves a .log whose index
        is gone but thought current (a missing index is simply rebuilt)."""
        self._close_index_files()
        for path in (self.time_path, self.index_path, self.log_path):
            path.unlink(missing_ok=True)

    def corrupt(self, position: int, what: str) -> CorruptSegmentError:
        return CorruptSegmentError(self.log_path, position, what)
