"""Kill -9 a process whose four threads append through the event store to a file
store (one partition, group commits, conflicts on a shared stream), at random
moments: after every reopen, every acknowledged append is there at the versions and
offsets it was acknowledged with, every stream's versions run 1..n, offsets are
contiguous, and no event is stored twice."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from framework.log.backends.segments import SegmentLog
from framework.store.event_store import LogEventStore

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("store_worker.py")

#: (stream, first version) -> (last version, first offset), as acknowledged.
Acknowledged = dict[tuple[str, int], tuple[int, int]]


def spawn(path: Path, run: int) -> subprocess.Popen[str]:
    env_path = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
    return subprocess.Popen(
        [sys.executable, str(WORKER), "threads", str(path), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": env_path},
    )


def check_store(path: Path, acknowledged: Acknowledged) -> int:
    with SegmentLog(path) as log:
        store = LogEventStore(log)
        events = list(store.iter_partition(0, 0))
    assert [e.offset for e in events] == list(range(len(events)))
    assert len({e.event_id for e in events}) == len(events), "an event stored twice"
    streams: dict[str, list[int]] = defaultdict(list)
    at: dict[tuple[str, int], int] = {}
    for stored in events:
        streams[stored.stream_id].append(stored.stream_version)
        at[stored.stream_id, stored.stream_version] = stored.offset
    for stream, versions in streams.items():
        assert versions == list(range(1, len(versions) + 1)), stream
    for (stream, first), (last, offset) in acknowledged.items():
        for version in range(first, last + 1):
            assert (stream, version) in at, f"acknowledged {stream} v{version} lost"
            assert at[stream, version] == offset + version - first, (stream, version)
    return len(events)


def kill_and_check(path: Path, kills: int, seed: int) -> Acknowledged:
    rng = random.Random(seed)
    acknowledged: Acknowledged = {}
    for run in range(kills):
        process = spawn(path, run)
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n", process.communicate()[1]
        time.sleep(rng.uniform(0.01, 0.15))
        process.kill()
        out, err = process.communicate(timeout=10)
        assert process.returncode == -9, err
        for line in out.split("\n")[:-1]:  # a line cut off by the kill is not counted
            stream, first, last, offset = line.split()
            acknowledged[stream, int(first)] = (int(last), int(offset))
        check_store(path, acknowledged)
    return acknowledged


def test_killed_threaded_store_writers_lose_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    acknowledged = kill_and_check(tmp_path / "store", 12, 5)
    assert len(acknowledged) > 100
    assert any(stream == "shared" for stream, _ in acknowledged)


@pytest.mark.slow
def test_soak_killed_threaded_store_writers(tmp_path: Path) -> None:
    acknowledged = kill_and_check(tmp_path / "store", 200, 13)
    assert len(acknowledged) > 2000
