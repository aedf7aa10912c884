"""Several processes on one folder: killed writers lose only unacknowledged batches,
two writers append in turn, and a stuck lock holder times the others out clearly."""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from framework.log.backends.segments import LogLockTimeoutError, SegmentLog
from framework.log.records import LogRecord, Record

Spawn = Callable[..., "subprocess.Popen[str]"]
#: ``run:batch:index/count:`` at the start of every value the crash writer appends.
VALUE = re.compile(rb"(\d+):(\d+):(\d+)/(\d+):")


def read_all(log: SegmentLog, topic: str = "c") -> list[LogRecord]:
    records: list[LogRecord] = []
    while batch := log.read(topic, 0, len(records), 10_000):
        records.extend(batch)
    return records


def check_log(path: Path, acknowledged: dict[str, tuple[int, int]]) -> int:
    """Every acknowledged batch is there at its offsets, offsets are contiguous, and
    every stored batch is whole. Returns the number of records."""
    with SegmentLog(path) as log:
        records = read_all(log)
    assert [r.offset for r in records] == list(range(len(records)))
    batches: dict[str, list[tuple[int, int, int]]] = {}
    for record in records:
        match = VALUE.match(record.value)
        assert match, record
        run, number, index, count = (int(g) for g in match.groups())
        batches.setdefault(f"{run}:{number}", []).append((record.offset, index, count))
    for name, rows in batches.items():
        count = rows[0][2]
        assert [index for _, index, _ in rows] == list(range(count)), name
        assert [offset for offset, _, _ in rows] == list(
            range(rows[0][0], rows[0][0] + count)
        ), f"batch {name} is not contiguous"
    for name, (base, last) in acknowledged.items():
        assert name in batches, f"acknowledged batch {name} was lost"
        offsets = [offset for offset, _, _ in batches[name]]
        assert (offsets[0], offsets[-1]) == (base, last), name
    return len(records)


def kill_and_check(
    path: Path, spawn: Spawn, mode: str, kills: int, seed: int
) -> dict[str, tuple[int, int]]:
    """Start a ``mode`` writer, SIGKILL it at a random moment, reopen and check
    the log against every acknowledgement so far; ``kills`` times."""
    rng = random.Random(seed)
    acknowledged: dict[str, tuple[int, int]] = {}
    for run in range(kills):
        process = spawn(mode, path, run)
        assert process.stdout is not None
        if rng.random() < 0.1:
            time.sleep(rng.uniform(0, 0.15))  # sometimes while it opens and recovers
        else:
            assert process.stdout.readline() == "ready\n", process.communicate()[1]
            time.sleep(rng.uniform(0, 0.04))
        process.kill()
        out, err = process.communicate(timeout=10)
        assert process.returncode == -9, err
        for line in out.split("\n")[:-1]:  # a line cut off by the kill is not counted
            if line != "ready":
                base, last, name = line.split()
                acknowledged[name] = (int(base), int(last))
        check_log(path, acknowledged)
    return acknowledged


def test_killed_threaded_writers_lose_no_acknowledged_batch(
    tmp_path: Path, spawn: Spawn
) -> None:
    # Four threads per process: kills land inside group commits, where the append
    # that completes a group writes and fsyncs the others' batches.
    acknowledged = kill_and_check(tmp_path / "log", spawn, "crash-threads", 15, 7)
    assert len(acknowledged) > 15


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["crash", "crash-small", "crash-threads"])
def test_soak_hundreds_of_kills_lose_nothing_acknowledged(
    tmp_path: Path, spawn: Spawn, mode: str
) -> None:
    acknowledged = kill_and_check(tmp_path / "log", spawn, mode, 300, 11)
    # A floor that shows the writers got work done between kills: the big-batch
    # writer acknowledges 250-330 batches in 300 kills, depending on the disk.
    # What the test proves is that none of them is lost.
    assert len(acknowledged) > 150


def test_killed_writers_lose_no_acknowledged_batch_and_leave_no_partial_one(
    tmp_path: Path, spawn: Spawn
) -> None:
    acknowledged = kill_and_check(tmp_path / "log", spawn, "crash", 50, 20240611)
    assert len(acknowledged) > 50


@pytest.mark.parametrize("mode", ["append", "cas"])
def test_two_processes_appending_at_once_take_turns_and_lose_nothing(
    tmp_path: Path, spawn: Spawn, mode: str
) -> None:
    # "cas": conditional appends, as the event store makes them; the end-offset check
    # and the write must be one step across processes, or offsets would be reused.
    path = tmp_path / "log"
    count = 150
    writers = [spawn(mode, path, tag, count) for tag in ("a", "b")]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n", writer.communicate()[1]
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    reported = []
    for writer in writers:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        reported.append([int(line) for line in out.split()])
    with SegmentLog(path) as log:
        records = read_all(log)
    assert [r.offset for r in records] == list(range(2 * count))
    for tag, offsets in zip("ab", reported, strict=True):
        mine = [r for r in records if r.value.startswith(tag.encode())]
        assert [r.value for r in mine] == [f"{tag}:{i}".encode() for i in range(count)]
        assert [r.offset for r in mine] == offsets


def test_a_lock_held_too_long_fails_the_append_naming_partition_and_lock_file(
    tmp_path: Path, spawn: Spawn
) -> None:
    path = tmp_path / "log"
    holder = spawn("hold", path)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n", holder.communicate()[1]
    with SegmentLog(path, lock_timeout=0.2) as log:
        with pytest.raises(LogLockTimeoutError) as info:
            log.append("c", 0, [Record(value=b"x")])
        error = info.value
        assert error.retriable
        assert (error.topic, error.partition) == ("c", 0)
        assert error.lock_file == path / "c-0" / "writer.lock"
        assert "c/0" in str(error)
        assert str(error.lock_file) in str(error)
        assert log.read("c", 0, 0) == []  # readers need no lock
    holder.kill()
    holder.communicate(timeout=10)
    with SegmentLog(path, lock_timeout=5) as log:
        assert log.append("c", 0, [Record(value=b"x")]).base_offset == 0


def test_the_worker_script_runs_from_this_checkout(
    spawn: Spawn, tmp_path: Path
) -> None:
    # Guards the other tests: the child must import the code under test.
    process = spawn("append", tmp_path / "log", "z", 1)
    out, err = process.communicate(input="go\n", timeout=30)
    assert process.returncode == 0, err
    assert out.split() == ["ready", "0"]
    assert isinstance(process, subprocess.Popen)
