"""PostgreSQL test fixtures: every test gets a schema of its own, dropped afterwards.

Loaded for the whole suite from ``tests/conftest.py``, so that the tests of each
subsystem's PostgreSQL backend sit beside that subsystem's other tests.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
import pytest
from psycopg import sql

from tests.conftest import database_url

T = TypeVar("T")

_SESSION = secrets.token_hex(3)
_numbers = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that asks for a schema on the server needs the server, whether or
    # not its module says so with ``pytestmark = pytest.mark.postgres``.
    for item in items:
        if "schema" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def drop_schema(schema: str) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh schema name, dropped with everything in it after the test."""
    name = f"fwtest_{_SESSION}_{next(_numbers)}"
    yield name
    drop_schema(name)


@pytest.fixture
def pg_url(schema: str) -> str:
    """A store URL on the test server, in this test's own schema."""
    return with_schema(database_url(), schema)


Closer = Callable[[], None]


@pytest.fixture
def closing() -> Iterator[list[Closer]]:
    """Things to close at teardown (pools would otherwise outlive the schema)."""
    closers: list[Closer] = []
    yield closers
    for close in reversed(closers):
        close()


def until(condition: Callable[[], T], what: str, seconds: float = 120) -> T:
    """Poll a state of the server until ``condition`` returns something true, and
    return it: a backend blocked on a lock or gone has no event to wait on. The
    limit only ends a broken run."""
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)
    return found
