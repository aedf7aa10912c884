"""The tail of an active segment: judging the bytes after its last whole batch.

They are preallocated zeros, a write in flight (only while another process holds the
writer lock), a write torn by a crash (cut off by the next lock holder), or damage
(raised as ``CorruptSegmentError``, never skipped). Each judgement returns whether
the bytes are left for a writer to judge (``True``) or settled (``False``).
"""

from __future__ import annotations

import logging

from framework.log.backends.segments import preallocation
from framework.log.backends.segments.segment import Segment, file_name, segment_bases
from framework.log.backends.segments.walk import Problem, valid_batch_after

logger = logging.getLogger("framework.log")


def judge_problem(
    segment: Segment,
    problem: Problem,
    file_size: int,
    *,
    writer: bool,
    scan: bool = True,
) -> bool:
    """Judge a bad batch at the end of the data: a torn write (cut off by a
    ``writer``, left by a reader) or corruption (raised). A reader that does not
    ``scan`` for a valid batch after it leaves the whole judgement to a writer."""
    if not writer and (problem.incomplete or not scan):
        return True  # maybe a write in flight: only a lock holder can tell
    found = valid_batch_after(
        segment.fd, problem.position, file_size, segment.next_offset
    )
    if found is not None:
        raise segment.corrupt(
            problem.position,
            f"{problem.reason}, and a valid batch follows at byte {found}, so "
            "this is not a write torn by a crash",
        )
    if not writer:
        return True
    directory = segment.log_path.parent
    later = [b for b in segment_bases(directory) if b > segment.base_offset]
    if later:
        raise segment.corrupt(
            problem.position,
            f"{problem.reason}, in a segment followed by {file_name(later[0], '.log')}",
        )
    cut(segment, problem.position, file_size, problem.reason)
    return False


def judge_zeros(
    segment: Segment, file_size: int, *, sealed: bool, writer: bool
) -> bool:
    """Judge the bytes after data that ended at an all-zero header: nothing but
    preallocated zeros, a torn write (stray bytes; cut off by a ``writer``) or
    damage (a valid batch among them, or anything after a sealed segment)."""
    nonzero = preallocation.first_nonzero(segment.fd, segment.size, file_size)
    if nonzero is None:
        return False
    found = valid_batch_after(segment.fd, segment.size, file_size, segment.next_offset)
    if found is not None or sealed:
        where = f"a valid batch at byte {found}" if found else f"byte {nonzero}"
        raise segment.corrupt(
            segment.size,
            f"the batches end in zeros here, but data follows at {where}, so this "
            "is not the end of the segment",
        )
    if not writer:
        return True
    cut(segment, segment.size, file_size, "bytes follow preallocated zeros")
    return False


def cut(segment: Segment, position: int, file_size: int, why: str) -> None:
    """Cut off a torn write, and any preallocated space after it (the next append
    preallocates again)."""
    torn = preallocation.data_end(segment.fd, position, file_size) - position
    logger.warning(
        "%s: cutting off %d bytes at byte %d left by an interrupted write (%s); "
        "they were never acknowledged",
        segment.log_path,
        torn,
        position,
        why,
    )
    segment.truncate(position)
