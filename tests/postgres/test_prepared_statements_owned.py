"""The framework alone prepares statements on its connections, and keeps working
whatever rolls back on them: conflicts, timeouts, rolled-back multi-aggregate
saves, idempotent COPY retries, and a ``DEALLOCATE ALL`` or ``DISCARD ALL`` run
behind its back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from example_ledger.demo import SlowDeposit, build_app
from example_ledger.domain import Account
from example_ledger.projections import Balances
from framework import Application, ConcurrencyError
from framework.errors import StoreError
from framework.postgres.database import Connection, Database
from framework.projections import ProjectionRunner
from framework.store.backends.postgres import COPY_FROM, PostgresEventStore
from framework.store.events import NewEvent
from tests.conftest import database_url

pytestmark = pytest.mark.postgres


class Pulled(Balances):
    """The ledger's balances again, kept by a runner stepped by hand."""

    name = "pulled"


def store_of(app: Application) -> PostgresEventStore:
    assert isinstance(app.store, PostgresEventStore)
    return app.store


def every_operation_works(app: Application, runner: ProjectionRunner) -> None:
    """Load, read a stream, save one and several aggregates, step a projection,
    ask a stream's version and read a partition: each once, checked."""
    store = store_of(app)
    one = Account.open("one")
    one.deposit(10)
    app.save(one)
    first, second = Account.open("first"), Account.open("second")
    app.save(first, second)
    loaded = app.load(Account, one.id)
    assert (loaded.balance, loaded.version) == (10, 2)
    loaded.deposit(5)
    app.save(loaded)
    assert [e.stream_version for e in app.read_stream(one.id)] == [1, 2, 3]
    assert store.stream_version(one.id) == 3
    assert app.load(Account, second.id).owner == "second"
    partition = store.partition_of(one.id)
    assert one.id in {e.stream_id for e in store.read_partition(partition, 0)}
    runner.catch_up()
    assert runner.position() == app.end_position()


def runner_for(app: Application) -> ProjectionRunner:
    """A projection kept by hand (``catch_up``), not inline."""
    app.project(Pulled())
    return app.projections[Pulled.name]


def warmed_up(app: Application, runner: ProjectionRunner) -> None:
    """A few rounds of everything, on the short-statement connection and on
    pooled ones (while this thread holds the short-statement connection, its
    statements run on pooled ones): what a process has done before something
    rolls back."""
    for _ in range(3):
        every_operation_works(app, runner)
        with store_of(app).db.cursor():
            every_operation_works(app, runner)


def afterwards(app: Application, runner: ProjectionRunner) -> None:
    for _ in range(2):
        every_operation_works(app, runner)
        with store_of(app).db.cursor():
            every_operation_works(app, runner)


@pytest.fixture
def app(pg_url: str) -> Iterator[Application]:
    with Application(pg_url) as application:
        yield application


def conflict(app: Application) -> None:
    """Save a stale copy of an account: refused."""
    account = Account.open("racer")
    app.save(account)
    stale = app.load(Account, account.id)
    fresh = app.load(Account, account.id)
    fresh.deposit(1)
    app.save(fresh)
    stale.deposit(2)
    with pytest.raises(ConcurrencyError):
        app.save(stale)


def test_twenty_conflicts_in_a_row_leave_every_operation_working(
    app: Application,
) -> None:
    runner = runner_for(app)
    warmed_up(app, runner)
    for _ in range(20):
        conflict(app)
        every_operation_works(app, runner)
    afterwards(app, runner)


def test_twenty_conflicts_with_an_inline_projection_leave_every_operation_working(
    app: Application,
) -> None:
    balances = app.project(Balances(), inline=True)
    runner = runner_for(app)
    warmed_up(app, runner)
    for _ in range(20):
        conflict(app)
        every_operation_works(app, runner)
    afterwards(app, runner)
    one = Account.open("inline")
    one.deposit(7)
    app.save(one)
    assert balances.get("balances", one.id)["balance"] == 7


@pytest.mark.parametrize("inline", [False, True], ids=["plain", "inline"])
def test_twenty_commands_retried_after_a_conflict_leave_every_operation_working(
    pg_url: str, inline: bool
) -> None:
    with build_app(pg_url) as app:
        if inline:
            app.project(Balances(), inline=True)
        runner = runner_for(app)
        account = Account.open("slow")
        app.save(account)
        warmed_up(app, runner)
        for _ in range(20):
            result = app.handle(SlowDeposit(account.id, 10))
            assert result.attempts == 2
            every_operation_works(app, runner)
        afterwards(app, runner)
        # Each command saved the colleague's cent and the clerk's deposit.
        assert app.load(Account, account.id).balance == 20 * 11


