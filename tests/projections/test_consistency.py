"""Each consistency strategy keeps its promise; rebuilds never show half a model."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from example_ledger.commands import Deposit, OpenAccount, router
from example_ledger.projections import Balances
from framework import Application
from framework.projections import NotCaughtUpError, RunnerSettings
from framework.projections.rebuild import Progress, rebuild


def test_inline_is_visible_as_soon_as_save_returns() -> None:
    app = Application("memory://", router=router)
    balances = app.project(Balances(), inline=True)
    account = app.handle(OpenAccount("alice")).value
    for amount in (5, 6, 7):
        app.handle(Deposit(account, amount))
        assert balances.position().covers(app.end_position())
    assert balances.get("balances", account)["balance"] == 18


def test_inline_catches_up_with_what_was_saved_before_it_was_registered() -> None:
    app = Application("memory://", router=router)
    account = app.handle(OpenAccount("alice")).value
    app.handle(Deposit(account, 5))
    balances = app.project(Balances(), inline=True)
    assert balances.get("balances", account)["balance"] == 5


def test_pull_waits_for_exactly_the_position_it_was_given() -> None:
    app = Application("memory://", router=router)
    balances = app.project(Balances(), settings=RunnerSettings(batch_size=1))
    runner = app.projections["balances"]
    account = app.handle(OpenAccount("alice")).value
    for _ in range(20):
        app.handle(Deposit(account, 1))
    position = app.handle(Deposit(account, 100)).position
    with pytest.raises(NotCaughtUpError, match="is its runner running"):
        balances.get("balances", account, after=position, timeout=0.05)
    stale = balances.get(
        "balances", account, after=position, timeout=0.01, on_timeout="stale"
    )
    assert stale is None

    seen: list[Any] = []

    def slow_runner() -> None:
        while runner.step():  # one event per step
            time.sleep(0.002)

    thread = threading.Thread(target=slow_runner)
    thread.start()
    try:
        row = balances.get("balances", account, after=position, timeout=5)
        seen.append(balances.position())
    finally:
        thread.join()
    assert row["balance"] == 120
    assert seen[0].covers(position)


def test_hybrid_answers_at_once_with_the_lag_it_really_has() -> None:
    app = Application("memory://", router=router)
    balances = app.project(Balances())
    account = app.handle(OpenAccount("alice")).value
    app.projections["balances"].catch_up()
    for _ in range(7):
        app.handle(Deposit(account, 1))
    time.sleep(0.02)
    answer = balances.answer("balances", account)
    assert answer.value["balance"] == 0
    assert answer.lag.events == 7
    assert answer.lag.seconds >= 0.02
    assert not answer.lag.catching_up  # no runner is running
    stop = app.start_projections()
    try:
        assert balances.wait_for(app.end_position(), timeout=5)
    finally:
        stop()
    answer = balances.answer("balances", account)
    assert (answer.value["balance"], answer.lag.events, answer.lag.current) == (
        7,
        0,
        True,
    )


def test_push_announces_positions_to_subscribers_and_waiters() -> None:
    app = Application("memory://", router=router)
    app.project(Balances())
    announced: list[Any] = []
    app.board.subscribe(lambda name, position: announced.append(position))
    stop = app.start_projections()
    try:
        account = app.handle(OpenAccount("alice")).value
        position = app.handle(Deposit(account, 3)).position
        assert app.board.wait_for("balances", position, timeout=5)
    finally:
        stop()
    assert any(p.covers(position) for p in announced)


class DoubledBalances(Balances):
    """Version 2 of the balances projection: counts in half-cents."""

    version = 2

    @staticmethod
    def _change(tx: Any, account_id: str, amount: int) -> None:
        Balances._change(tx, account_id, amount * 2)


@pytest.mark.parametrize("store", ["memory", "file"])
def test_a_rebuild_while_queries_run_never_shows_a_half_built_model(
    store: str, tmp_path: Path
) -> None:
    url = "memory://" if store == "memory" else f"file:{tmp_path / 'store'}"
    app = Application(url, router=router)
    app.project(Balances(), inline=True)
    accounts = [app.handle(OpenAccount(f"o{n}")).value for n in range(20)]
    for n, account in enumerate(accounts):
        for _ in range(10):
            app.handle(Deposit(account, n + 1))
    read = app.read_model("balances")
    old = {k: v["balance"] for k, v in read.table("balances").items()}
    new = {k: 2 * v for k, v in old.items()}
    observed: list[dict[str, int]] = []
    stop = threading.Event()

    def query() -> None:
        while not stop.is_set():
            observed.append(
                {k: v["balance"] for k, v in read.table("balances").items()}
            )

    thread = threading.Thread(target=query)
    thread.start()
    steps: list[Progress] = []
    try:
        rebuild(
            app.store,
            app.codec,
            DoubledBalances(),
            app.read_models,
            progress=steps.append,
            settings=RunnerSettings(batch_size=5),
        )
        time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    assert observed
    assert all(o in (old, new) for o in observed)
    assert observed[-1] == new
    assert steps[-1].done == steps[-1].total == 220
    assert steps[-1].events_per_s > 0
    state = app.read_models.state("balances")
    assert state is not None
    assert (state.version, state.building) == (2, None)
