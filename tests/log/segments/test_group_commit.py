"""``GroupCommit`` on its own: who syncs a group, and that every append of it is
acknowledged once, after the group's fsync, whichever thread ran it."""

from __future__ import annotations

import contextlib
import inspect
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from framework.errors import LogError
from framework.log.backends.segments import groupcommit
from framework.log.backends.segments.batch import encode_record
from framework.log.backends.segments.groupcommit import (
    FsyncFailedError,
    GroupCommit,
    Pending,
)

RECORD = encode_record(0, None, b"x", ())


class Recorder:
    """A sync that notes which thread ran it and what it covered (numbering the
    appends in the order it saw them)."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[Pending]]] = []
        self.syncs = 0
        self.next_base = 0

    def sync(self, group: list[Pending]) -> None:
        for pending in group:
            pending.base = self.next_base
            self.next_base += 1
        self.groups.append((threading.current_thread().name, list(group)))
        self.syncs += 1


def _wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def test_the_append_that_completes_a_group_commits_it_for_the_gathering_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Gathering waits for the group however slowly the second thread starts.
    monkeypatch.setattr(groupcommit, "GATHER_SECONDS", 10.0)
    recorder = Recorder()
    commit = GroupCommit(recorder.sync)
    # As after a group of two: the next leader gathers until two appends queue.
    commit._last_group = 2
    leader, completer = Pending(RECORD, None), Pending(RECORD, None)
    threads = {
        "leader": threading.Thread(target=commit.submit, args=(leader,), name="leader"),
        "completer": threading.Thread(
            target=commit.submit, args=(completer,), name="completer"
        ),
    }
    threads["leader"].start()
    _wait_until(lambda: commit._gathering, "the leader to gather")
    threads["completer"].start()
    for thread in threads.values():
        thread.join(10)
        assert not thread.is_alive()
    # One group, written by the append that completed it, and one fsync for both.
    assert [(name, len(group)) for name, group in recorder.groups] == [("completer", 2)]
    assert recorder.syncs == 1
    assert (leader.base, completer.base) == (0, 1)
    assert leader.done
    assert completer.done
    assert leader.error is None
    assert completer.error is None
    # The lead was handed back: a later append commits, alone, at once.
    late = Pending(RECORD, None)
    commit._last_group = 1
    commit.submit(late)
    assert (late.base, late.error, recorder.syncs) == (2, None, 2)


def test_a_leader_whose_group_stays_short_commits_it_itself_after_gathering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The gather window ends when the test says so, once both appends are queued,
    # rather than after GATHER_SECONDS, which a busy machine can outlast.
    window_ends = threading.Event()

    def gather_until_told(wake: threading.Lock) -> bool:
        assert window_ends.wait(10)
        return wake.acquire(False)

    monkeypatch.setattr(groupcommit, "_await_group", gather_until_told)
    recorder = Recorder()
    commit = GroupCommit(recorder.sync)
    commit._last_group = 3  # two of the last group's three appends come back
    first, second = Pending(RECORD, None), Pending(RECORD, None)
    leader = threading.Thread(target=commit.submit, args=(first,), name="leader")
    leader.start()
    _wait_until(lambda: commit._gathering, "the leader to gather")
    other = threading.Thread(target=commit.submit, args=(second,), name="other")
    other.start()
    _wait_until(lambda: commit.queued == 2, "the second append to queue")
    window_ends.set()
    for thread in (leader, other):
        thread.join(10)
        assert not thread.is_alive()
    assert [(name, len(group)) for name, group in recorder.groups] == [("leader", 2)]
    assert (first.base, second.base, recorder.syncs) == (0, 1, 1)


def test_many_threads_each_get_their_own_offsets_once() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.sync)
    bases: list[int] = []
    outcomes: list[tuple[bool, BaseException | None]] = []
    lock = threading.Lock()

    def appender() -> None:
        for _ in range(200):
            pending = Pending(RECORD, None)
            commit.submit(pending)
            with lock:
                outcomes.append((pending.done, pending.error))
                bases.append(pending.base)

    threads = [threading.Thread(target=appender) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == [(True, None)] * 1200
    assert sorted(bases) == list(range(1200))
    written = [p for _, group in recorder.groups for p in group]
    assert len(written) == 1200
    assert recorder.syncs == len(recorder.groups)


class Blocking(Recorder):
    """A sync that holds the first group until released, to stage who waits."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def sync(self, group: list[Pending]) -> None:
        if not self.groups:
            self.entered.set()
            assert self.release.wait(10)
        super().sync(group)


class Interrupted(Exception):
    """Stands in for KeyboardInterrupt: raised in the main thread by a signal."""


