"""Loading at a version means the same on every store: versions count from 1, and a
version below 1 is a clear error, never Python's slicing from the end."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework import (
    Aggregate,
    AggregateNotFoundError,
    Application,
    DomainEvent,
    event,
    when,
)
from framework.errors import StoreInputError
from tests.conftest import database_url
from tests.postgres.fixtures import drop_schema, with_schema


@event("test_load_versions.Added")
class Added(DomainEvent):
    item: str


class Basket(Aggregate):
    items: list[str] = []  # noqa: RUF012 - copied per instance by Aggregate

    def add(self, item: str) -> None:
        self.record(Added(item=item))

    @when(Added)
    def _added(self, e: Added) -> None:
        self.items.append(e.item)


@pytest.fixture(
    params=[
        "memory",
        "file",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Application]:
    schema = None
    if request.param == "memory":
        url = "memory://"
    elif request.param == "file":
        url = f"file:{tmp_path / 'store'}"
    else:
        schema = f"fwtest_load_{secrets.token_hex(4)}"
        url = with_schema(database_url(), schema)
    try:
        with Application(url) as opened:
            yield opened
    finally:
        if schema is not None:
            drop_schema(schema)


def _saved_basket(app: Application, items: int) -> str:
    basket = Basket()
    for n in range(items):
        basket.add(f"item-{n}")
    app.save(basket)
    return basket.id


@pytest.mark.parametrize("version", [0, -1, -2])
def test_a_version_below_one_is_a_clear_error_on_every_store(
    app: Application, version: int
) -> None:
    basket_id = _saved_basket(app, items=4)
    with pytest.raises(StoreInputError, match="versions count from 1") as info:
        app.load(Basket, basket_id, version=version)
    assert info.value.what == "version"
    assert isinstance(info.value, ValueError)
    assert "written" not in str(info.value)


def test_versions_from_one_to_the_last_load_that_state(app: Application) -> None:
    basket_id = _saved_basket(app, items=4)
    assert [app.load(Basket, basket_id, version=v).version for v in (1, 2, 4)] == [
        1,
        2,
        4,
    ]
    assert app.load(Basket, basket_id, version=2).items == ["item-0", "item-1"]
    with pytest.raises(AggregateNotFoundError, match="at version 5"):
        app.load(Basket, basket_id, version=5)
