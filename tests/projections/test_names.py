"""A misspelt projection or table name is an error listing the known ones, never
an answer of ``None`` or a wait until the timeout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from example_ledger.commands import Deposit, OpenAccount, router
from example_ledger.projections import Balances
from framework import Application
from framework.projections import ReadModel, UnknownProjectionError, UnknownTableError


@pytest.fixture(params=["memory", "file"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Application]:
    url = "memory://" if request.param == "memory" else f"file:{tmp_path / 'store'}"
    with Application(url, router=router) as app:
        app.project(Balances(), inline=True)
        yield app


def test_a_misspelt_table_names_the_projections_tables(app: Application) -> None:
    account = app.handle(OpenAccount("alice")).value
    position = app.handle(Deposit(account, 5)).position
    read = app.read_model("balances")
    assert read.get("balances", "no such account") is None  # a missing key is None
    for query in (
        lambda: read.get("balancez", account),
        lambda: read.get("balancez", account, after=position),
        lambda: read.answer("balancez", account),
        lambda: read.table("balancez"),
    ):
        with pytest.raises(UnknownTableError) as info:
            query()
        assert (info.value.projection, info.value.table) == ("balances", "balancez")
        assert info.value.known == ("balances",)
        assert "'balancez'" in str(info.value)
        assert "tables: balances" in str(info.value)


def test_a_query_without_the_projection_registered_still_refuses_a_bad_table(
    app: Application,
) -> None:
    """The store knows the tables when the projection's class is not at hand."""
    account = app.handle(OpenAccount("alice")).value
    read = ReadModel("balances", app.read_models, app.store)
    assert read.get("balances", account)["owner"] == "alice"
    with pytest.raises(UnknownTableError, match="tables: balances"):
        read.get("balancez", account)


def test_a_misspelt_projection_names_the_known_ones(app: Application) -> None:
    with pytest.raises(UnknownProjectionError) as info:
        app.read_model("balance")
    assert info.value.name == "balance"
    assert info.value.known == ("balances",)
    assert isinstance(info.value, LookupError)
    assert "projections: balances" in str(info.value)


def test_waiting_for_an_unknown_projection_fails_at_once(app: Application) -> None:
    position = app.handle(OpenAccount("alice")).position
    with pytest.raises(UnknownProjectionError, match="balances"):
        # Far longer than the test may take: only the error ends it.
        app.board.wait_for("balance", position, timeout=600)
    read = ReadModel("balance", app.read_models, app.store)
    with pytest.raises(UnknownProjectionError, match="projections: balances"):
        read.wait_for(position, timeout=600)
    with pytest.raises(UnknownProjectionError):
        read.get("balances", "x")


def test_a_projection_kept_by_another_process_is_known_without_registering(
    tmp_path: Path,
) -> None:
    url = f"file:{tmp_path / 'store'}"
    with Application(url, router=router) as writer:
        writer.project(Balances(), inline=True)
        account = writer.handle(OpenAccount("alice")).value
    with Application(url, router=router) as reader:
        assert reader.read_model("balances").get("balances", account) is not None