def _waits_for_its_turn(frame: FrameType | None) -> bool:
    """Whether ``frame`` is a thread blocked in ``GroupCommit._wait``, inside the
    ``try`` that makes an interrupt leave the queue cleanly."""
    if frame is None or frame.f_code is not GroupCommit._wait.__code__:
        return False
    lines, first = inspect.getsourcelines(GroupCommit._wait)
    acquire = next(i for i, line in enumerate(lines) if "wake.acquire()" in line)
    return frame.f_lineno == first + acquire


@contextlib.contextmanager
def _interrupt_once(ready: Callable[[], bool]) -> Iterator[None]:
    """Raise ``Interrupted`` in this (the main) thread, as Ctrl-C would, once
    ``ready()`` holds and the thread is waiting for its append's turn: a watcher
    thread checks both, so the interrupt never lands early on a busy machine."""
    main = threading.main_thread()
    assert threading.current_thread() is main
    assert main.ident is not None
    ident = main.ident

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if ready() and _waits_for_its_turn(sys._current_frames().get(ident)):
                signal.pthread_kill(ident, signal.SIGUSR1)
                return
            stop.wait(0.001)

    previous = signal.signal(signal.SIGUSR1, handler)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(10)
        signal.signal(signal.SIGUSR1, previous)


def test_an_append_interrupted_while_queued_is_dropped_and_the_others_go_on() -> None:
    recorder = Blocking()
    commit = GroupCommit(recorder.sync)
    first, interrupted, later = (Pending(RECORD, None) for _ in range(3))
    committing = threading.Thread(target=commit.submit, args=(first,))
    committing.start()
    assert recorder.entered.wait(10)
    # The main thread queues behind the commit in progress and is interrupted.
    with pytest.raises(Interrupted), _interrupt_once(lambda: commit.queued == 1):
        commit.submit(interrupted)
    assert commit.queued == 0
    assert isinstance(interrupted.error, LogError)
    recorder.release.set()
    committing.join(10)
    assert not committing.is_alive()
    commit.submit(later)  # the lead was not left with the interrupted append
    assert (first.base, later.base, interrupted.base) == (0, 1, -1)
    assert [len(group) for _, group in recorder.groups] == [1, 1]


def test_an_append_interrupted_while_its_group_commits_does_not_stall_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(groupcommit, "GATHER_SECONDS", 10.0)
    recorder = Blocking()
    commit = GroupCommit(recorder.sync)
    commit._last_group = 3
    leader, interrupted, completer = (Pending(RECORD, None) for _ in range(3))
    gathering = threading.Thread(target=commit.submit, args=(leader,))
    gathering.start()
    _wait_until(lambda: commit._gathering, "the leader to gather")
    completing = threading.Thread(target=commit.submit, args=(completer,))

    def complete_once_queued() -> None:
        _wait_until(lambda: commit.queued == 2, "the main thread to queue")
        completing.start()

    starter = threading.Thread(target=complete_once_queued)
    starter.start()
    # The main thread joins the group; the completer's write holds it while the
    # main thread is interrupted.
    with pytest.raises(Interrupted), _interrupt_once(recorder.entered.is_set):
        commit.submit(interrupted)
    assert recorder.entered.is_set()
    recorder.release.set()
    for thread in (starter, completing, gathering):
        thread.join(10)
        assert not thread.is_alive()
    # Its batch was written with the group (the interrupt came too late to stop
    # it); the other two were acknowledged.
    assert [len(group) for _, group in recorder.groups] == [3]
    assert sorted((leader.base, interrupted.base, completer.base)) == [0, 1, 2]
    assert leader.done
    assert completer.done
    assert leader.error is None
    assert completer.error is None
    later = Pending(RECORD, None)
    commit._last_group = 1
    commit.submit(later)
    assert later.base == 3


class FailingOnce(Blocking):
    """A first sync that fails (EIO) once released."""

    def sync(self, group: list[Pending]) -> None:
        if not self.groups:
            self.groups.append((threading.current_thread().name, list(group)))
            self.entered.set()
            assert self.release.wait(10)
            raise OSError(5, "Input/output error")
        super().sync(group)


def test_appends_queued_behind_a_failed_fsync_are_never_acknowledged() -> None:
    recorder = FailingOnce()
    commit = GroupCommit(recorder.sync)
    first, behind = Pending(RECORD, None), Pending(RECORD, None)
    syncing = threading.Thread(target=commit.submit, args=(first,))
    syncing.start()
    assert recorder.entered.wait(10)
    # Written meanwhile, it queues for the next fsync.
    queued = threading.Thread(target=commit.submit, args=(behind,))
    queued.start()
    _wait_until(lambda: commit.queued == 1, "the second append to queue")
    recorder.release.set()
    for thread in (syncing, queued):
        thread.join(10)
        assert not thread.is_alive()
    assert isinstance(first.error, FsyncFailedError)
    assert isinstance(behind.error, FsyncFailedError)
    assert recorder.syncs == 0  # no second fsync could vouch for the second batch
    with pytest.raises(FsyncFailedError):
        commit.check()
