"""Errors PostgreSQL really raises, each classified as what it is: a missing
database, an unknown URL option, a missing table, an index entry too large, a
statement timeout, a terminated backend, a refused connection."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from framework.errors import ConfigurationError
from framework.postgres.database import Database
from framework.postgres.errors import (
    DatabaseError,
    StoreConnectionError,
    TransientDatabaseError,
    translate,
    translated,
)
from framework.postgres.url import UnknownOptionError, parse_url
from framework.store.backends.postgres import PostgresEventStore
from framework.store.events import NewEvent
from tests.conftest import database_url
from tests.postgres.fixtures import Closer

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str, closing: list[Closer]) -> PostgresEventStore:
    opened = PostgresEventStore(pg_url)
    closing.append(opened.close)
    return opened


def new_event() -> NewEvent:
    return NewEvent(uuid.uuid4(), "e", 1, b"{}", 0, "c", "c")


def test_a_missing_database_says_to_create_it() -> None:
    name = f"fw_missing_{secrets.token_hex(4)}"
    url = database_url().rsplit("/", 1)[0] + f"/{name}"
    with pytest.raises(DatabaseError) as info:
        Database(url)
    error = info.value
    assert error.sqlstate == "3D000"
    assert not error.retriable
    assert "createdb" in str(error)
    assert name in str(error)
    assert "cannot reach" not in str(error)
    assert "db migrate" not in str(error)


def test_an_unknown_url_option_is_named() -> None:
    with pytest.raises(UnknownOptionError) as info:
        Database(database_url() + "?schema=x&statment_timeout=5")
    assert info.value.option == "statment_timeout"
    assert isinstance(info.value, ConfigurationError)
    assert "'statment_timeout'" in str(info.value)


def test_libpqs_refusal_of_an_unknown_option_at_connect_is_named() -> None:
    with pytest.raises(psycopg.ProgrammingError) as raised:
        psycopg.connect(database_url() + "?statment_timeout=5")
    error = translate(parse_url(database_url()), raised.value)
    assert isinstance(error, UnknownOptionError)
    assert error.option == "statment_timeout"


def test_a_missing_table_says_to_migrate(
    store: PostgresEventStore, schema: str
) -> None:
    store.append("s", [new_event()], expected_version=0)
    with psycopg.connect(database_url(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(schema, "records"))
        )
    with pytest.raises(DatabaseError) as info:
        store.read_stream("s")
    assert info.value.sqlstate == "42P01"
    assert "python -m framework db migrate" in str(info.value)
    assert not info.value.retriable


def test_a_value_too_long_for_an_index_is_a_limit_not_a_lost_connection(
    store: PostgresEventStore,
) -> None:
    # The event store refuses such a stream id itself (StoreInputError, before
    # the server sees it); a value past a btree's limit from any other statement
    # is still named for what it is. Random, so that compression cannot bring it
    # under the limit.
    with store.db.connection() as conn:
        conn.execute("CREATE TEMPORARY TABLE long_keys (k text PRIMARY KEY)")
        with pytest.raises(DatabaseError) as info, translated(store.db.url):
            conn.execute(
                "INSERT INTO long_keys VALUES (%s)", (secrets.token_hex(500_000),)
            )
    error = info.value
    assert error.sqlstate.startswith("54")
    assert not error.retriable
    assert "limit" in str(error)
    assert "cannot reach" not in str(error)
    assert store.append("short", [new_event()], expected_version=0).last_version == 1


@pytest.fixture
def timing_out(pg_url: str, store: PostgresEventStore) -> Iterator[Database]:
    # Migrated already (by ``store``): opening it runs only quick statements.
    db = Database(pg_url + "&options=-c%20statement_timeout%3D2000")
    yield db
    db.close()


def test_a_statement_timeout_is_retriable_and_says_so(timing_out: Database) -> None:
    with pytest.raises(TransientDatabaseError) as info, timing_out.cursor() as cur:
        # Far longer than the timeout: it cannot finish first.
        cur.execute("SELECT pg_sleep(60)")
    error = info.value
    assert error.sqlstate == "57014"
    assert error.retriable
    assert "statement_timeout" in str(error)
    with timing_out.cursor() as cur:
        assert cur.execute("SELECT 1").fetchone() == (1,)


def test_a_terminated_backend_is_a_lost_connection(
    store: PostgresEventStore,
) -> None:
    with pytest.raises(StoreConnectionError) as info, store.db.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert info.value.retriable
    assert info.value.sqlstate == "57P01"
    assert store.append("s", [new_event()], expected_version=0).last_version == 1


def test_a_refused_connection_cannot_reach_postgresql() -> None:
    with pytest.raises(StoreConnectionError) as info:
        Database("postgresql://app:hunter2@127.0.0.1:1/test?connect_timeout=2")
    assert info.value.retriable
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in str(info.value)
    assert "hunter2" not in str(info.value)
