"""Push on PostgreSQL: committed checkpoints are announced with NOTIFY, so pull
queries in any process wake when the position is reached instead of polling."""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from example_ledger.domain import Account
from example_ledger.projections import Balances
from framework import Application, AppSettings
from framework.projections.backends.postgres import PostgresReadModelStore
from tests.projections.backends.postgres.test_projection_crash import start_runner

pytestmark = pytest.mark.postgres


def test_a_waiter_wakes_when_another_store_commits_the_position(pg_url: str) -> None:
    writer = PostgresReadModelStore(pg_url)
    waiter = PostgresReadModelStore(pg_url)
    try:
        writer.ensure("proj", 1, ("docs",))
        # The first wait starts listening and returns at once.
        waiter.wait_for_checkpoints("proj", 1, {0: 5}, 1.0)
        woke: list[float] = []

        def wait() -> None:
            started = time.monotonic()
            if waiter.wait_for_checkpoints("proj", 1, {0: 5}, 10.0):
                woke.append(time.monotonic() - started)

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.2)
        committed = time.monotonic()
        with writer.transaction("proj", 1) as tx:
            tx.advance(0, 5)
        thread.join()
        assert woke, "the waiter was not woken"
        assert time.monotonic() - committed < 1.0
        # Another generation's announcements do not count for this one.
        assert not waiter.wait_for_checkpoints("proj", 2, {0: 5}, 0.05)
    finally:
        waiter.close()
        writer.close()


def test_a_pull_query_with_the_runner_in_another_process_answers_in_milliseconds(
    pg_url: str,
) -> None:
    settings = AppSettings(partitions=12)
    with Application(pg_url, settings=settings) as app:
        # Registered here too, so that its name is known before the runner's
        # process creates it.
        app.project(Balances())
        account = Account.open("alice")
        position = app.save(account)
        runner = start_runner(pg_url, batch=100, member="solo")
        try:
            read = app.read_model("balances")
            read.get("balances", account.id, after=position, timeout=30)
            rounds = []
            for _ in range(30):
                account.deposit(1)
                position = app.save(account)
                started = time.perf_counter()
                row = read.get("balances", account.id, after=position, timeout=5)
                rounds.append(time.perf_counter() - started)
            assert row["balance"] == 30
        finally:
            runner.kill()
            runner.wait()
    # Polling would take tens of milliseconds; pushes take a few.
    assert statistics.median(rounds) < 0.02, rounds
