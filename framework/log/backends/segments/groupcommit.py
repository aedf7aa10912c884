"""Group commit: appenders that wrote their batches meanwhile share one fsync.

Each appender writes its own batch (``appender``), then queues here to wait until an
fsync covers it. If no other appender of the partition is busy syncing, it becomes
the leader: it takes the queue and makes every batch in it durable with one fsync;
the others wait and return when it is done. Appends that queue meanwhile form the
next group. Writing before queueing is what lets an event store check versions and
write under its own lock, and still share fsyncs with the other writer threads.

With a plain queue the appenders released by one fsync queue again while the next
runs, splitting into two cohorts of half the size. A leader therefore first waits,
briefly (``GATHER_SECONDS`` at most), until as many appends are queued as the last
group had: much like PostgreSQL's ``commit_delay`` with ``commit_siblings``. The
append that completes the group syncs it from its own thread, so that the leader
need not be woken for it (a thread hand-off costs tens of microseconds here). A lone
appender never waits.

Each waiting thread sleeps on a lock of its own. After the fsync the syncing thread
wakes only the first of its group, and each woken thread wakes the next, so that
they do not all wake at once to fight over the GIL: the syncing thread returns about
20 µs sooner. (The group's throughput measured the same either way: the GIL runs the
woken threads one after another regardless.)
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable

from framework.errors import LogError
from framework.log.backends.segments.batch import EncodedBatch

#: How long a leader waits for the appenders of the last group to queue again.
GATHER_SECONDS = 0.0005


def _await_group(wake: threading.Lock) -> bool:
    """Wait out a leader's gather window: ``True`` if it was woken meanwhile (the
    group filled and was committed by the append that completed it). A seam for
    tests, which end the window when they choose instead of racing the clock."""
    return wake.acquire(True, GATHER_SECONDS)


class FsyncFailedError(LogError):
    """An fsync failed: the kernel may have dropped the unsynced bytes, so the
    partition refuses further appends until the log is opened again."""


class Pending:
    """One queued append: its batch, the lock its thread sleeps on, its outcome."""

    __slots__ = (
        "abandoned",
        "base",
        "done",
        "encoded",
        "error",
        "expected",
        "relay",
        "taken",
        "wake",
    )

    def __init__(self, encoded: EncodedBatch, expected: int | None) -> None:
        self.encoded = encoded
        self.expected = expected
        #: The base offset it was written at, or the error that stopped it.
        self.base = -1
        self.error: BaseException | None = None
        self.done = False
        #: Taken into a group by the thread committing it.
        self.taken = False
        #: Its thread stopped waiting (an interrupt): not woken, not relayed through.
        self.abandoned = False
        # Released when the append is done or its thread is to lead the next group.
        # Only an append that has to wait gets one (a lone appender commits at once).
        self.wake: threading.Lock | None = None
        #: The next append of its group to wake once this one's thread is awake.
        self.relay: Pending | None = None


#: Makes a group's batches durable (fsync); raises ``OSError`` if that failed.
SyncGroup = Callable[[list[Pending]], None]


class GroupCommit:
    """The commit queue of one partition in this process."""

    __slots__ = (
        "_dirty",
        "_failure",
        "_gathering",
        "_last_group",
        "_leader",
        "_lock",
        "_queue",
        "_sync",
        "fsyncs",
    )

    def __init__(self, sync: SyncGroup) -> None:
        self._sync = sync
        self._lock = threading.Lock()
        #: Appends waiting for the next group, the leader's among them.
        self._queue: list[Pending] = []
        #: The append whose thread gathers or commits the next group; None when no
        #: append is in flight. Whoever holds the lead hands it on when done.
        self._leader: Pending | None = None
        #: The leader is waiting for its group to fill (an arrival may complete it).
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

    def check(self) -> None:
        """Refuse to write after a failed fsync (``FsyncFailedError``)."""
        if self._failure is not None:
            raise FsyncFailedError(self._failure)

    def written(self) -> None:
        """Note a batch written in interval mode, for the next flush to sync."""
        self._dirty = True

    def submit(self, pending: Pending) -> None:
        """Queue a written append; return once an fsync covered it, or with its
        ``error`` set if that fsync failed."""
        group: list[Pending] | None = None
        gather = False
        with self._lock:
            if self._failure is not None:
                raise FsyncFailedError(self._failure)
            if self._leader is None:
                # Nothing in flight, so the queue is empty: this append leads.
                self._leader = pending
                if self._last_group == 1:
                    # A lone appender: nobody to gather or wait for, so it commits
                    # at once (appends arriving meanwhile queue up).
                    solo = True
                else:
                    solo = False
                    self._queue.append(pending)
                    self._gathering = gather = True
                    wake = pending.wake = threading.Lock()
                    wake.acquire()
            else:
                solo = False
                queue = self._queue
                queue.append(pending)
                if self._gathering and len(queue) >= self._last_group:
                    # This append completes the group the leader is gathering: it
                    # commits the group itself rather than wake the leader to do
                    # it, which saves a thread hand-off (tens of microseconds, as
                    # much as a third of an fsync) per group.
                    group = self._take()
                    self._leader = pending
                else:
                    wake = pending.wake = threading.Lock()
                    wake.acquire()
        if solo:
            try:
                self._commit([pending])
            finally:
                self._finish_alone(pending)
        elif group is not None:
            self._commit_group(pending, group)
        elif gather:
            self._gather(pending, wake)
        else:
            self._wait(pending, wake)

    def _take(self) -> list[Pending]:
        """The queue as the next group (the lock is held)."""
        group, self._queue = self._queue, []
        self._gathering = False
        for taken in group:
            taken.taken = True
        return group

    def _wait(self, own: Pending, wake: threading.Lock) -> None:
        """Sleep until the append is done, or until handed the lead."""
        try:
            wake.acquire()
            if own.done:
                self._relay(own)
                return
        except BaseException:
            self._abandon(own)
            raise
        # Handed the lead by the thread that committed the last group.
        with self._lock:
            if len(self._queue) >= self._last_group:
                group = self._take()
            else:
                group = None
                self._gathering = True
        if group is not None:
            self._commit_group(own, group)
        else:
            self._gather(own, wake)

    def _gather(self, own: Pending, wake: threading.Lock) -> None:
        """Lead: wait briefly for the group to fill. The append that fills it
        commits it, and this thread is woken when it is done; if it stays short,
        this thread commits what has queued."""
        try:
            if _await_group(wake):
                group = None
            else:
                with self._lock:
                    group = None if own.taken else self._take()
                if group is None:
                    wake.acquire()  # the group was completed just now
            if group is None:
                self._relay(own)
                return
        except BaseException:
            self._abandon(own)
            raise
        self._commit_group(own, group)

    def _relay(self, own: Pending) -> None:
        """Wake the next thread of the group: one at a time, see the module doc.
        Runs at most once per append (``_abandon`` may run it too)."""
        following = own.relay
        if following is not None:
            own.relay = None
            following.wake.release()  # type: ignore[union-attr]

    def _commit_group(self, own: Pending, group: list[Pending]) -> None:
        try:
            self._commit(group)
        finally:
            self._finish(own, group)

    def _finish(self, own: Pending, group: list[Pending]) -> None:
        successor = None
        with self._lock:
            self._last_group = max(1, len(group))
            previous = None
            first = None
            for pending in group:
                pending.done = True
                if pending is own or pending.abandoned:
                    continue
                if previous is None:
                    first = pending
                else:
                    previous.relay = pending
                previous = pending
            if self._queue:
                successor = self._leader = self._queue[0]
            else:
                self._leader = None
        if first is not None:
            first.wake.release()  # type: ignore[union-attr]
        if successor is not None:
            successor.wake.release()  # type: ignore[union-attr]

    def _finish_alone(self, own: Pending) -> None:
        """``_finish`` for an append that committed alone: it never queued, and the
        last group stays one append."""
        with self._lock:
            own.done = True
            if not self._queue:
                self._leader = None
                return
            successor = self._leader = self._queue[0]
        successor.wake.release()  # type: ignore[union-attr]

    def _abandon(self, own: Pending) -> None:
        """Its thread was interrupted while waiting: keep the others going."""
        successor = None
        with self._lock:
            if own.done:
                pass  # the relay runs through it: passed on below
            elif own.taken:
                # Its group is being committed; the committer will not wake it.
                own.abandoned = True
            else:
                self._queue.remove(own)
                own.error = LogError(
                    "the append was interrupted before an fsync covered it"
                )
                if self._leader is own:
                    self._gathering = False
                    if self._queue:
                        successor = self._leader = self._queue[0]
                    else:
                        self._leader = None
        if own.done:
            self._relay(own)
        if successor is not None:
            successor.wake.release()  # type: ignore[union-attr]

    def _commit(self, group: list[Pending]) -> None:
        failure = self._failure
        if failure is not None:
            # These batches were written after the bytes an earlier fsync failed to
            # persist. A new fsync may well succeed (the kernel reports a writeback
            # error once), yet a hole before them would cut them off at the next
            # recovery: they must not be acknowledged.
            for pending in group:
                if pending.error is None:
                    pending.error = FsyncFailedError(failure)
            return
        try:
            self._sync(group)
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

    def fail(self, exc: OSError) -> FsyncFailedError:
        """Note an fsync that failed outside a group (a roll syncing the segment it
        seals): appends written before it must never be acknowledged, nor any
        after. Returns the error to raise."""
        message = _fsync_failed(exc)
        with self._lock:
            self._failure = message
        error = FsyncFailedError(message)
        error.__cause__ = exc
        return error

    def sync_now(self) -> None:
        """Make every batch written so far durable (the interval flusher, close)."""
        if self._failure is not None:
            raise FsyncFailedError(self._failure)
        if not self._dirty:
            return
        self._dirty = False
        try:
            self._sync([])
        except OSError as exc:
            self._failure = _fsync_failed(exc)
            raise FsyncFailedError(self._failure) from exc
        self.fsyncs += 1


def _fsync_failed(exc: OSError) -> str:
    full = exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    check = "Free space on the disk" if full else "Check the disk"
    return (
        f"fsync failed ({exc}); appends not yet acknowledged may be lost. {check}, "
        "then open the log again (recovery cuts off any torn batch)"
    )
