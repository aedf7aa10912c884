"""Runners killed with SIGKILL: the read model always equals a replay of exactly the
events its checkpoints cover, and a group of processes shares the work."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from example_ledger.domain import Account
from framework import Application, AppSettings
from framework.projections.backends.sqlite import SQLiteReadModelStore

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


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


def read_model(store: Path) -> tuple[dict[str, int], dict[int, int]]:
    read_models = SQLiteReadModelStore(store / "read_models.sqlite")
    try:
        state = read_models.state("balances")
        if state is None:
            return {}, {}
        table = read_models.table("balances", "balances")
        balances = {k: v["balance"] for k, v in table.items()}
        return balances, read_models.checkpoints("balances", state.generation)
    finally:
        read_models.close()


def progress(store: Path) -> int:
    """How many events the read model has applied (0 before it exists)."""
    if not (store / "read_models.sqlite").exists():
        return 0
    return sum(o + 1 for o in read_model(store)[1].values())


def env(store: Path, batch: int) -> dict[str, str]:
    return {
        **os.environ,
        "CRASH_STORE": f"file:{store}",
        "CRASH_BATCH": str(batch),
        "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}",
    }


def start_runner(store: Path, batch: int, member: str) -> subprocess.Popen[bytes]:
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
        ],
        env=env(store, batch),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_runner_killed_at_random_points_never_applies_twice_or_skips(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    url = f"file:{store}"
    expected = populate(url, accounts=600, deposits=99)
    rng = random.Random(20261127)
    mid_way = 0
    applied = 0
    for _ in range(12):
        runner = start_runner(store, batch=rng.choice([1, 7, 50]), member="solo")
        # Kill it at a random moment after it has started applying again.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and progress(store) <= applied:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.1))
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        balances, checkpoints = read_model(store)
        assert balances == replay_up_to(url, checkpoints)
        if balances == expected:
            break
        applied = sum(o + 1 for o in checkpoints.values())
        mid_way += 1
    runner = start_runner(store, batch=100, member="solo")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and read_model(store)[0] != expected:
            time.sleep(0.1)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    assert mid_way >= 5, "too few kills landed during the catch-up"
    assert read_model(store)[0] == expected


@pytest.mark.parametrize("victim", [1])
def test_three_members_split_twelve_partitions_and_survive_a_kill(
    tmp_path: Path, victim: int
) -> None:
    store = tmp_path / "store"
    url = f"file:{store}"
    expected = populate(url, accounts=120, deposits=10)
    members = [start_runner(store, batch=5, member=f"m{n}") for n in range(3)]
    try:
        groups = store / "groups" / "balances" / "members"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(list(groups.glob("*.member"))) < 3:
            time.sleep(0.05)
        time.sleep(0.3)
        members[victim].send_signal(signal.SIGKILL)
        members[victim].wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and read_model(store)[0] != expected:
            time.sleep(0.1)
    finally:
        for member in members:
            member.send_signal(signal.SIGKILL)
            member.wait()
    balances, checkpoints = read_model(store)
    assert balances == expected
    with Application(url, settings=AppSettings(partitions=12)) as app:
        assert checkpoints == dict(app.end_position())


def wait_for(store: Path, expected: dict[str, int], seconds: float) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and read_model(store)[0] != expected:
        time.sleep(0.05)
    return read_model(store)[0]


def test_a_runner_in_another_process_applies_what_is_saved_after_it_started(
    tmp_path: Path,
) -> None:
    # The runner learns which partitions moved from the log's ends: those must
    # follow appends that another process makes to the files.
    store = tmp_path / "store"
    url = f"file:{store}"
    expected = populate(url, accounts=12, deposits=2)
    runner = start_runner(store, batch=50, member="solo")
    try:
        assert wait_for(store, expected, 30) == expected
        with Application(url, settings=AppSettings(partitions=12)) as app:
            for round_ in range(3):
                for account_id in expected:
                    account = app.load(Account, account_id)
                    account.deposit(round_ + 10)
                    app.save(account)
                    expected[account_id] = account.balance
                time.sleep(0.05)  # some rounds land while the runner is idle
        assert wait_for(store, expected, 30) == expected
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait()
