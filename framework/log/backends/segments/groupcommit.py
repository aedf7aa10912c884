"""Group commit: appends queued by concurrent threads are written and fsynced together.

An appender queues its encoded batch. If no other appender of the partition is busy
committing, it becomes the leader: it takes the queue, and with one file lock, one
catch-up, one write and one fsync commits every batch in it; the others wait and
return when their batch is durable. Appends that arrive meanwhile form the next group.

With a plain queue the appenders released by one fsync queue again while the next
runs, splitting into two cohorts of half the size. A leader therefore first waits,
briefly (``GATHER_SECONDS`` at most), until as many appends are queued as the last
group had: much like PostgreSQL's ``commit_delay`` with ``commit_siblings``. The
append that completes the group commits it from its own thread, so that the leader
need not be woken for it (a thread hand-off costs tens of microseconds here); the
leader returns when that commit wakes it. A lone appender never waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from framework.errors import LogError
from framework.log.backends.segments.batch import EncodedBatch
from framework.log.backends.segments.errors import (
    CorruptSegmentError,
    LogLockTimeoutError,
)

#: How long a leader waits for the appenders of the last group to queue again.
GATHER_SECONDS = 0.0005


class FsyncFailedError(LogError):
    """An fsync failed: the kernel may have dropped the unsynced bytes, so the
    partition refuses further appends until the log is opened again."""


class Pending:
    """One queued append: its batch, the lock its thread sleeps on, its outcome."""

    __slots__ = ("base", "done", "encoded", "error", "expected", "taken", "wake")

    def __init__(self, encoded: EncodedBatch, expected: int | None) -> None:
        self.encoded = encoded
        self.expected = expected
        #: The base offset it was written at, or the error that stopped it.
        self.base = -1
        self.error: BaseException | None = None
        self.done = False
        #: Taken into a group by the append that completed it (see ``submit``).
        self.taken = False
        # Released when the append is done or its thread is to lead the next group:
        # waking exactly one thread is much cheaper than notify_all on a condition.
        # Only an append that has to wait gets one (a lone appender leads at once).
        self.wake: threading.Lock | None = None


#: Writes a group's batches (setting ``base`` or ``error`` on each); returns whether
#: anything was written. Raises for failures of the whole group.
WriteGroup = Callable[[list[Pending]], bool]


class GroupCommit:
    """The commit queue of one partition in this process."""

    __slots__ = (
        "_cond",
        "_dirty",
        "_durable",
        "_failure",
        "_gathering",
        "_last_group",
        "_leading",
        "_lock",
        "_queue",
        "_sync",
        "_write",
        "fsyncs",
    )

    def __init__(
        self, write: WriteGroup, sync: Callable[[], None], *, durable: bool
    ) -> None:
        self._write = write
        self._sync = sync
        #: fsync before acknowledging (``fsync="always"``), else leave it to flushes.
        self._durable = durable
        # Entered directly rather than through the condition, whose ``with`` runs
        # Python code: holding the lock is holding the condition.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: list[Pending] = []
        self._leading = False
        self._gathering = False
        self._last_group = 1
        self._dirty = False
        self._failure: str | None = None
        #: fsync calls made, for tests and metrics.
        self.fsyncs = 0

    @property
    def queued(self) -> int:
        """Appends waiting for the next group (for tests and metrics)."""
        return len(self._queue)

    @property
    def dirty(self) -> bool:
        """Whether batches were written since the last fsync (interval mode)."""
        return self._dirty

    def submit(self, pending: Pending) -> None:
        """Queue an append and return once it is committed (its ``base`` set) or
        refused (its ``error`` set)."""
        wake = None
        group: list[Pending] | None = None
        with self._lock:
            if self._failure is not None:
                raise FsyncFailedError(self._failure)
            if not (self._leading or self._queue) and self._last_group == 1:
                # A lone appender: nobody to gather or wait for, so it commits at
                # once without queueing (appends arriving meanwhile queue up).
                self._leading = True
                solo = True
            else:
                solo = False
                self._queue.append(pending)
                if self._gathering and len(self._queue) >= self._last_group:
                    # This append completes the group the leader is gathering: it
                    # commits the group itself rather than wake the leader to do
                    # it, which saves a thread hand-off (tens of microseconds, as
                    # much as a third of an fsync) per group.
                    group, self._queue = self._queue, []
                    self._gathering = False
                    for taken in group:
                        taken.taken = True
                elif self._leading:
                    wake = pending.wake = threading.Lock()
                    wake.acquire()
                self._leading = True
        if solo:
            try:
                self._commit([pending])
            finally:
                self._finish_alone(pending)
            return
        if group is not None:
            try:
                self._commit(group)
            finally:
                self._finish(pending, group)
            return
        if wake is not None:
            wake.acquire()  # until done, or handed the lead
            if pending.done:
                return
        self._lead(pending)

    def _lead(self, own: Pending) -> None:
        """Commit the queued appends as one group, then wake them, and hand the lead
        to the first append queued meanwhile (if any)."""
        group: list[Pending] = []
        try:
            with self._lock:
                if len(self._queue) < self._last_group:
                    self._gathering = True
                    deadline = time.monotonic() + GATHER_SECONDS
                    while len(self._queue) < self._last_group and not own.taken:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    if own.taken:
                        # The append that completed the group commits it; it
                        # wakes this thread when done and hands the lead on.
                        while not own.done:
                            self._cond.wait()
                        return
                    self._gathering = False
                group, self._queue = self._queue, []
            self._commit(group)
        finally:
            if not own.taken:
                self._finish(own, group)

    def _finish(self, own: Pending, group: list[Pending]) -> None:
        successor = None
        with self._lock:
            if own in self._queue:  # interrupted before taking the group
                self._queue.remove(own)
                own.error = own.error or LogError("the append was interrupted")
            own.done = True
            for pending in group:
                pending.done = True
            self._last_group = max(1, len(group))
            if self._queue:
                successor = self._queue[0]
            else:
                self._leading = False
            if own.taken:
                # The leader that gathered this group waits on the condition.
                self._cond.notify_all()
        for pending in group:
            if pending is not own and pending.wake is not None:
                pending.wake.release()
        if successor is not None and successor.wake is not None:
            successor.wake.release()

    def _finish_alone(self, own: Pending) -> None:
        """``_finish`` for an append that committed alone: it never queued, and the
        last group stays one append."""
        with self._lock:
            own.done = True
            if not self._queue:
                self._leading = False
                return
            successor = self._queue[0]
        if successor.wake is not None:
            successor.wake.release()

    def _commit(self, group: list[Pending]) -> None:
        try:
            wrote = self._write(group)
        except BaseException as exc:
            # An interrupt stays with the leader's thread; the others get an error.
            first = isinstance(exc, Exception)
            for pending in group:
                # Appends written before the failure (into a segment that rolled,
                # and so was fsynced) stand.
                if pending.error is None and pending.base < 0:
                    pending.error = exc if first else _again(exc)
                    first = False
            if not isinstance(exc, Exception):
                raise
            return
        if not wrote:
            return
        if not self._durable:
            self._dirty = True
            return
        try:
            self._sync()
        except OSError as exc:
            message = _fsync_failed(exc)
            with self._lock:
                self._failure = message
            for pending in group:
                if pending.error is None:
                    pending.error = FsyncFailedError(message)
                    pending.error.__cause__ = exc
            return
        self.fsyncs += 1

    def sync_now(self) -> None:
        """Make every batch written so far durable (the interval flusher, close)."""
        if self._failure is not None:
            raise FsyncFailedError(self._failure)
        if not self._dirty:
            return
        self._dirty = False
        try:
            self._sync()
        except OSError as exc:
            self._failure = _fsync_failed(exc)
            raise FsyncFailedError(self._failure) from exc
        self.fsyncs += 1


def _fsync_failed(exc: OSError) -> str:
    return (
        f"fsync failed ({exc}); appends not yet acknowledged may be lost. Check the "
        "disk, then open the log again (recovery cuts off any torn batch)"
    )


def _again(exc: BaseException) -> BaseException:
    """An error for another waiter of the same group: a fresh exception, so threads
    do not share one traceback."""
    again: BaseException
    if isinstance(exc, LogLockTimeoutError):
        again = LogLockTimeoutError(
            exc.topic, exc.partition, exc.lock_file, exc.timeout
        )
    elif isinstance(exc, CorruptSegmentError):
        again = CorruptSegmentError(exc.path, exc.position, exc.what)
    elif isinstance(exc, LogError):
        again = LogError(str(exc))
    else:
        again = LogError(f"the append's group commit failed: {exc!r}")
    again.__cause__ = exc
    return again
