"""A partition on disk: its folder of segments and what this process knows of them
(the view), kept up to date with what other processes append, roll and tear.

Three locks, always taken in this order: ``write_lock`` (one writer per process),
the partition's file lock (one writer across processes), ``state`` (the view, held
briefly; readers take only this one). Appends go through ``groupcommit`` and
``appender``; their fsync happens after all three locks are released. What the
fsyncs covered becomes the recovery point (``recoverypoint``), written by the
background flusher, and bounds what opening may take for a torn write.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from framework.errors import LogError
from framework.files import make_dirs, sync_dir
from framework.log.backends.segments import preallocation, recoverypoint, tail
from framework.log.backends.segments.batch import (
    HEADER_SIZE,
    TRANSACTIONAL,
    BatchHeader,
    EncodedBatch,
)
from framework.log.backends.segments.compression import compressor
from framework.log.backends.segments.errors import (
    CorruptSegmentError,
    LogClosedError,
    LogLockTimeoutError,
    storage_error,
)
from framework.log.backends.segments.flusher import Flusher
from framework.log.backends.segments.fsutil import sync_data
from framework.log.backends.segments.groupcommit import GroupCommit, Pending
from framework.log.backends.segments.lock import FileLock
from framework.log.backends.segments.preallocation import ZERO_HEADER
from framework.log.backends.segments.segment import Segment, file_name, segment_bases
from framework.log.backends.segments.topics import partition_dir
from framework.log.backends.segments.transactions import (
    TailTxn,
    load_aborted,
    note_aborted,
)
from framework.log.backends.segments.walk import walk
from framework.log.config import TopicConfig

logger = logging.getLogger("framework.log")

LOCK_FILE = "writer.lock"
#: How long the background writer of a recovery point waits for the file lock
#: before it tries again later.
_RECOVERY_POINT_LOCK_WAIT = 1.0


class Partition:
    """One partition of a topic, as this process sees it."""

    def __init__(
        self,
        root: Path,
        topic: str,
        number: int,
        config: TopicConfig,
        *,
        lock_timeout: float,
        flusher: Flusher,
        write: Callable[[Partition, Pending], None],
        preallocate: bool = True,
    ) -> None:
        """``write`` writes a batch (``appender.write``; passed in because that
        module builds on this one). ``preallocate`` extends the active segment
        ahead of its data (``preallocation``) where supported."""
        self.topic = topic
        self.number = number
        self.config = config
        self.directory = partition_dir(root, topic, number)
        self._folder = str(self.directory)
        self.lock_timeout = lock_timeout
        self.preallocate = preallocate and preallocation.SUPPORTED
        self.file_lock = FileLock(self.directory / LOCK_FILE)
        self.write_lock = threading.Lock()
        self.state = threading.Lock()
        self.segments: list[Segment] = []
        self.bases: list[int] = []
        self.interval = config.fsync == "interval"
        self._write = write
        self.commit = GroupCommit(self._sync_active)
        #: Interval-mode partitions register with it after writing.
        self.flusher = flusher
        self.compression, self.compress = compressor(config.compression)
        self._loaded = False
        #: A reader saw bytes after the last whole batch that may be a torn write; the
        #: next holder of the file lock checks them and cuts them off if so.
        self._torn = False
        #: Some segment's index was rebuilt in memory and not yet written.
        self.stale_indexes = False
        self._next_flush = 0.0
        self._closed = False
        #: The recovery point, and how far this process synced past it.
        self.recovery = recoverypoint.Tracker(self.directory)
        #: The last batch, while it is transactional (``transactions``).
        self.tail_txn: TailTxn | None = None
        #: (base, last) offsets of aborted transactional batches, sorted: they read
        #: as void records.
        self.aborted: list[tuple[int, int]] = []
        #: What the coordinator says of a transactional batch: ``True`` committed,
        #: ``False`` aborted, ``None`` no record yet. Set by the log.
        self.commit_of: Callable[[Partition, TailTxn], bool | None] | None = None

    # -- locking ----------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold ``write_lock`` and the file lock; raises ``LogLockTimeoutError``."""
        with self.write_lock:
            if not self.file_lock.acquire(self.lock_timeout):
                raise self.lock_timeout_error()
            try:
                yield
            finally:
                self.file_lock.release()

    def lock_timeout_error(self) -> LogLockTimeoutError:
        return LogLockTimeoutError(
            self.topic, self.number, self.file_lock.path, self.lock_timeout
        )

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """All three locks, with the view caught up and torn tails cut: for
        retention, compaction and anything else that rewrites files."""
        with self.writing(), self.state:
            self.ensure_loaded()
            self.follow(writer=True)
            yield

    # -- loading and following --------------------------------------------------------

    def ready(self) -> None:
        """Bring the view up to date with the files. Call with ``state`` held."""
        self.ensure_loaded()
        self.follow(writer=False)
        tail = self.tail_txn
        if tail is not None and not tail.committed:
            self.resolve_tail(writer=False)

    # -- transactions ---------------------------------------------------------------

    @property
    def stable_end(self) -> int | None:
        """The first offset readers may not see yet (the last stable offset): the
        base of an undecided transactional last batch; ``None`` if there is none."""
        tail = self.tail_txn
        return tail.base if tail is not None and not tail.committed else None

    def noted(self, attributes: int, txn_id: int, base: int, last: int) -> None:
        """The view took in the batch at ``base..last``: keep track of the last
        batch while it is transactional."""
        tail = self.tail_txn
        if tail is not None and not tail.committed and not self._aborted(tail.base):
            # A batch follows it: whoever appended that decided it first, and
            # noted it in the file if it aborted (``transactions``).
            self.aborted = sorted(set(self.aborted) | set(load_aborted(self.directory)))
        self.tail_txn = (
            TailTxn(txn_id, base, last) if attributes & TRANSACTIONAL else None
        )

    def _aborted(self, base: int) -> bool:
        return any(b == base for b, _ in self.aborted)

    def resolve_tail(self, *, writer: bool) -> None:
        """Decide the undecided transactional last batch. Call with ``state``
        held; a ``writer`` holds the partition's locks as well. A reader takes
        them only if they are free (then its writer is gone); otherwise the batch
        stays undecided and readers stop before it."""
        tail = self.tail_txn
        if tail is None or tail.committed or self.commit_of is None:
            return
        decided = self.commit_of(self, tail)
        if decided:
            tail.committed = True
            return
        if writer:
            self._abort_tail(tail)
            return
        if decided is False:
            # The coordinator moved on without it: aborted. The next writer notes
            # it in the file.
            self.aborted = sorted({*self.aborted, (tail.base, tail.last)})
            self.tail_txn = None
            return
        if not self.write_lock.acquire(blocking=False):
            return
        try:
            if not self.file_lock.try_acquire():
                return
            try:
                self.follow(writer=True)
                if self.tail_txn is tail:
                    self.resolve_tail(writer=True)
            finally:
                self.file_lock.release()
        finally:
            self.write_lock.release()

    def _abort_tail(self, tail: TailTxn) -> None:
        """Note the last batch aborted: in the file first, under the lock."""
        if self.commit_of is not None and self.commit_of(self, tail):
            tail.committed = True
            return
        try:
            note_aborted(self.directory, tail.base, tail.last, tail.txn_id)
        except OSError as exc:
            raise storage_error(
                exc,
                self.directory,
                "noting an aborted transaction",
                "Nothing was written after it. ",
            ) from exc
        self.aborted = sorted({*self.aborted, (tail.base, tail.last)})
        self.tail_txn = None

    def ensure_loaded(self) -> None:
        if self._closed:
            raise LogClosedError(self.directory.parent)
        if not self._loaded:
            self._load()
            self._loaded = True
            self._try_fix()

    def _load(self) -> None:
        for attempt in range(3):
            try:
                self._load_once()
            except FileNotFoundError:
                # Retention or compaction in another process removed a file between
                # listing the folder and opening it: list again.
                if attempt == 2:
                    raise
            else:
                return

    def _load_once(self) -> None:
        # Read before the segments: it then names nothing they lack (a process
        # writes it only for bytes it had written, and synced, before).
        point = self.recovery.read()
        self.aborted = load_aborted(self.directory)
        self.tail_txn = None
        bases = segment_bases(self.directory) if self.directory.is_dir() else []
        segments: list[Segment] = []
        try:
            if not bases:
                segments.append(self._first_segment())
            else:
                segments.extend(Segment.open(self.directory, b) for b in bases)
            active = segments[-1]
            if point is not None and point.base > active.base_offset:
                raise CorruptSegmentError(
                    self.directory / file_name(point.base, ".log"),
                    0,
                    "the recovery point says this segment was synced up to byte "
                    f"{point.position} (offset {point.offset}), but the file is "
                    "missing",
                )
            for segment in segments[:-1]:  # any damage in them is raised anyway
                self._load_segment(segment, sealed=True, synced_end=0)
            self._load_segment(
                active,
                sealed=False,
                synced_end=recoverypoint.synced_end(point, active.base_offset),
            )
            for before, after in itertools.pairwise(segments):
                if before.next_offset != after.base_offset:
                    raise before.corrupt(
                        before.size,
                        f"the segment ends at offset {before.next_offset} but the next "
                        f"one, {after.log_path.name}, starts at {after.base_offset}: "
                        "batches are missing",
                    )
        except BaseException:
            for segment in segments:
                segment.close()
            raise
        self.segments = segments
        self.bases = [s.base_offset for s in segments]
        self.recovery.loaded(point)
        if point is None and any(s.size for s in segments):
            logger.info(
                "%s: no recovery point; nothing of the partition is known to be "
                "synced, so damage at the end of %s would be cut off as a torn write",
                self.recovery.path,
                segments[-1].log_path.name,
            )

    def _first_segment(self) -> Segment:
        """Create the partition's folder and first segment, durably: appends to it
        are acknowledged once fsynced, so its entry must last too."""
        path = self.directory / file_name(0, ".log")
        try:
            make_dirs(self.directory)
            segment = Segment.open(self.directory, 0, create=True)
        except OSError as exc:
            raise storage_error(exc, path, "creating", "Nothing was written. ") from exc
        try:
            sync_dir(self.directory)
        except OSError as exc:
            segment.close()
            raise storage_error(exc, self.directory, "syncing") from exc
        return segment

    def synced_end(self, segment: Segment, *, fresh: bool) -> int:
        """Bytes of ``segment`` known to be synced: damage below them is never
        taken for a torn write (``recoverypoint.Tracker.synced_end``)."""
        return self.recovery.synced_end(segment.base_offset, fresh=fresh)

    def _load_segment(self, segment: Segment, *, sealed: bool, synced_end: int) -> None:
        """Learn a segment from its index files and a walk over the bytes after the
        last index entry that proves valid (all of them if the index is unusable).
        Damage or missing data below ``synced_end`` is raised, never cut off."""
        file_size = segment.allocated = segment.file_size()
        if segment.load_index():
            dropped = 0
            while segment.offsets and not segment.entry_checks_out(
                len(segment.offsets) - 1, file_size
            ):
                segment.trim_index_to(len(segment.offsets) - 1)
                segment.index_stale = True
                dropped += 1
                if dropped > 2:
                    segment.reset()  # the index is wrong, not just behind: rebuild
                    break
        else:
            segment.reset()
            segment.index_stale = True
        position, offset, running = segment.resume_point()
        segment.size, segment.next_offset = position, offset
        segment.max_timestamp = running

        def note(position: int, header: BatchHeader) -> None:
            if segment.note_batch(position, header):
                segment.index_stale = True  # the file lacks this entry
            self.noted(
                header.attributes,
                header.producer_id,
                header.base_offset,
                header.last_offset,
            )

        problem = walk(segment.fd, position, file_size, offset, note)
        if problem is not None:
            if sealed:
                raise segment.corrupt(problem.position, problem.reason)
            self._note_tail(
                tail.judge_problem(
                    segment, problem, file_size, writer=False, synced_end=synced_end
                ),
                writer=False,
            )
        elif segment.size < file_size:
            self._note_tail(
                tail.judge_zeros(
                    segment,
                    file_size,
                    sealed=sealed,
                    writer=False,
                    synced_end=synced_end,
                ),
                writer=False,
            )
        elif synced_end != recoverypoint.ALL:  # (a sealed segment ends at its end)
            tail.check_synced(
                segment, segment.size, synced_end, "the segment's file ends here"
            )
        if segment.index_stale:
            self.stale_indexes = True
        if segment.first_batch_timestamp is None and segment.size:
            first = segment.first_batch_header()
            if first is not None:
                segment.first_batch_timestamp = first.max_timestamp

    def _try_fix(self) -> None:
        """Cut a torn tail and write rebuilt indexes now if no writer is busy; else
        the next appender does it. Called with ``state`` held, so it never waits."""
        if not (self._torn or self.stale_indexes):
            return
        if not self.write_lock.acquire(blocking=False):
            return
        try:
            if not self.file_lock.try_acquire():
                return
            try:
                self.follow(writer=True)
                self.write_stale_indexes()
            finally:
                self.file_lock.release()
        finally:
            self.write_lock.release()

    def follow(self, *, writer: bool) -> None:
        """Take in batches other processes appended, and segments they rolled.

        A ``writer`` holds the file lock, so nobody else is writing: bytes after the
        last whole batch are then a torn write, and are cut off. A reader leaves
        them to a writer: in preallocated space a batch still being written looks
        just like a torn one.
        """
        while True:
            segment = self.segments[-1]
            # One small read answers the common case: preallocated zeros where the
            # next batch would start mean nothing was appended and the segment is
            # still the active one (a roll cuts them off before the next segment
            # exists, and repair empties a segment before deleting it).
            if os.pread(segment.fd, HEADER_SIZE, segment.size) == ZERO_HEADER:
                if writer and self._torn:
                    self._torn = tail.judge_zeros(
                        segment,
                        segment.file_size(),
                        sealed=False,
                        writer=True,
                        synced_end=self.synced_end(segment, fresh=True),
                    )
                return
            stat = os.fstat(segment.fd)
            file_size = segment.allocated = stat.st_size
            if file_size < segment.size or not stat.st_nlink:
                # Only repair() removes whole batches or deletes an active segment;
                # start again from the files rather than write to a deleted one.
                self.reload()
                continue
            if file_size > segment.size:
                problem = walk(
                    segment.fd,
                    segment.size,
                    file_size,
                    segment.next_offset,
                    functools.partial(self._note, segment),
                )
                if problem is not None:
                    # A reader does not scan for corruption here: in preallocated
                    # space a write in flight looks the same; the next writer judges.
                    judged = tail.judge_problem(
                        segment,
                        problem,
                        file_size,
                        writer=writer,
                        synced_end=self.synced_end(segment, fresh=writer),
                        scan=writer,
                    )
                    self._note_tail(judged, writer=writer)
                    return
                if segment.size < file_size:  # stopped at preallocated zeros
                    if writer and self._torn:
                        self._torn = tail.judge_zeros(
                            segment,
                            file_size,
                            sealed=False,
                            writer=True,
                            synced_end=self.synced_end(segment, fresh=True),
                        )
                    return
            if writer:
                self._torn = False
            if segment.size and self._adopt_next(segment):
                continue
            return

    def _note(self, segment: Segment, position: int, header: BatchHeader) -> None:
        """A batch another process appended: into the view."""
        segment.note_batch(position, header)
        if self.tail_txn is not None or header.attributes & TRANSACTIONAL:
            self.noted(
                header.attributes,
                header.producer_id,
                header.base_offset,
                header.last_offset,
            )

    def _note_tail(self, torn: bool, *, writer: bool) -> None:
        """Remember bytes after the data that the next writer must judge; a writer's
        judgement (it cut them off, or they were zeros) clears the mark."""
        if torn or writer:
            self._torn = torn

    def reserve(self, segment: Segment, end: int) -> None:
        """Preallocate the active segment so that bytes up to ``end`` fit. Call
        holding the file lock."""
        if end <= segment.allocated or not self.preallocate:
            return
        size = segment.file_size()  # another writer may have extended it already
        if end > size:
            target = preallocation.target_size(size, end, self.config.segment_bytes)
            if preallocation.extend(segment.fd, size, target):
                size = target
        segment.allocated = size

    def _adopt_next(self, segment: Segment) -> bool:
        """If another process rolled to a new segment, make it the active one."""
        base = segment.next_offset
        # A plain string path: this check runs on every append and read.
        if not os.path.exists(f"{self._folder}/{base:020d}.log"):
            return False
        adopted = Segment.open(self.directory, base)
        try:
            self._load_segment(
                adopted, sealed=False, synced_end=self.synced_end(adopted, fresh=True)
            )
        except BaseException:
            adopted.close()
            raise
        self.segments.append(adopted)
        self.bases.append(base)
        return True

    def reload(self) -> None:
        """Forget the view and load the files again. Called with ``state`` held."""
        for segment in self.segments:
            self.retire(segment)
        self.segments, self.bases = [], []
        self._loaded = False
        self._load()
        self._loaded = True

    def rebuild_index(self, segment: Segment) -> None:
        """Index a segment again from its log after an entry proved wrong. Call with
        ``state`` held; the files are rewritten by the next holder of the file lock."""
        if not segment.retired:
            segment.rebuild_index()
            self.stale_indexes = True

    def write_stale_indexes(self) -> None:
        """Write index files rebuilt in memory. Call holding the file lock."""
        self.stale_indexes = False
        for segment in self.segments:
            if segment.index_stale and segment.is_current():
                try:
                    segment.write_index()
                except OSError as exc:
                    self.stale_indexes = True
                    logger.warning("could not rewrite %s: %s", segment.index_path, exc)

    # -- reading helpers ------------------------------------------------------------

    @property
    def start_offset(self) -> int:
        return self.segments[0].base_offset

    @property
    def end_offset(self) -> int:
        return self.segments[-1].next_offset

    def segment_for(self, offset: int) -> int:
        """Index in ``segments`` of the segment that holds ``offset``."""
        return max(0, bisect.bisect_right(self.bases, offset) - 1)

    def pin(self, segments: list[Segment]) -> None:
        for segment in segments:
            segment.pins += 1

    def unpin(self, segments: list[Segment]) -> None:
        with self.state:
            for segment in segments:
                segment.pins -= 1
                if segment.retired and segment.pins == 0:
                    segment.close()

    def retire(self, segment: Segment) -> None:
        """Close a segment dropped from the view once no reader uses it."""
        segment.retired = True
        if segment.pins == 0:
            segment.close()

    # -- appending ------------------------------------------------------------------

    def append(
        self,
        encoded: EncodedBatch,
        expected_end_offset: int | None,
        on_written: Callable[[int], None] | None = None,
    ) -> int:
        """Write one batch; return its base offset once it is durable (or, with
        ``fsync="interval"``, once it is written). Appends written by other threads
        meanwhile share its fsync (``groupcommit``). ``on_written(base)`` is called
        once the batch is written, before the fsync."""
        self.commit.check()
        pending = Pending(encoded, expected_end_offset)
        self._write(self, pending)
        if on_written is not None:
            try:
                on_written(pending.base)
            except BaseException:
                # The batch is written, so readers may see it already: make it as
                # durable as any other before the caller hears of the failure.
                if not self.interval:
                    self.commit.submit(pending)
                raise
        if self.interval:
            return pending.base
        self.commit.submit(pending)
        if pending.error is not None:
            raise pending.error
        return pending.base

    def _sync_active(self, group: list[Pending]) -> None:
        with self.state:
            segment = self.segments[-1]
            segment.pins += 1
            # Written before the fsync starts, so the fsync covers them.
            covered = (segment.base_offset, segment.size, segment.next_offset)
        synced = False
        try:
            sync_data(segment.fd)
            synced = True
        finally:
            # ``unpin`` for one segment, without a list: this runs on every append.
            with self.state:
                segment.pins -= 1
                if segment.retired:
                    if segment.pins == 0:
                        segment.close()
                elif synced and covered > self.recovery.synced:
                    self.recovery.synced = covered
        if not self.recovery.pending:
            # The flusher writes it, at most once a ``recoverypoint.INTERVAL``: an
            # append adds no write and no fsync for it.
            self.recovery.pending = True
            self.flusher.watch(self)

    def flush_if_due(self, now: float) -> float:
        """The background flusher's turn: for ``fsync="interval"`` fsync if the
        interval has passed; write the recovery point if it moved and is due.
        Returns when to be called again."""
        recovery = self.recovery
        due = now + recoverypoint.INTERVAL
        if self.interval:
            interval = self.config.fsync_interval_ms / 1000
            if not self._next_flush:
                self._next_flush = now + interval  # the first is one interval away
            elif now >= self._next_flush:
                if self.commit.dirty and not self._closed:
                    self.commit.sync_now()
                self._next_flush = now + interval
            due = self._next_flush
        if recovery.pending and not self._closed:
            if now >= recovery.due:
                recovery.due = now + recoverypoint.INTERVAL
                self.save_recovery_point(wait=_RECOVERY_POINT_LOCK_WAIT)
            due = min(due, recovery.due)
        return due

    def save_recovery_point(self, *, wait: float) -> bool:
        """Write what this process synced as the recovery point, unless the file
        already says as much; waits up to ``wait`` seconds for the file lock.
        Returns ``False`` if the lock stayed busy (the point stays pending). A
        failed write is logged, never raised: the point is a safeguard, not data,
        and the next save tries again."""
        with self.write_lock:
            if not self.file_lock.acquire(wait):
                return False
            try:
                self.recovery.save()
            finally:
                self.file_lock.release()
        return True

    def close(self) -> None:
        if self._closed:
            return
        if self._loaded and self.commit.dirty:
            try:
                self.commit.sync_now()
            except LogError as exc:
                logger.warning("closing %s/%s: %s", self.topic, self.number, exc)
        if self._loaded and self.recovery.behind():
            try:
                # Briefly: a writer holds the lock for one write at a time, and a
                # point not written only makes the next open more willing to cut.
                if not self.save_recovery_point(wait=_RECOVERY_POINT_LOCK_WAIT):
                    logger.warning(
                        "closing %s/%s: the writer lock %s stayed busy, so the "
                        "recovery point was not brought up to date",
                        self.topic,
                        self.number,
                        self.file_lock.path,
                    )
            except (OSError, LogError) as exc:
                logger.warning("closing %s/%s: %s", self.topic, self.number, exc)
        with self.state:
            self._closed = True
            for segment in self.segments:
                self.retire(segment)
            self.file_lock.close()
