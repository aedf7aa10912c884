"""Runners on PostgreSQL killed with SIGKILL: the read model always equals a replay
of exactly the events its checkpoints cover, and a group of processes coordinated
through the database shares the partitions and takes over a dead member's."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from example_ledger.domain import Account
from framework import Application, AppSettings
from framework.projections.backends.postgres import PostgresReadModelStore, group_key
from tests.conftest import database_url

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[4]
CRASH_APP = ROOT / "tests" / "projections"


def populate(url: str, accounts: int, deposits: int) -> dict[str, int]:
    expected: dict[str, int] = {}
    with Application(url, settings=AppSettings(partitions=12)) as app:
        for n in range(accounts):
            account = Account.open(f"owner{n}")
            for d in range(deposits):
                account.deposit(d + 1)
            app.save(account)
            expected[account.id] = account.balance
    return expected


def replay_up_to(url: str, checkpoints: dict[int, int]) -> dict[str, int]:
    """Balances from events at or before each partition's checkpoint."""
    balances: dict[str, int] = defaultdict(int)
    with Application(url, settings=AppSettings(partitions=12)) as app:
        for partition, last in checkpoints.items():
            for envelope in app.iter_events(partition):
                if envelope.offset is not None and envelope.offset > last:
                    break
                balances[envelope.stream_id] += getattr(envelope.event, "amount", 0)
    return dict(balances)


@pytest.fixture
def read_models(pg_url: str) -> Iterator[PostgresReadModelStore]:
    store = PostgresReadModelStore(pg_url)
    yield store
    store.close()


def read_model(
    read_models: PostgresReadModelStore,
) -> tuple[dict[str, int], dict[int, int]]:
    state = read_models.state("balances")
    if state is None:
        return {}, {}
    balances = {
        k: v["balance"] for k, v in read_models.table("balances", "balances").items()
    }
    return balances, read_models.checkpoints("balances", state.generation)


def progress(read_models: PostgresReadModelStore) -> int:
    state = read_models.state("balances")
    if state is None:
        return 0
    return sum(
        o + 1 for o in read_models.checkpoints("balances", state.generation).values()
    )


def start_runner(
    url: str, batch: int, member: str, lease: float = 10.0
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "framework",
            "projections",
            "run",
            "--app",
            "crash_app:app",
            "--member-id",
            member,
            "--heartbeat",
            "0.05",
            "--lease",
            str(lease),
        ],
        env={
            **os.environ,
            "CRASH_STORE": url,
            "CRASH_BATCH": str(batch),
            "PYTHONPATH": f"{CRASH_APP}{os.pathsep}{ROOT}",
        },
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_runner_killed_at_random_points_never_applies_twice_or_skips(
    pg_url: str, read_models: PostgresReadModelStore
) -> None:
    expected = populate(pg_url, accounts=500, deposits=99)
    rng = random.Random(20261127)
    mid_way = 0
    applied = 0
    for _ in range(14):
        runner = start_runner(pg_url, batch=rng.choice([1, 7, 50]), member="solo")
        # Kill it at a random moment after it has started applying again.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and progress(read_models) <= applied:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.1))
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        balances, checkpoints = read_model(read_models)
        assert balances == replay_up_to(pg_url, checkpoints)
        if balances == expected:
            break
        applied = sum(o + 1 for o in checkpoints.values())
        mid_way += 1
    runner = start_runner(pg_url, batch=100, member="solo")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and read_model(read_models)[0] != expected:
            time.sleep(0.05)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    assert mid_way >= 8, "too few kills landed during the catch-up"
    assert read_model(read_models)[0] == expected


def owners(schema: str) -> dict[int, list[int]]:
    """Backend pid -> partitions whose group lock it holds."""
    key = group_key(schema, "balances") & 0xFFFFFFFF
    with psycopg.connect(database_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, objid::int FROM pg_locks WHERE locktype = 'advisory' "
            "AND objsubid = 2 AND classid::bigint = %s AND granted",
            (key,),
        ).fetchall()
    found: dict[int, list[int]] = defaultdict(list)
    for pid, partition in rows:
        found[pid].append(partition)
    return {pid: sorted(ps) for pid, ps in found.items()}


def wait_until(check: object, seconds: float) -> float:
    """Seconds until ``check()`` held (raises after ``seconds``)."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_three_members_split_twelve_partitions_and_take_over_from_a_dead_one(
    pg_url: str, schema: str, read_models: PostgresReadModelStore, how: str
) -> None:
    lease = 1.5
    expected = populate(pg_url, accounts=60, deposits=10)
    members = [
        start_runner(pg_url, batch=5, member=f"m{n}", lease=lease) for n in range(3)
    ]
    try:
        wait_until(
            lambda: sorted(len(ps) for ps in owners(schema).values()) == [4, 4, 4], 30
        )
        victim = members[1]
        if how == "killed":
            victim.send_signal(signal.SIGKILL)
        else:  # alive, connected, silent: only its lease can tell
            victim.send_signal(signal.SIGSTOP)
        moved = wait_until(
            lambda: sorted(len(ps) for ps in owners(schema).values()) == [6, 6],
            lease + 5,
        )
        assert moved < lease + 1.0
        more = populate(pg_url, accounts=30, deposits=5)
        expected.update(more)
        wait_until(lambda: read_model(read_models)[0] == expected, 60)
    finally:
        for member in members:
            member.send_signal(signal.SIGKILL)
            member.wait()
    balances, checkpoints = read_model(read_models)
    assert balances == expected
    with Application(pg_url, settings=AppSettings(partitions=12)) as app:
        assert checkpoints == dict(app.end_position())
