"""The tail of an active segment: judging the bytes after its last whole batch.

They are preallocated zeros, a write in flight (only while another process holds the
writer lock), a write torn by a crash (cut off by the next lock holder), or damage
(raised as ``CorruptSegmentError``, never skipped). Bytes below the recovery point
(``synced_end``: every byte before it was covered by an fsync) are never taken for a
torn write. Each judgement returns whether the bytes are left for a writer to judge
(``True``) or settled (``False``).
"""

from __future__ import annotations

import logging

from framework.log.backends.segments import preallocation
from framework.log.backends.segments.batch import (
    HEADER_SIZE,
    MAGIC,
    BatchHeader,
    parse_header,
)
from framework.log.backends.segments.segment import Segment, file_name, segment_bases
from framework.log.backends.segments.walk import (
    Problem,
    pread_exactly,
    valid_batch_after,
    walk,
)

logger = logging.getLogger("framework.log")

#: Bytes of a batch header up to and including ``last_offset_delta``.
_LAST_DELTA_END = 23


def judge_problem(
    segment: Segment,
    problem: Problem,
    file_size: int,
    *,
    writer: bool,
    synced_end: int,
    scan: bool = True,
) -> bool:
    """Judge a bad batch at the end of the data: a torn write (cut off by a
    ``writer``, left by a reader) or corruption (raised). A reader that does not
    ``scan`` for a valid batch after it leaves the whole judgement to a writer."""
    synced = problem.position < synced_end
    if not (synced or writer) and (problem.incomplete or not scan):
        return True  # maybe a write in flight: only a lock holder can tell
    found = valid_batch_after(
        segment.fd, problem.position, file_size, segment.next_offset
    )
    if found is not None:
        if not (synced or writer) and _whole_since_walk(
            segment, problem.position, found
        ):
            # The walk read a batch another process was still writing; it has
            # finished it, and appended more.
            return True
        raise segment.corrupt(
            problem.position,
            f"{problem.reason}, and a valid batch follows at byte {found}, so "
            "this is not a write torn by a crash",
        )
    check_synced(segment, problem.position, synced_end, problem.reason)
    if not writer:
        return True
    directory = segment.log_path.parent
    later = [b for b in segment_bases(directory) if b > segment.base_offset]
    if later:
        raise segment.corrupt(
            problem.position,
            f"{problem.reason}, in a segment followed by {file_name(later[0], '.log')}",
        )
    cut(segment, problem.position, file_size, problem.reason, synced_end)
    return False


def judge_zeros(
    segment: Segment, file_size: int, *, sealed: bool, writer: bool, synced_end: int
) -> bool:
    """Judge the bytes after data that ended at an all-zero header: nothing but
    preallocated zeros, a torn write (stray bytes; cut off by a ``writer``) or
    damage (a valid batch among them, anything after a sealed segment, or zeros
    where synced data was)."""
    nonzero = preallocation.first_nonzero(segment.fd, segment.size, file_size)
    if nonzero is not None:
        found = valid_batch_after(
            segment.fd, segment.size, file_size, segment.next_offset
        )
        if found is not None or sealed:
            if not (writer or sealed) and _landed_since_walk(segment):
                # A reader walked up to zeros before another process's append
                # landed there: what follows is that append and the next ones.
                return True
            where = f"a valid batch at byte {found}" if found else f"byte {nonzero}"
            raise segment.corrupt(
                segment.size,
                f"the batches end in zeros here, but data follows at {where}, so "
                "this is not the end of the segment",
            )
    check_synced(segment, segment.size, synced_end, "the batches end in zeros here")
    if nonzero is None:
        return False
    if not writer:
        return True
    cut(segment, segment.size, file_size, "bytes follow preallocated zeros", synced_end)
    return False


def _whole_since_walk(segment: Segment, position: int, found: int) -> bool:
    """Whether the bytes from the bad batch at ``position`` up to the valid one
    at ``found`` are whole batches now. Checked after the scan, as for
    ``_landed_since_walk``: damage does not mend itself under the reader."""
    return walk(segment.fd, position, found, segment.next_offset, _ignore) is None


def _ignore(position: int, header: BatchHeader) -> None:
    """A walk's ``on_batch`` that only checks."""


def _landed_since_walk(segment: Segment) -> bool:
    """Whether the all-zero header the data ended at holds bytes now. Checked
    after the scan for a valid batch: appends land in offset order, so one found
    after the zeros means the batch at the zeros, if appended, is there too;
    damage does not change under the reader."""
    return (
        pread_exactly(segment.fd, HEADER_SIZE, segment.size)
        != preallocation.ZERO_HEADER
    )


def check_synced(segment: Segment, position: int, synced_end: int, what: str) -> None:
    """Raise if the data ends or goes bad at ``position``, below the recovery point:
    those bytes were synced, so a crash cannot have torn them."""
    if position < synced_end:
        raise segment.corrupt(
            position,
            f"{what}, but the recovery point says every byte up to {synced_end} was "
            "synced, so this is damage, not a write torn by a crash",
        )


def cut(
    segment: Segment, position: int, file_size: int, why: str, synced_end: int
) -> None:
    """Cut off a torn write, and any preallocated space after it (the next append
    preallocates again)."""
    torn = preallocation.data_end(segment.fd, position, file_size) - position
    vouched = (
        f"past the recovery point (byte {synced_end})"
        if synced_end
        else "with no recovery point in this segment"
    )
    logger.warning(
        "%s: cut off %d bytes at byte %d (%s) %s, taking them for a write torn by "
        "a crash (%s). They may have been acknowledged: an append is acknowledged "
        "once fsynced, before the recovery point catches up with it",
        segment.log_path,
        torn,
        position,
        _offsets_at(segment, position),
        vouched,
        why,
    )
    segment.truncate(position)


def _offsets_at(segment: Segment, position: int) -> str:
    """The offsets the cut batch held, as far as what is left of its header tells
    (a torn one may end before the header does)."""
    first = segment.next_offset
    head = pread_exactly(segment.fd, HEADER_SIZE, position)
    if len(head) >= _LAST_DELTA_END:
        header = parse_header(head.ljust(HEADER_SIZE, b"\0"), 0)
        if (
            header.magic == MAGIC
            and header.base_offset == first
            and header.last_offset_delta >= 0
        ):
            return f"offsets {first}..{header.last_offset}"
    return f"offsets from {first} on, if any"
