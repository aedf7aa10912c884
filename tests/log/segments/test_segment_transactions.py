"""Atomic appends across partitions on segment files: all of a transaction or
nothing, through failures, SIGKILLs and readers in other processes."""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from framework.errors import ConfigurationError, OffsetOutOfRangeError
from framework.log.backends.segments import SegmentLog
from framework.log.backends.segments import log as segment_log
from framework.log.backends.segments.transactions import ABORTED_FILE
from framework.log.config import TopicConfig
from framework.log.records import LogRecord, PartitionBatch, Record, is_void

Spawn = Callable[..., "subprocess.Popen[str]"]
#: ``run:number:partition/partitions:`` at the start of every value ``txn`` writes.
VALUE = re.compile(rb"(\d+:\d+):(\d+)/(\d+):")


def read_all(log: SegmentLog, topic: str, partition: int) -> list[LogRecord]:
    records: list[LogRecord] = []
    while batch := log.read(topic, partition, len(records), 10_000):
        records.extend(batch)
    return records


def batch(partition: int, *values: bytes) -> PartitionBatch:
    return PartitionBatch(partition, [Record(value=v) for v in values])


@pytest.fixture
def log(tmp_path: Path) -> SegmentLog:
    log = SegmentLog(tmp_path / "log")
    log.create_topic("t", TopicConfig(partitions=3))
    return log


