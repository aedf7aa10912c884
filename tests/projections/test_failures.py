"""A projection that stops on a failing handler says so: the failure is stored
with its partition's checkpoint, queries report it, and it clears once the
event applies (after a fix), or on a reset or a rebuild."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from example_ledger.commands import Deposit, OpenAccount, router
from example_ledger.domain import FundsDeposited
from example_ledger.projections import Balances
from framework import Application
from framework.domain import EventEnvelope
from framework.errors import ProjectionError
from framework.projections import (
    InlineProjectionFailedError,
    NotCaughtUpError,
    ProjectionFailedError,
    RunnerSettings,
    Transaction,
    on,
)
from framework.projections.rebuild import rebuild
from framework.retry import RetryPolicy
from framework.store.position import Position

FAST = RunnerSettings(
    batch_size=7, retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=False)
)


class Unlucky(Balances):
    """Fails on deposits of exactly 13 cents while ``broken``."""

    name = "unlucky"
    broken = True

    @on(FundsDeposited)
    def _deposited(self, e: EventEnvelope[FundsDeposited], tx: Transaction) -> None:
        if self.broken and e.event.amount == 13:
            raise ValueError("unlucky amount")
        self._change(tx, e.stream_id, e.event.amount)


@pytest.fixture(params=["memory", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"file:{tmp_path / 'store'}"


@pytest.fixture
def app(url: str) -> Iterator[Application]:
    with Application(url, router=router) as app:
        yield app


def stopped_ledger(app: Application) -> tuple[str, int]:
    """An account whose second deposit stops ``unlucky``; (account, offset)."""
    app.project(Unlucky(), settings=FAST)
    account = app.handle(OpenAccount("bad")).value
    app.handle(Deposit(account, 5))
    failing = app.handle(Deposit(account, 13)).events[0]
    app.handle(Deposit(account, 1))
    with pytest.raises(ProjectionFailedError):
        app.projections["unlucky"].catch_up()
    assert failing.offset is not None
    return account, failing.offset


def test_a_stopped_projection_records_what_it_stopped_on(app: Application) -> None:
    account, offset = stopped_ledger(app)
    (failure,) = app.read_models.failures("unlucky", 1)
    assert (failure.projection, failure.partition, failure.offset) == (
        "unlucky",
        0,
        offset,
    )
    assert (failure.stream_id, failure.stream_version) == (account, 3)
    assert failure.event_name == "ledger.FundsDeposited"
    assert failure.error == "ValueError('unlucky amount')"
    assert failure.attempts == 2
    assert failure.failed_at.endswith("Z")


def test_a_pull_query_behind_a_failure_fails_at_once_naming_it(
    app: Application,
) -> None:
    account, offset = stopped_ledger(app)
    read = app.read_model("unlucky")
    with pytest.raises(ProjectionFailedError) as info:
        # Far longer than the test may take: only the failure ends it.
        read.get("balances", account, after=app.end_position(), timeout=600)
    error = info.value
    assert not isinstance(error, NotCaughtUpError)
    assert (error.projection, error.partition, error.offset) == ("unlucky", 0, offset)
    assert error.stream_id == account
    assert error.event_name == "ledger.FundsDeposited"
    message = str(error)
    for fact in (
        "'unlucky'",
        f"events/0 offset {offset}",
        repr(account),
        "ledger.FundsDeposited",
        "ValueError('unlucky amount')",
    ):
        assert fact in message
    assert "is its runner running" not in message
    # Asking for the same even with on_timeout="stale" does not pretend.
    with pytest.raises(ProjectionFailedError):
        read.wait_for(app.end_position(), timeout=600)
    # What lies before the failure is still answered.
    before = {0: offset - 1}
    assert read.get("balances", account, after=before, timeout=5)["balance"] == 5


def test_a_hybrid_answer_carries_the_failure(app: Application) -> None:
    account, offset = stopped_ledger(app)
    answer = app.read_model("unlucky").answer("balances", account)
    assert answer.value["balance"] == 5
    assert answer.lag.events == 2
    assert answer.lag.stopped
    assert [f.offset for f in answer.lag.failures] == [offset]
    assert not answer.lag.catching_up


def test_a_fixed_handler_applies_the_event_and_clears_the_failure(
    tmp_path: Path,
) -> None:
    url = f"file:{tmp_path / 'store'}"
    with Application(url, router=router) as app:
        account, _ = stopped_ledger(app)
    # Another process, later, with the handler fixed.
    with Application(url, router=router) as app:
        fixed = Unlucky()
        fixed.broken = False  # type: ignore[misc]
        read = app.project(fixed, settings=FAST)
        assert app.read_models.failures("unlucky", 1) != []
        app.projections["unlucky"].catch_up()
        assert app.read_models.failures("unlucky", 1) == []
        answer = read.answer("balances", account)
        assert (answer.value["balance"], answer.lag.stopped) == (19, False)


@pytest.mark.parametrize("how", ["reset", "rebuild"])
def test_a_reset_or_a_rebuild_clears_the_failure(app: Application, how: str) -> None:
    stopped_ledger(app)
    projection = app.projections["unlucky"].projection
    if how == "reset":
        app.read_models.reset("unlucky", projection.tables, projection.version)
        assert app.read_models.failures("unlucky", 1) == []
    else:
        projection.broken = False  # type: ignore[attr-defined]
        generation = rebuild(app.store, app.codec, projection, app.read_models)
        assert app.read_models.failures("unlucky", generation) == []
        assert app.read_models.failures("unlucky", 1) == []


def test_a_running_loop_leaves_a_stopped_partition_and_keeps_the_others(
    app: Application,
) -> None:
    """The application's runner keeps going after a failure; queries learn of it
    at once instead of waiting for their timeout."""
    app.project(Unlucky(), settings=FAST)
    app.project(Balances())
    account = app.handle(OpenAccount("bad")).value
    position = app.handle(Deposit(account, 13)).position
    failed = threading.Event()
    stop = app.start_projections()
    try:
        read = app.read_model("unlucky")
        with pytest.raises(ProjectionFailedError, match="unlucky amount"):
            read.get("balances", account, after=position, timeout=600)
        failed.set()
        # The other projection of the same loop goes on.
        later = app.handle(Deposit(account, 2)).position
        balances = app.read_model("balances")
        assert (
            balances.get("balances", account, after=later, timeout=60)["balance"] == 15
        )
    finally:
        stop()
    assert failed.is_set()
    assert app.projections["unlucky"].stopped.keys() == {0}


def test_an_inline_failure_on_memory_and_file_says_the_events_were_saved(
    app: Application,
) -> None:
    app.project(Unlucky(), inline=True, settings=FAST)
    account = app.handle(OpenAccount("bad")).value
    with pytest.raises(InlineProjectionFailedError) as info:
        app.handle(Deposit(account, 13))
    error = info.value
    assert isinstance(error, ProjectionError)
    assert error.saved
    assert not error.retriable
    message = str(error)
    assert "WERE saved" in message
    assert "Do not save them again" in message
    assert "catches up" in message
    assert "ValueError('unlucky amount')" in message
    # It was saved, exactly once, where the error says.
    stored = app.read_stream(account)
    assert [e.event.amount for e in stored[1:]] == [13]  # type: ignore[attr-defined]
    assert error.position == Position({0: stored[-1].offset})
    # Every later save reports the same stop, and saves too.
    with pytest.raises(InlineProjectionFailedError, match="WERE saved"):
        app.handle(Deposit(account, 1))
    assert len(app.read_stream(account)) == 3


def test_an_application_starts_with_a_stopped_inline_projection(
    tmp_path: Path,
) -> None:
    url = f"file:{tmp_path / 'store'}"
    with Application(url, router=router) as app:
        app.project(Unlucky(), inline=True, settings=FAST)
        account = app.handle(OpenAccount("bad")).value
        with pytest.raises(InlineProjectionFailedError):
            app.handle(Deposit(account, 13))
    with Application(url, router=router) as app:
        read = app.project(Unlucky(), inline=True, settings=FAST)
        assert read.lag().stopped
