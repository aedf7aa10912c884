"""A transfer saved as two aggregates in different partitions is whole or absent
after a SIGKILL at any moment, on the file store and on PostgreSQL, and the
balances projection then shows no money in flight."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from transfer_worker import ACCOUNTS, OPENING, SETTINGS, account_ids

from example_ledger.domain import TransferReceived, TransferSent
from example_ledger.projections import Balances
from framework import Application
from tests.children import RunScript

HERE = Path(__file__).parent


def check(url: str, acknowledged: set[str]) -> int:
    """Every transfer has its debit and its credit or neither, every acknowledged
    one is there, and the caught-up balances add up to what was deposited.
    Returns the number of transfers stored."""
    sent: set[str] = set()
    received: set[str] = set()
    with Application(url, settings=SETTINGS) as app:
        for account_id in account_ids():
            for envelope in app.read_stream(account_id):
                event = envelope.event
                if isinstance(event, TransferSent):
                    sent.add(event.transfer_id)
                elif isinstance(event, TransferReceived):
                    received.add(event.transfer_id)
        assert sent == received, f"half-written: {sorted(sent ^ received)[:5]}"
        assert acknowledged <= sent, f"lost: {sorted(acknowledged - sent)[:5]}"
        app.project(Balances())
        app.runner("balances").catch_up()
        balances = app.read_model("balances").table("balances")
        opened = [balances.get(a) for a in account_ids()]
        total = sum(row["balance"] for row in opened if row is not None)
        opened_count = sum(row is not None for row in opened)
        assert total == OPENING * opened_count, "money in flight or lost"
    return len(sent)


def kill_transfers(url: str, run_script: RunScript, kills: int, seed: int) -> int:
    rng = random.Random(seed)
    acknowledged: set[str] = set()
    for run in range(kills):
        process = run_script(HERE / "transfer_worker.py", url, run)
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n", process.communicate()[1]
        # A random moment: kills land inside saves, their fsyncs and commits.
        time.sleep(rng.uniform(0, 0.1))
        process.kill()
        out, err = process.communicate(timeout=30)
        assert process.returncode == -9, err
        acknowledged.update(out.split("\n")[1:-1])  # a cut-off line is not counted
    stored = check(url, acknowledged)
    assert len(acknowledged) > kills
    return stored


def test_killed_transfers_on_the_file_store_are_whole_or_absent(
    tmp_path: Path, run_script: RunScript
) -> None:
    kill_transfers(f"file:{tmp_path / 'store'}", run_script, 50, 3)


@pytest.mark.postgres
def test_killed_transfers_on_postgresql_are_whole_or_absent(
    pg_url: str, run_script: RunScript
) -> None:
    kill_transfers(pg_url, run_script, 50, 4)


def test_the_accounts_of_the_worker_span_partitions() -> None:
    with Application("memory://", settings=SETTINGS) as app:
        partitions = {app.store.partition_of(a) for a in account_ids()}
    assert len(partitions) > 1, partitions
    assert len(account_ids()) == ACCOUNTS