def fail_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next commit record fail to be written, as a full disk would."""

    def failing(topic: str, parts: list[tuple[int, int, int]]) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(segment_log, "commit_record", failing)


def test_a_transaction_that_fails_before_its_commit_reads_as_void_records(
    log: SegmentLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append("t", 0, [Record(value=b"before")])
    with monkeypatch.context() as patch:
        fail_commits(patch)
        with pytest.raises(OSError, match="No space"):
            log.append_atomic("t", [batch(0, b"a1", b"a2"), batch(2, b"c1")])
    # Offsets stay contiguous; the transaction's read as void records.
    records = read_all(log, "t", 0)
    assert [r.offset for r in records] == [0, 1, 2]
    assert records[0].value == b"before"
    assert all(is_void(r) for r in records[1:])
    assert all(is_void(r) for r in read_all(log, "t", 2))
    assert [is_void(r) for r in log.read_at("t", 0, [2, 0])] == [True, False]
    # Appends go on after it, and the next transaction commits.
    log.append("t", 0, [Record(value=b"after")], expected_end_offset=3)
    log.append_atomic("t", [batch(0, b"x0"), batch(2, b"x2")])
    log.close()
    with SegmentLog(tmp_path / "log") as reopened:
        values = [None if is_void(r) else r.value for r in read_all(reopened, "t", 0)]
        assert values == [b"before", None, None, b"after", b"x0"]
        assert [r.value for r in read_all(reopened, "t", 2)] == [b"", b"x2"]
    assert (tmp_path / "log" / "t-0" / ABORTED_FILE).read_text() == "1 2 0\n"


def test_readers_see_nothing_of_a_transaction_until_it_commits(
    log: SegmentLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append("t", 2, [Record(value=b"old")])
    written = threading.Event()
    go_on = threading.Event()
    real = segment_log.commit_record

    def stalled(topic: str, parts: list[tuple[int, int, int]]) -> bytes:
        written.set()
        go_on.wait()
        return real(topic, parts)

    monkeypatch.setattr(segment_log, "commit_record", stalled)
    writer = threading.Thread(
        target=log.append_atomic, args=("t", [batch(0, b"a"), batch(2, b"c")])
    )
    writer.start()
    assert written.wait(10)
    # Written and fsynced, not committed: no reader sees any of it, in this
    # process or another one.
    other = SegmentLog(tmp_path / "log")
    for reader in (log, other):
        assert reader.read("t", 0, 0) == []
        assert [r.value for r in reader.read("t", 2, 0)] == [b"old"]
        assert reader.read("t", 2, 1) == []
        assert reader.end_offsets("t") == {0: 1, 1: 0, 2: 2}
        with pytest.raises(OffsetOutOfRangeError):
            reader.read_at("t", 2, [1])
        assert reader.offset_for_time("t", 0, 0) is None
    go_on.set()
    writer.join()
    for reader in (log, other):
        assert [r.value for r in reader.read("t", 0, 0)] == [b"a"]
        assert [r.value for r in reader.read("t", 2, 0)] == [b"old", b"c"]
    other.close()
    log.close()


def test_a_killed_transaction_is_aborted_by_the_next_reader_and_stays_so(
    tmp_path: Path, spawn: Spawn
) -> None:
    path = tmp_path / "log"
    process = spawn("txn-stall", path)
    assert process.stdout is not None
    assert process.stdout.readline() == "written\n", process.communicate()[1]
    with SegmentLog(path) as log:
        # Its writer holds the locks: undecided, so readers stop before it.
        assert read_all(log, "x", 0) == []
        assert log.end_offsets("x") == {0: 1, 1: 0, 2: 1}
        process.kill()
        process.communicate(timeout=10)
        # Gone: the next read takes the free locks and aborts it.
        assert [is_void(r) for r in read_all(log, "x", 0)] == [True]
        assert [is_void(r) for r in read_all(log, "x", 2)] == [True]
        log.append("x", 0, [Record(value=b"next")], expected_end_offset=1)
    with SegmentLog(path) as log:
        assert [None if is_void(r) else r.value for r in read_all(log, "x", 0)] == [
            None,
            b"next",
        ]
        assert [is_void(r) for r in read_all(log, "x", 2)] == [True]


def check_transactions(path: Path, acknowledged: dict[str, set[int]]) -> int:
    """Every transaction is whole in every partition it names, or absent from all
    of them; every acknowledged one is there; offsets are contiguous. Returns the
    number of transactions found."""
    found: dict[str, set[int]] = {}
    declared: dict[str, int] = {}
    with SegmentLog(path) as log:
        for partition in range(3):
            records = read_all(log, "x", partition)
            assert [r.offset for r in records] == list(range(len(records)))
            for record in records:
                if is_void(record):
                    continue
                match = VALUE.match(record.value)
                assert match, record
                name, p, count = match.group(1).decode(), int(match[2]), int(match[3])
                assert p == partition
                found.setdefault(name, set()).add(partition)
                declared[name] = count
    for name, partitions in found.items():
        assert len(partitions) == declared[name], f"{name} is half there: {partitions}"
    for name, partitions in acknowledged.items():
        assert found.get(name) == partitions, f"acknowledged {name} is lost"
    return len(found)


def kill_transactions(path: Path, spawn: Spawn, kills: int, seed: int) -> int:
    rng = random.Random(seed)
    acknowledged: dict[str, set[int]] = {}
    for run in range(kills):
        process = spawn("txn", path, run)
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n", process.communicate()[1]
        # A random moment: kills land inside writes, fsyncs and commits.
        time.sleep(rng.uniform(0, 0.05))
        process.kill()
        out, err = process.communicate(timeout=10)
        assert process.returncode == -9, err
        for line in out.split("\n")[:-1]:  # a line cut off by the kill is not counted
            name, *parts = line.split()
            acknowledged[name] = {int(p.split(":")[0]) for p in parts}
        check_transactions(path, acknowledged)
    return len(acknowledged)


def test_killed_transaction_writers_leave_every_transaction_whole_or_absent(
    tmp_path: Path, spawn: Spawn
) -> None:
    assert kill_transactions(tmp_path / "log", spawn, 20, 5) > 20


@pytest.mark.slow
def test_soak_killed_transaction_writers(tmp_path: Path, spawn: Spawn) -> None:
    assert kill_transactions(tmp_path / "log", spawn, 200, 17) > 200


def test_a_compacted_topic_takes_no_transactions(log: SegmentLog) -> None:
    log.create_topic("k", TopicConfig(partitions=2, cleanup_policy="compact"))
    with pytest.raises(ConfigurationError, match="compacted"):
        log.append_atomic("k", [batch(0, b"a"), batch(1, b"b")])
    assert log.end_offsets("k") == {0: 0, 1: 0}


def test_the_commit_records_topic_is_internal(log: SegmentLog) -> None:
    log.append_atomic("t", [batch(0, b"a"), batch(1, b"b")])
    assert log.topics() == ["t"]
