"""The runner applies every event once, in order, and handles failing handlers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, cast

import pytest

from example_ledger.commands import Deposit, OpenAccount, Transfer, Withdraw, router
from example_ledger.domain import FundsDeposited
from example_ledger.projections import Balances
from framework import Application, AppSettings
from framework.domain import EventEnvelope
from framework.errors import ProjectionError
from framework.projections import (
    PositionBoard,
    ProjectionRunner,
    ReadModelStore,
    RunnerSettings,
    Transaction,
    on,
)
from framework.projections.backends.memory import MemoryReadModelStore
from framework.projections.backends.sqlite import SQLiteReadModelStore
from framework.retry import RetryPolicy
from framework.store.ports import EventStore

FAST = RunnerSettings(
    batch_size=7, retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=False)
)


@pytest.fixture(params=["memory", "sqlite"])
def read_models(request: pytest.FixtureRequest, tmp_path: Path) -> ReadModelStore:
    if request.param == "memory":
        return MemoryReadModelStore()
    return SQLiteReadModelStore(tmp_path / "read.sqlite")


def busy_ledger(app: Application, accounts: int = 6) -> dict[str, int]:
    ids = [app.handle(OpenAccount(f"o{n}")).value for n in range(accounts)]
    expected = dict.fromkeys(ids, 0)
    for round_ in range(5):
        for n, account_id in enumerate(ids):
            app.handle(Deposit(account_id, 10 + n + round_))
            expected[account_id] += 10 + n + round_
        app.handle(Withdraw(ids[round_ % accounts], 3))
        expected[ids[round_ % accounts]] -= 3
        app.handle(Transfer(ids[0], ids[1], 2))
        expected[ids[0]] -= 2
        expected[ids[1]] += 2
    return expected


def runner_for(
    app: Application, projection: Any, read_models: ReadModelStore, **kw: Any
) -> ProjectionRunner:
    return ProjectionRunner(
        app.store, app.codec, projection, read_models, settings=FAST, **kw
    )


def test_catch_up_applies_every_event_once(read_models: ReadModelStore) -> None:
    app = Application("memory://", router=router)
    expected = busy_ledger(app)
    runner = runner_for(app, Balances(), read_models)
    applied = runner.catch_up()
    assert applied == sum(1 for _ in app.iter_all_events())
    table = read_models.table("balances", "balances")
    assert {k: v["balance"] for k, v in table.items()} == expected
    assert runner.position() == app.end_position()
    assert runner.catch_up() == 0  # nothing applied twice


def test_runners_over_disjoint_partitions_build_the_same_model(
    read_models: ReadModelStore,
) -> None:
    app = Application("memory://", router=router)
    expected = busy_ledger(app)
    partitions = list(range(app.store.partitions))
    first = runner_for(app, Balances(), read_models, partitions=partitions[::2])
    second = runner_for(app, Balances(), read_models, partitions=partitions[1::2])
    first.catch_up()
    second.catch_up()
    table = read_models.table("balances", "balances")
    assert {k: v["balance"] for k, v in table.items()} == expected


class ReadsRecorded:
    """The store, with the partition of each ``read_partition`` call recorded."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.reads: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def read_partition(self, partition: int, *args: Any) -> Any:
        self.reads.append(partition)
        return self._store.read_partition(partition, *args)


def test_a_step_reads_only_the_partitions_that_moved(
    read_models: ReadModelStore,
) -> None:
    app = Application("memory://", router=router, settings=AppSettings(partitions=16))
    expected = busy_ledger(app, accounts=20)
    store = ReadsRecorded(app.store)
    runner = ProjectionRunner(
        cast("EventStore", store), app.codec, Balances(), read_models, settings=FAST
    )
    runner.catch_up()
    store.reads.clear()
    assert runner.step() == 0
    assert store.reads == []  # idle: no partition read at all
    account_id = next(iter(expected))
    app.handle(Deposit(account_id, 4))
    expected[account_id] += 4
    assert runner.step() == 1
    assert store.reads == [app.store.partition_of(account_id)]
    table = read_models.table("balances", "balances")
    assert {k: v["balance"] for k, v in table.items()} == expected


