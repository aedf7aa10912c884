"""Writer threads of one process on one partition of the segment files: each append
is checked and written under the partition index's lock, so threads never fail each
other's end-offset check, and they still share fsyncs (the fsync comes after the
write). Versions stay 1..n per stream, offsets contiguous, nothing lost or doubled."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from framework.errors import ConcurrencyError, EndOffsetMismatchError
from framework.log.backends.memory import MemoryLog
from framework.log.backends.segments import SegmentLog
from framework.log.backends.segments.lock import FileLock
from framework.log.backends.segments.partition import LOCK_FILE
from framework.log.backends.segments.topics import partition_dir
from framework.log.config import TopicConfig
from framework.log.records import Record
from framework.store.event_store import LogEventStore
from framework.store.events import NewEvent

THREADS = 4


def event(n: int) -> NewEvent:
    return NewEvent(uuid.uuid4(), "a.B", 1, b"%d" % n, n, "c", "d", {})


def run_threads(target: object, count: int = THREADS) -> None:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            target(i)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert errors == []


class CountingLog(SegmentLog):
    """Counts the end-offset mismatches its appends raise."""

    mismatches = 0

    def append(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        try:
            return super().append(*args, **kwargs)  # type: ignore[arg-type]
        except EndOffsetMismatchError:
            CountingLog.mismatches += 1
            raise


def test_threads_on_one_partition_never_race_and_share_fsyncs(tmp_path: Path) -> None:
    CountingLog.mismatches = 0
    with CountingLog(tmp_path / "log") as log:
        store = LogEventStore(log, config=TopicConfig(partitions=1))
        per_thread = 150

        def writer(i: int) -> None:
            for n in range(per_thread):
                stream = f"t{i}-{n}"
                assert store.append(stream, [event(n)], 0).first_version == 1

        run_threads(writer)
        appends = THREADS * per_thread
        assert CountingLog.mismatches == 0
        assert log.fsync_count < appends  # shared fsyncs
        stored = list(store.iter_partition(0, 0))
        assert [e.offset for e in stored] == list(range(appends))
        assert len({e.stream_id for e in stored}) == appends


@pytest.mark.parametrize("backend", ["file", "memory"])
def test_threads_racing_on_one_stream_get_each_version_exactly_once(
    tmp_path: Path, backend: str
) -> None:
    log = SegmentLog(tmp_path / "log") if backend == "file" else MemoryLog()
    try:
        store = LogEventStore(log, config=TopicConfig(partitions=1))
        wins: list[tuple[int, int]] = []
        conflicts: list[int] = []
        lock = threading.Lock()

        def writer(i: int) -> None:
            done = 0
            while done < 40:
                seen = store.stream_version("shared")
                try:
                    appended = store.append("shared", [event(i * 1000 + done)], seen)
                except ConcurrencyError:
                    conflicts.append(i)
                    continue
                with lock:
                    wins.append((appended.first_version, i))
                done += 1

        run_threads(writer)
        versions = sorted(v for v, _ in wins)
        assert versions == list(range(1, THREADS * 40 + 1))
        stored = store.read_stream("shared")
        assert [e.stream_version for e in stored] == versions
        assert [e.offset for e in stored] == list(range(len(versions)))
    finally:
        log.close()


def test_a_write_from_another_handle_is_caught_up_before_the_next_check(
    tmp_path: Path,
) -> None:
    """Another process (here: another handle on the same folder) writes in between:
    the store's conditional append fails, catches up and decides again."""
    with SegmentLog(tmp_path / "log") as log:
        store = LogEventStore(log, config=TopicConfig(partitions=1))
        store.append("a", [event(1)], 0)
        with SegmentLog(tmp_path / "log") as other:
            other_store = LogEventStore(other, config=TopicConfig(partitions=1))
            other_store.append("a", [event(2)], 1)
        with pytest.raises(ConcurrencyError):
            store.append("a", [event(3)], 1)
        assert store.append("a", [event(3)], 2).first_version == 3
        assert [e.stream_version for e in store.read_stream("a")] == [1, 2, 3]


def test_on_written_runs_in_the_appending_thread_with_the_base_offset(
    tmp_path: Path,
) -> None:
    seen: list[tuple[str, int]] = []

    def note(base: int) -> None:
        seen.append((threading.current_thread().name, base))

    with SegmentLog(tmp_path / "log") as log:
        log.create_topic("t", TopicConfig())
        log.append("t", 0, [Record(value=b"a")])
        result = log.append(
            "t", 0, [Record(value=b"b"), Record(value=b"c")], on_written=note
        )
        assert seen == [(threading.current_thread().name, 1)]
        assert (result.base_offset, result.last_offset) == (1, 2)
        with pytest.raises(EndOffsetMismatchError):
            log.append(
                "t", 0, [Record(value=b"d")], expected_end_offset=1, on_written=note
            )
        assert len(seen) == 1  # nothing written, nothing announced
    memory = MemoryLog()
    memory.create_topic("t", TopicConfig())
    memory.append("t", 0, [Record(value=b"a")], on_written=note)
    assert seen[-1] == (threading.current_thread().name, 0)


def test_a_load_is_not_held_up_by_an_append_waiting_for_another_process(
    tmp_path: Path,
) -> None:
    """Another process holds the partition's file lock: an append waits for it, and
    loads of the same partition meanwhile answer at once."""
    with SegmentLog(tmp_path / "log", lock_timeout=10) as log:
        store = LogEventStore(log, config=TopicConfig(partitions=1))
        store.append("a", [event(1)], 0)
        other = FileLock(partition_dir(tmp_path / "log", "events", 0) / LOCK_FILE)
        assert other.acquire(1)
        try:
            waiting = threading.Thread(
                target=store.append, args=("b", [event(2)], 0), daemon=True
            )
            waiting.start()
            time.sleep(0.2)  # the append is now waiting for the file lock
            assert waiting.is_alive()
            started = time.monotonic()
            assert [e.stream_version for e in store.read_stream("a")] == [1]
            assert store.stream_version("a") == 1
            assert time.monotonic() - started < 1
        finally:
            other.release()
        waiting.join(10)
        assert not waiting.is_alive()
        assert [e.stream_version for e in store.read_stream("b")] == [1]
