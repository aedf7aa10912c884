"""Durability: appends return after an fsync that concurrent appends share (group
commit); ``fsync="interval"`` topics are flushed in the background and on close."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from framework.log.backends.segments import SegmentLog, fsutil
from framework.log.config import TopicConfig
from framework.log.records import Record

#: Where the append path looks up its fsync and write functions.
PARTITION = "framework.log.backends.segments.partition"


def test_every_append_is_fsynced_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = fsutil.sync_data

    def counting(fd: int) -> None:
        real(fd)
        synced.append(fd)

    monkeypatch.setattr(PARTITION + ".sync_data", counting)
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig())
        for i in range(5):
            log.append("t", 0, [Record(value=b"%d" % i)])
            assert len(synced) == i + 1
        assert log.fsync_count == 5


def test_four_threads_appending_share_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SegmentLog(tmp_path)
    log.create_topic("t", TopicConfig())
    real_sync = fsutil.sync_data
    commit = log._partition("t", 0).commit
    first = threading.Event()

    def slow_first(fd: int) -> None:
        # Hold the first fsync until the three other threads have queued their
        # appends behind it: they must then share the next one, without timing luck.
        if not first.is_set():
            deadline = time.monotonic() + 10
            while commit.queued < 3 and time.monotonic() < deadline:
                time.sleep(0.001)
            first.set()
        real_sync(fd)

    monkeypatch.setattr(PARTITION + ".sync_data", slow_first)
    per_thread = 25
    offsets: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(per_thread):
            result = log.append("t", 0, [Record(value=f"{n}:{i}".encode())])
            with lock:
                offsets.append(result.base_offset)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    appends = 4 * per_thread
    assert sorted(offsets) == list(range(appends))
    assert log.fsync_count < appends
    log.close()


def test_interval_topics_acknowledge_before_fsync_and_flush_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fsutil.sync_data
    appended = threading.Event()

    def held_until_appended(fd: int) -> None:
        # The background flush waits for the appends: they must return without it.
        assert appended.wait(10)
        real(fd)

    monkeypatch.setattr(PARTITION + ".sync_data", held_until_appended)
    with SegmentLog(tmp_path) as log:
        log.create_topic("fast", TopicConfig(fsync="interval", fsync_interval_ms=20))
        for i in range(10):
            log.append("fast", 0, [Record(value=b"%d" % i)])
        appended.set()
        deadline = time.monotonic() + 10
        while log.fsync_count == 0 and time.monotonic() < deadline:
            time.sleep(0.005)  # a condition polled, not a pause timed to pass
        assert 1 <= log.fsync_count < 10
    with SegmentLog(tmp_path) as log:
        assert log.end_offset("fast", 0) == 10


def test_close_flushes_interval_topics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = fsutil.sync_data

    def counting(fd: int) -> None:
        real(fd)
        synced.append(fd)

    monkeypatch.setattr(PARTITION + ".sync_data", counting)
    log = SegmentLog(tmp_path)
    log.create_topic("lazy", TopicConfig(fsync="interval", fsync_interval_ms=3_600_000))
    log.append("lazy", 0, [Record(value=b"a")])
    log.append("lazy", 0, [Record(value=b"b")])
    before = len(synced)
    log.close()
    assert len(synced) == before + 1


class CallbackFailed(Exception):
    """Raised by an ``on_written`` callback."""


def test_a_failing_on_written_callback_still_gets_its_batch_fsynced(
    tmp_path: Path,
) -> None:
    def fail(base: int) -> None:
        raise CallbackFailed(base)

    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig())
        log.append("t", 0, [Record(value=b"first")])
        before = log.fsync_count
        with pytest.raises(CallbackFailed):
            log.append("t", 0, [Record(value=b"second")], on_written=fail)
        # Written, so made durable like any other batch before the error went up.
        assert log.fsync_count == before + 1
        log.append("t", 0, [Record(value=b"third")])
    with SegmentLog(tmp_path) as reopened:
        assert [r.value for r in reopened.read("t", 0, 0)] == [
            b"first",
            b"second",
            b"third",
        ]
