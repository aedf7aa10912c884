"""``GroupCommit`` on its own: who writes a group, and that every append of it is
acknowledged once, after the group's fsync, whichever thread committed it."""

from __future__ import annotations

import threading
import time

from framework.log.backends.segments.batch import encode_record
from framework.log.backends.segments.groupcommit import GroupCommit, Pending

RECORD = encode_record(0, None, b"x", ())


class Recorder:
    """A write and a sync that note which thread ran them and what they held."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[Pending]]] = []
        self.syncs = 0
        self.next_base = 0

    def write(self, group: list[Pending]) -> bool:
        for pending in group:
            pending.base = self.next_base
            self.next_base += 1
        self.groups.append((threading.current_thread().name, list(group)))
        return True

    def sync(self) -> None:
        self.syncs += 1


def _wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def test_the_append_that_completes_a_group_commits_it_for_the_gathering_leader() -> (
    None
):
    recorder = Recorder()
    commit = GroupCommit(recorder.write, recorder.sync, durable=True)
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


def test_a_leader_whose_group_stays_short_commits_it_itself_after_gathering() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.write, recorder.sync, durable=True)
    commit._last_group = 3  # two of the last group's three appends come back
    first, second = Pending(RECORD, None), Pending(RECORD, None)
    leader = threading.Thread(target=commit.submit, args=(first,), name="leader")
    leader.start()
    _wait_until(lambda: commit._gathering, "the leader to gather")
    other = threading.Thread(target=commit.submit, args=(second,), name="other")
    other.start()
    for thread in (leader, other):
        thread.join(10)
        assert not thread.is_alive()
    assert [(name, len(group)) for name, group in recorder.groups] == [("leader", 2)]
    assert (first.base, second.base, recorder.syncs) == (0, 1, 1)


def test_many_threads_each_get_their_own_offsets_once() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.write, recorder.sync, durable=True)
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
