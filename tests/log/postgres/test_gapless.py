"""The promise of the PostgreSQL backend, with real processes: gapless partitions,
readers that never skip, and writers that die without leaving a trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from framework.log.config import TopicConfig
from framework.log.partitioner import partition_for
from framework.store.backends.postgres import PostgresEventStore
from tests.log.postgres.workers import event
from tests.postgres.fixtures import Closer

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[3]


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.log.postgres.workers", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def streams_in_partition(partition: int, partitions: int, count: int) -> list[str]:
    found = []
    n = 0
    while len(found) < count:
        name = f"s-{n}"
        if partition_for(name, partitions) == partition:
            found.append(name)
        n += 1
    return found


def open_store(
    pg_url: str, closing: list[Closer], partitions: int
) -> PostgresEventStore:
    store = PostgresEventStore(pg_url, config=TopicConfig(partitions=partitions))
    closing.append(store.close)
    return store


def test_eight_processes_racing_on_random_streams_leave_gapless_partitions(
    pg_url: str, closing: list[Closer]
) -> None:
    store = open_store(pg_url, closing, 4)
    writers = [spawn("random", pg_url, "150", "24", str(seed)) for seed in range(8)]
    told: list[tuple[str, str, int]] = []
    for writer in writers:
        out, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0
        told += [tuple(json.loads(line)) for line in out.splitlines()]  # type: ignore[misc]
    assert len(told) == 8 * 150
    stored = []
    for partition in range(store.partitions):
        events = list(store.iter_partition(partition))
        assert [e.offset for e in events] == list(range(len(events)))
        stored += events
    assert sorted(str(e.event_id) for e in stored) == sorted(t[0] for t in told)
    versions: dict[str, list[int]] = defaultdict(list)
    for e in sorted(stored, key=lambda e: (e.partition, e.offset)):
        versions[e.stream_id].append(e.stream_version)
    for stream, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), stream
    assert {(str(e.event_id), e.stream_id, e.stream_version) for e in stored} == set(
        told
    )


def test_a_tailing_reader_sees_every_offset_once_in_order_despite_a_slow_writer(
    pg_url: str, closing: list[Closer]
) -> None:
    store = open_store(pg_url, closing, 2)
    hot = streams_in_partition(0, 2, 4)
    seen: list[int] = []
    done = threading.Event()

    def tail() -> None:
        offset = 0
        while True:
            finished = done.is_set()
            batch = store.read_partition(0, offset, 100)
            seen.extend(e.offset for e in batch)
            if batch:
                offset = batch[-1].offset + 1
            elif finished:
                return
            else:
                time.sleep(0.001)

    reader = threading.Thread(target=tail)
    reader.start()
    steady = [spawn("steady", pg_url, hot[n], "150") for n in range(3)]
    time.sleep(0.3)
    slow = spawn("slow", pg_url, hot[3], "2")
    assert slow.stdout is not None
    assert slow.stdout.readline().strip() == "locked"
    for writer in [*steady, slow]:
        writer.communicate(timeout=60)
        assert writer.returncode == 0
    done.set()
    reader.join(timeout=30)
    end = store.end_position()[0]
    assert seen == list(range(end + 1))
    assert end + 1 == 3 * 150 + 1


def test_a_writer_killed_mid_transaction_leaves_nothing_and_blocks_no_one(
    pg_url: str, closing: list[Closer]
) -> None:
    store = open_store(pg_url, closing, 2)
    victim_stream, next_stream = streams_in_partition(1, 2, 2)
    store.append(next_stream, [event()], expected_version=0)
    before = store.end_position()
    victim = spawn("slow", pg_url, victim_stream, "60")
    assert victim.stdout is not None
    assert victim.stdout.readline().strip() == "locked"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    started = time.monotonic()
    appended = store.append(next_stream, [event()], expected_version=1)
    assert time.monotonic() - started < 10
    assert appended.first_offset == before[1] + 1
    assert store.stream_version(victim_stream) == 0
    assert [e.offset for e in store.iter_partition(1)] == [0, 1]
