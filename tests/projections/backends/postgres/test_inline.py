"""Inline projections on PostgreSQL run inside the append's transaction: after
``save`` the read model has the events, and a failing handler writes nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from example_ledger.domain import Account, FundsDeposited
from example_ledger.projections import Balances
from framework import Application
from framework.domain import EventEnvelope
from framework.errors import ProjectionError
from framework.projections import Projection, Transaction, on

pytestmark = pytest.mark.postgres


class Picky(Balances):
    """Balances that refuses deposits of 13."""

    name = "picky"

    @on(FundsDeposited)
    def _deposited(self, e: EventEnvelope[FundsDeposited], tx: Transaction) -> None:
        if e.event.amount == 13:
            raise ValueError("unlucky")
        self._change(tx, e.stream_id, e.event.amount)


@pytest.fixture
def app(pg_url: str) -> Iterator[Application]:
    with Application(pg_url) as app:
        yield app


def balances(app: Application, name: str = "balances") -> dict[str, Any]:
    return {k: v["balance"] for k, v in app.read_models.table(name, "balances").items()}


def test_an_inline_projection_has_the_events_as_soon_as_save_returns(
    app: Application,
) -> None:
    read = app.project(Balances(), inline=True)
    account = Account.open("alice")
    account.deposit(70)
    position = app.save(account)
    assert read.get("balances", account.id)["balance"] == 70
    assert read.position().covers(position)


def test_a_failing_inline_handler_leaves_neither_events_nor_read_model_changes(
    app: Application,
) -> None:
    app.project(Picky(), inline=True)
    account = Account.open("bob")
    account.deposit(5)
    app.save(account)
    before = app.end_position()
    account.deposit(7)
    account.deposit(13)
    with pytest.raises(ProjectionError, match="rolled back") as info:
        app.save(account)
    assert isinstance(info.value.__cause__, ValueError)
    assert app.end_position() == before
    assert app.load(Account, account.id).balance == 5
    assert balances(app, "picky") == {account.id: 5}
    assert len(account.pending_events) == 2  # the caller may fix and retry


def test_inline_catches_up_with_events_appended_by_writers_without_it(
    pg_url: str, app: Application
) -> None:
    account = Account.open("carol")
    account.deposit(1)
    with Application(pg_url) as plain:  # a process that does not project
        plain.save(account)
        app.project(Balances(), inline=True)
        account.deposit(2)
        plain.save(account)  # not applied: no hook in that process
        account.deposit(3)
        app.save(account)
    assert balances(app) == {account.id: 6}


def test_concurrent_inline_writers_keep_checkpoints_contiguous(
    pg_url: str,
) -> None:
    with Application(pg_url) as setup:
        setup.project(Balances(), inline=True)
    apps = [Application(pg_url) for _ in range(4)]
    for each in apps:
        each.project(Balances(), inline=True)
    errors: list[BaseException] = []
    expected: dict[str, int] = {}
    lock = threading.Lock()

    def write(app: Application, n: int) -> None:
        try:
            for i in range(25):
                account = Account.open(f"w{n}-{i}")
                account.deposit(i + 1)
                app.save(account)
                account.deposit(1)
                app.save(account)
                with lock:
                    expected[account.id] = i + 2
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(a, n)) for n, a in enumerate(apps)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        reader = apps[0]
        assert balances(reader) == expected
        assert reader.read_model("balances").position() == reader.end_position()
    finally:
        for each in apps:
            each.close()


class Counter(Projection):
    """Counts every deposit in one document: a key all partitions share."""

    name = "counter"
    tables = ("totals",)

    @on(FundsDeposited)
    def _deposited(self, e: EventEnvelope[FundsDeposited], tx: Transaction) -> None:
        totals = tx.table("totals")
        row = totals.get("all") or {"n": 0}
        row["n"] += 1
        totals.put("all", row)


def test_inline_writers_of_different_partitions_never_lose_shared_updates(
    pg_url: str,
) -> None:
    apps = [Application(pg_url) for _ in range(3)]
    for each in apps:
        each.project(Counter(), inline=True)

    def write(app: Application) -> None:
        for _ in range(20):
            account = Account.open("x")
            account.deposit(1)
            app.save(account)

    threads = [threading.Thread(target=write, args=(a,)) for a in apps]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert apps[0].read_models.table("counter", "totals").get("all") == {"n": 60}
    finally:
        for each in apps:
            each.close()
