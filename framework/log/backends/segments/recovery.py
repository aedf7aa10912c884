"""Repair: check every batch of a partition and cut it off at the first bad one.

Opening a partition already cuts off a torn write past the recovery point;
``repair`` is for what opening refuses to guess about (damage below the recovery
point, a bad batch inside a sealed segment or followed by valid data, synced data
missing), after the operator chose to lose the data from there on. A dry run says
what it would drop and changes nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import attrs

from framework.files import make_dirs, sync_dir
from framework.log.backends.segments import preallocation, recoverypoint
from framework.log.backends.segments.partition import Partition
from framework.log.backends.segments.recoverypoint import RecoveryPoint
from framework.log.backends.segments.segment import Segment, file_name, segment_bases
from framework.log.backends.segments.walk import Problem, valid_batch_after, walk

logger = logging.getLogger("framework.log")


@attrs.frozen(kw_only=True)
class RepairReport:
    """What ``repair`` found and dropped (or, for a ``dry_run``, would drop);
    ``clean`` if there is nothing to drop."""

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
    #: Only checked: nothing was changed.
    dry_run: bool = False

    @property
    def clean(self) -> bool:
        return self.file is None

    def __str__(self) -> str:
        where = f"{self.topic}/{self.partition}"
        if self.clean:
            done = "nothing to drop" if self.dry_run else "nothing dropped"
            return f"{where}: every batch is sound; {done}"
        later = len(self.deleted_segments)
        names = ", ".join(p.name for p in self.deleted_segments)
        if self.dry_run:
            drop, end = "would drop", "would end"
        else:
            drop, end = "dropped", "now ends"
        return (
            f"{where}: {self.file} byte {self.position}: {self.reason}; {drop} "
            f"{self.dropped_bytes} bytes from offset {self.first_dropped_offset} on "
            f"and {later} later segment(s){f' ({names})' if later else ''}; the "
            f"partition {end} at offset {self.end_offset}"
        )


def repair(part: Partition, *, dry_run: bool = False) -> RepairReport:
    """Walk every batch of every segment; truncate at the first bad one and delete
    the segments after it. Holds the partition's locks throughout. A ``dry_run``
    changes nothing (not even this process's view of the partition) and reports
    what would be dropped.

    A cut moves the recovery point back to the new end, in a new epoch (see
    ``recoverypoint``); data missing below the recovery point is reported too, and
    the point moved back to where the data ends."""
    with part.writing(), part.state:
        if not dry_run:
            for segment in part.segments:
                part.retire(segment)
            part.segments, part.bases = [], []
            make_dirs(part.directory)
        bases = segment_bases(part.directory) if part.directory.is_dir() else []
        point, _ = recoverypoint.read(part.directory / recoverypoint.FILE_NAME)
        report = RepairReport(
            topic=part.topic, partition=part.number, end_offset=0, dry_run=dry_run
        )
        for i, base in enumerate(bases):
            segment = Segment.open(part.directory, base)
            try:
                following = bases[i + 1] if i + 1 < len(bases) else None
                problem = _problem(segment, following, point)
                if problem is None:
                    if not dry_run:
                        segment.write_index()
                    report = attrs.evolve(report, end_offset=segment.next_offset)
                    continue
                later = bases[i + 1 :]
                if dry_run:
                    report = _measure(part, segment, problem, later, report=report)
                else:
                    report = _cut(
                        part, segment, problem, later, point=point, report=report
                    )
                break
            finally:
                segment.close()
        if not dry_run:
            part.reload()
        if not report.clean and not dry_run:
            logger.warning("repair: %s", report)
        return report


def _problem(
    segment: Segment, following: int | None, point: RecoveryPoint | None
) -> Problem | None:
    """The first thing wrong with a segment, walked from its start: a bad batch,
    data among the zeros after its batches, an end short of the next segment's
    start, or (in the last segment) an end short of the recovery point."""
    file_size = segment.file_size()
    problem = walk(segment.fd, 0, file_size, segment.base_offset, segment.note_batch)
    if problem is None and segment.size < file_size:
        problem = _after_zeros(segment, file_size)
    if problem is None and following not in (None, segment.next_offset):
        problem = Problem(
            segment.size,
            f"the segment ends at offset {segment.next_offset} but "
            f"{file_name(following or 0, '.log')} starts at {following}",
            incomplete=False,
        )
    if problem is None and following is None and point is not None:
        problem = _short_of(segment, point)
    return problem


def _short_of(segment: Segment, point: RecoveryPoint) -> Problem | None:
    """What is missing if the last segment ends before the recovery point."""
    if point.base > segment.base_offset:
        missing = f"{file_name(point.base, '.log')}, which is missing"
    elif point.base == segment.base_offset and segment.size < point.position:
        missing = f"byte {point.position} of this segment"
    else:
        return None
    return Problem(
        segment.size,
        f"the data ends here, but the recovery point says it was synced up to "
        f"offset {point.offset}, in {missing}: synced batches are lost",
        incomplete=False,
    )


def _measure(
    part: Partition,
    segment: Segment,
    problem: Problem,
    later: list[int],
    *,
    report: RepairReport,
) -> RepairReport:
    """The report of a dry run: what ``_cut`` would drop."""
    file_size = segment.file_size()
    dropped = preallocation.data_end(segment.fd, problem.position, file_size)
    dropped -= problem.position
    deleted = []
    for base in later:
        path = part.directory / file_name(base, ".log")
        fd = os.open(path, os.O_RDONLY)
        try:
            dropped += preallocation.data_end(fd, 0, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        deleted.append(path)
    return _found(segment, problem, dropped, tuple(deleted), report)


def _cut(
    part: Partition,
    segment: Segment,
    problem: Problem,
    later: list[int],
    *,
    point: RecoveryPoint | None,
    report: RepairReport,
) -> RepairReport:
    file_size = segment.file_size()
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
    segment.truncate(problem.position)  # fsyncs what is kept, too
    segment.write_index()
    sync_dir(part.directory)
    # Back to the new end, in a new epoch, so that no process writes back a point
    # it computed before the cut; durably, as a higher one left behind would make
    # the next open refuse the partition.
    recoverypoint.write(
        part.directory / recoverypoint.FILE_NAME,
        RecoveryPoint(
            segment.base_offset,
            segment.size,
            segment.next_offset,
            epoch=(point.epoch if point is not None else 0) + 1,
        ),
        durable=True,
    )
    return _found(segment, problem, dropped, tuple(reversed(deleted)), report)


def _found(
    segment: Segment,
    problem: Problem,
    dropped: int,
    deleted: tuple[Path, ...],
    report: RepairReport,
) -> RepairReport:
    return attrs.evolve(
        report,
        file=segment.log_path,
        position=problem.position,
        reason=problem.reason,
        first_dropped_offset=segment.next_offset,
        end_offset=segment.next_offset,
        dropped_bytes=dropped,
        deleted_segments=deleted,
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
