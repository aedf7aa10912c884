"""On PostgreSQL a stopped projection is visible to every process through its
stored failure, and an inline failure still writes nothing."""

from __future__ import annotations

import pytest

from example_ledger.commands import Deposit, OpenAccount, router
from example_ledger.domain import Account
from framework import Application
from framework.projections import InlineProjectionFailedError, ProjectionFailedError
from tests.projections.test_failures import FAST, Unlucky

pytestmark = pytest.mark.postgres


def test_a_pull_query_in_another_process_fails_at_once_on_a_stopped_projection(
    pg_url: str,
) -> None:
    with Application(pg_url, router=router) as runner_side:
        runner_side.project(Unlucky(), settings=FAST)
        account = runner_side.handle(OpenAccount("bad")).value
        position = runner_side.handle(Deposit(account, 13)).position
        with pytest.raises(ProjectionFailedError):
            runner_side.projections["unlucky"].catch_up()
    with Application(pg_url, router=router) as reader:
        read = reader.read_model("unlucky")
        with pytest.raises(ProjectionFailedError, match="unlucky amount") as info:
            read.get("balances", account, after=position, timeout=600)
        assert info.value.stream_id == account
        answer = read.answer("balances", account)
        assert answer.lag.stopped
        assert answer.value["balance"] == 0


def test_an_inline_failure_says_nothing_was_written(pg_url: str) -> None:
    with Application(pg_url, router=router) as app:
        read = app.project(Unlucky(), inline=True, settings=FAST)
        account = Account.open("bad")
        app.save(account)
        account.deposit(13)
        with pytest.raises(InlineProjectionFailedError) as info:
            app.save(account)
        error = info.value
        assert not error.saved
        assert "nothing was written" in str(error)
        assert "WERE saved" not in str(error)
        assert len(account.pending_events) == 1
        assert len(app.read_stream(account.id)) == 1
        # Nothing was stored, so nothing stopped.
        assert app.read_models.failures("unlucky", 1) == []
        assert not read.lag().stopped