def test_a_rolled_back_multi_aggregate_save_leaves_every_operation_working(
    app: Application,
) -> None:
    runner = runner_for(app)
    warmed_up(app, runner)
    for _ in range(3):
        ok, racer = Account.open("ok"), Account.open("racer")
        app.save(racer)
        fresh = app.load(Account, racer.id)
        fresh.deposit(1)
        app.save(fresh)
        racer.deposit(2)
        with pytest.raises(ConcurrencyError):
            app.save(ok, racer)
        every_operation_works(app, runner)
    afterwards(app, runner)


def long_append(n: int) -> list[NewEvent]:
    return [
        NewEvent(uuid.uuid4(), "ledger.FundsDeposited", 1, b'{"amount":1}', 0, "c", "c")
        for _ in range(n)
    ]


def test_an_idempotent_copy_retry_leaves_every_operation_working(
    app: Application,
) -> None:
    store = store_of(app)
    runner = runner_for(app)
    warmed_up(app, runner)
    account = Account.open("long")
    app.save(account)
    events = long_append(COPY_FROM)
    first = store.append(account.id, events, expected_version=1)
    again = store.append(account.id, events, expected_version=1)
    assert again.already_stored
    assert (again.first_offset, again.last_offset) == (
        first.first_offset,
        first.last_offset,
    )
    every_operation_works(app, runner)
    afterwards(app, runner)
    assert store.stream_version(account.id) == 1 + COPY_FROM


@pytest.mark.parametrize("command", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_statements_dropped_behind_the_frameworks_back_are_prepared_again(
    app: Application, command: str
) -> None:
    db = store_of(app).db
    runner = runner_for(app)
    for _ in range(3):
        warmed_up(app, runner)
        with db.cursor() as cur:
            cur.execute(command)
        with db.connection() as conn:
            conn.execute(command)
        afterwards(app, runner)


def test_a_statement_dropped_inside_a_transaction_is_prepared_again_by_a_retry(
    app: Application,
) -> None:
    app.project(Balances(), inline=True)
    runner = runner_for(app)
    warmed_up(app, runner)
    db = store_of(app).db
    for _ in range(3):
        with db.cursor() as cur:
            cur.execute("DEALLOCATE ALL")
        # The append runs in a transaction with the inline projection: its
        # statement finds itself gone, the transaction rolls back, and the
        # store tries again with the statement prepared anew.
        account = Account.open("after")
        account.deposit(3)
        app.save(account)
        assert app.load(Account, account.id).balance == 3
    afterwards(app, runner)


@pytest.mark.parametrize("inline", [False, True], ids=["plain", "inline"])
def test_a_statement_prepared_but_forgotten_is_used_as_it_is(
    app: Application, inline: bool
) -> None:
    if inline:
        # Saves prepare inside their transaction, which the refusal aborts: the
        # store tries again.
        app.project(Balances(), inline=True)
    runner = runner_for(app)
    warmed_up(app, runner)
    db = store_of(app).db
    for _ in range(3):
        with db.cursor() as cur:
            conn = cur.connection
            assert isinstance(conn, Connection)
            assert conn.prepared_names()
            conn.prepared_names().clear()
        afterwards(app, runner)


def test_the_frameworks_connections_leave_preparing_to_the_framework(
    pg_url: str,
) -> None:
    db = Database(pg_url)
    try:
        with db.cursor() as hot:
            assert hot.connection.prepare_threshold is None
            # The short-statement connection is busy: a pooled one serves.
            with db.cursor() as pooled:
                assert pooled.connection is not hot.connection
                assert pooled.connection.prepare_threshold is None
        with db.connection() as conn:
            assert conn.prepare_threshold is None
    finally:
        db.close()


def lock_partitions(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> None:
    conn.execute(
        sql.SQL("SELECT 1 FROM {} FOR UPDATE").format(
            sql.Identifier(schema, "partitions")
        )
    )


def test_a_statement_timeout_leaves_every_operation_working(
    app: Application, schema: str
) -> None:
    runner = runner_for(app)
    warmed_up(app, runner)
    db = store_of(app).db
    a, b = Account.open("a"), Account.open("b")
    with psycopg.connect(database_url()) as blocker:
        # Every partition's head is locked until this transaction ends: the save
        # waits for it past the statement timeout of the connection it runs on.
        lock_partitions(blocker, schema)
        with db.cursor() as cur:
            cur.execute("SET statement_timeout = 200")
        with pytest.raises(StoreError) as info:
            app.save(a, b)
        with db.cursor() as cur:
            cur.execute("RESET statement_timeout")
        blocker.rollback()
    assert info.value.retriable
    assert "57014" in str(info.value)
    afterwards(app, runner)
    app.save(a, b)
    assert app.load(Account, b.id).owner == "b"