class Flaky(Balances):
    """Fails on deposits of exactly 13 cents while ``broken``."""

    name = "flaky"
    failure = "stop"
    broken = True

    @on(FundsDeposited)
    def _deposited(self, e: EventEnvelope[FundsDeposited], tx: Transaction) -> None:
        if self.broken and e.event.amount == 13:
            raise ValueError("unlucky amount")
        self._change(tx, e.stream_id, e.event.amount)


class ParkingFlaky(Flaky):
    name = "parking"
    failure = "park"


def test_a_failing_handler_stops_the_partition_with_a_clear_error(
    read_models: ReadModelStore,
) -> None:
    app = Application("memory://", router=router)
    good = app.handle(OpenAccount("good")).value
    bad = app.handle(OpenAccount("bad")).value
    app.handle(Deposit(bad, 5))
    app.handle(Deposit(bad, 13))
    app.handle(Deposit(good, 7))
    runner = runner_for(app, Flaky(), read_models)
    with pytest.raises(ProjectionError, match="stopped at events/") as info:
        runner.catch_up()
    assert "unlucky amount" in str(info.value)
    assert "tried" not in str(info.value)
    table = read_models.table("flaky", "balances")
    # Everything before the failing event is applied; it and what follows are not.
    assert table.get(bad)["balance"] == 5
    failing = next(e for e in app.read_stream(bad) if e.stream_version == 3)
    assert runner.checkpoints()[failing.partition] == failing.offset - 1  # type: ignore[operator]


def test_a_parked_event_holds_back_its_stream_but_not_others(
    read_models: ReadModelStore,
) -> None:
    app = Application("memory://", router=router)
    bad = app.handle(OpenAccount("bad")).value
    app.handle(Deposit(bad, 13))
    app.handle(Deposit(bad, 5))
    others = [app.handle(OpenAccount(f"o{n}")).value for n in range(10)]
    for account_id in others:
        app.handle(Deposit(account_id, 4))
    runner = runner_for(app, ParkingFlaky(), read_models)
    runner.catch_up()
    table = read_models.table("parking", "balances")
    assert table.get(bad)["balance"] == 0
    assert all(table.get(o)["balance"] == 4 for o in others)
    parked = read_models.parked("parking", 1)
    assert [(p.stream_id, p.attempts) for p in parked] == [(bad, 2), (bad, 0)]
    assert "unlucky amount" in parked[0].error
    assert "waits behind" in parked[1].error
    assert runner.position() == app.end_position()
    # Later events of the parked stream keep waiting behind it.
    app.handle(Deposit(bad, 1))
    runner.catch_up()
    assert len(read_models.parked("parking", 1)) == 3
    # While it still fails, retrying keeps the stream parked, in order.
    assert runner.retry_parked() == (0, 3)
    # Once the handler is fixed, retrying applies the stream in order.
    runner.projection.broken = False  # type: ignore[attr-defined]
    assert runner.retry_parked() == (3, 0)
    assert read_models.parked("parking", 1) == []
    assert read_models.table("parking", "balances").get(bad)["balance"] == 19


def test_the_board_announces_each_committed_position() -> None:
    app = Application("memory://", router=router)
    busy_ledger(app, accounts=3)
    board = PositionBoard()
    seen: list[Any] = []
    board.subscribe(lambda name, position: seen.append((name, position)))
    runner = runner_for(app, Balances(), MemoryReadModelStore(), board=board)
    runner.catch_up()
    assert board.position("balances") == app.end_position()
    assert seen
    assert seen[-1][1] == app.end_position()


def test_run_stops_when_asked_and_keeps_up_meanwhile() -> None:
    app = Application("memory://", router=router)
    read_models = MemoryReadModelStore()
    board = PositionBoard()
    runner = runner_for(app, Balances(), read_models, board=board)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        account = app.handle(OpenAccount("x")).value
        position = app.handle(Deposit(account, 9)).position
        assert board.wait_for("balances", position, timeout=5)
        assert read_models.table("balances", "balances").get(account)["balance"] == 9
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
