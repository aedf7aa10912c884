"""Repair: check every batch of a partition and cut it off at the first bad one.

Opening a partition already cuts off a torn last batch; ``repair`` is for what
opening refuses to guess about (a bad batch inside a sealed segment, or followed by
valid data), after the operator chose to lose the data from there on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs

from framework.log.backends.segments import preallocation
from framework.log.backends.segments.fsutil import make_dirs, sync_dir
from framework.log.backends.segments.partition import Partition
from framework.log.backends.segments.segment import Segment, file_name, segment_bases
from framework.log.backends.segments.walk import Problem, valid_batch_after, walk

logger = logging.getLogger("framework.log")


@attrs.frozen(kw_only=True)
class RepairReport:
    """What ``repair`` found and dropped; ``clean`` if it dropped nothing."""

    topic: str
    partition: int
    #: The file and byte of the first bad batch, and what was wrong with it.
    file: Path | None = None
    position: int | None = None
    reason: str | None = None
    #: The first offset no longer stored, and the partition's end offset now.
    first_dropped_offset: int | None = None
    end_offset: int
    dropped_bytes: int = 0
    deleted_segments: tuple[Path, ...] = ()

    @property
    def clean(self) -> bool:
        return self.file is None

    def __str__(self) -> str:
        where = f"{self.topic}/{self.partition}"
        if self.clean:
            return f"{where}: every batch is sound; nothing dropped"
        return (
            f"{where}: {self.file} byte {self.position}: {self.reason}; dropped "
            f"{self.dropped_bytes} bytes from offset {self.first_dropped_offset} on "
            f"and {len(self.deleted_segments)} later segment(s); the partition now "
            f"ends at offset {self.end_offset}"
        )


def repair(part: Partition) -> RepairReport:
    """Walk every batch of every segment; truncate at the first bad one and delete
    the segments after it. Holds the partition's locks throughout."""
    with part.writing(), part.state:
        for segment in part.segments:
            part.retire(segment)
        part.segments, part.bases = [], []
        make_dirs(part.directory)
        bases = segment_bases(part.directory)
        report = RepairReport(topic=part.topic, partition=part.number, end_offset=0)
        for i, base in enumerate(bases):
            segment = Segment.open(part.directory, base)
            try:
                file_size = segment.file_size()
                problem = walk(segment.fd, 0, file_size, base, segment.note_batch)
                if problem is None and segment.size < file_size:
                    problem = _after_zeros(segment, file_size)
                following = bases[i + 1] if i + 1 < len(bases) else None
                if problem is None and following not in (None, segment.next_offset):
                    problem = Problem(
                        segment.size,
                        f"the segment ends at offset {segment.next_offset} but "
                        f"{file_name(following or 0, '.log')} starts at {following}",
                        incomplete=False,
                    )
                if problem is None:
                    segment.write_index()
                    report = attrs.evolve(report, end_offset=segment.next_offset)
                    continue
                report = _cut(part, segment, problem, file_size, bases[i + 1 :])
                break
            finally:
                segment.close()
        part.reload()
        if not report.clean:
            logger.warning("repair: %s", report)
        return report


def _cut(
    part: Partition,
    segment: Segment,
    problem: Problem,
    file_size: int,
    later: list[int],
) -> RepairReport:
    dropped = preallocation.data_end(segment.fd, problem.position, file_size)
    dropped -= problem.position
    deleted = []
    for base in reversed(later):  # newest first: a crash leaves a shorter log
        for suffix in (".timeindex", ".index", ".log"):
            path = part.directory / file_name(base, suffix)
            if suffix == ".log":
                dropped += _empty(path)
                deleted.append(path)
            path.unlink(missing_ok=True)
    segment.truncate(problem.position)
    segment.write_index()
    sync_dir(part.directory)
    return RepairReport(
        topic=part.topic,
        partition=part.number,
        file=segment.log_path,
        position=problem.position,
        reason=problem.reason,
        first_dropped_offset=segment.next_offset,
        end_offset=segment.next_offset,
        dropped_bytes=dropped,
        deleted_segments=tuple(reversed(deleted)),
    )


def _after_zeros(segment: Segment, file_size: int) -> Problem | None:
    """What is wrong with the bytes after a segment's data, which ended at an
    all-zero header: nothing if they are preallocated zeros."""
    nonzero = preallocation.first_nonzero(segment.fd, segment.size, file_size)
    if nonzero is None:
        return None
    found = valid_batch_after(segment.fd, segment.size, file_size, segment.next_offset)
    where = f"a valid batch at byte {found}" if found else f"byte {nonzero}"
    return Problem(
        segment.size,
        f"the batches end in zeros here, but data follows at {where}",
        incomplete=False,
    )


def _empty(path: Path) -> int:
    """Cut a segment to nothing before it is deleted, so that a process that still
    has it open as its active segment finds it shrunk rather than preallocated
    zeros, and reloads (``Partition.follow``); returns the bytes of data it held."""
    fd = os.open(path, os.O_RDWR)
    try:
        held = preallocation.data_end(fd, 0, os.fstat(fd).st_size)
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    return held
