"""``python -m framework log repartition`` on PostgreSQL: one transaction copies
the events topic's rows into a new partition count, switches projections and
renames the topics; a busy partition refuses it, and a dry run changes nothing."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest
from psycopg import sql

from example_ledger.domain import Account
from framework.log.partitioner import partition_for
from tests.cli import cli_app
from tests.cli.commands import APP, Started, cli
from tests.cli.test_repartition import ENV, read_model, seed, streams
from tests.conftest import database_url
from tests.postgres.fixtures import until

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _app_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def repartition(url: str, partitions: int, *extra: str, now: int = 4) -> Any:
    """The command with the application of ``--app`` built for the ``now``
    partitions the store has."""
    return cli(
        "log", "repartition", "--app", APP, "--url", url,
        "--partitions", str(partitions), *extra,
        **{**ENV, "CLI_PARTITIONS": str(now)},
    )  # fmt: skip


def topics(schema: str) -> list[tuple[str, int, int]]:
    """Each topic's name, partition count and rows."""
    with psycopg.connect(database_url()) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT t.name, t.partitions, (SELECT count(*) FROM {} r "
                "WHERE r.topic_id = t.topic_id) FROM {} t ORDER BY t.name"
            ).format(
                sql.Identifier(schema, "records"), sql.Identifier(schema, "topics")
            )
        ).fetchall()
    return [(str(n), int(p), int(c)) for n, p, c in rows]


def test_repartition_from_4_to_16_on_postgres_keeps_streams_and_read_models(
    pg_url: str, schema: str
) -> None:
    ids = seed(pg_url, streams=200, events=5)
    before = streams(pg_url, ids)
    with cli_app.build(pg_url) as app:
        balances_before = read_model(app, "balances")
    assert ("events", 4, 1000) in topics(schema)

    dry = repartition(pg_url, 16)
    assert dry.code == 1, dry.err
    assert "would copy 1,000 events of 'events' (4 partitions)" in dry.out
    assert ("events", 4, 1000) in topics(schema)

    done = repartition(pg_url, 16, "--yes")
    assert done.code == 0, done.err
    assert "into a new 'events' (16 partitions)" in done.out
    assert "balances continues" in done.out
    assert "unlucky was emptied" in done.out
    assert "kept as 'events.old1'" in done.out
    names = topics(schema)
    assert ("events", 16, 1000) in names
    assert ("events.old1", 4, 1000) in names

    assert streams(pg_url, ids) == before
    # The application now asks for the count the store has.
    os.environ["CLI_PARTITIONS"] = "16"
    with cli_app.build(pg_url) as app:
        assert app.store.partitions == 16
        for stream_id in ids:
            (partition,) = {e.partition for e in app.store.read_stream(stream_id)}
            assert partition == partition_for(stream_id, 16)
        assert read_model(app, "balances") == balances_before
        assert app.projections["balances"].catch_up() == 0
        account = app.load(Account, ids[0])
        account.deposit(1000)
        app.save(account)
        assert app.projections["balances"].catch_up() == 1
        expected = dict(balances_before)
        expected[ids[0]] = {
            **expected[ids[0]],
            "balance": expected[ids[0]]["balance"] + 1000,
            "events": expected[ids[0]]["events"] + 1,
        }
        assert read_model(app, "balances") == expected
        assert read_model(app, "unlucky") == {}
        app.projections["unlucky"].catch_up()
        assert read_model(app, "unlucky") == expected
        app.rebuild("balances")
        assert read_model(app, "balances") == expected


def test_refused_while_a_partition_head_row_is_locked(pg_url: str, schema: str) -> None:
    ids = seed(pg_url, streams=20, events=3)
    with psycopg.connect(database_url()) as holder:
        # As an append holds it, from its UPDATE to its commit.
        holder.execute(
            sql.SQL(
                "SELECT 1 FROM {} p JOIN {} t USING (topic_id) WHERE t.name = "
                "'events' AND p.partition = 3 FOR UPDATE"
            ).format(
                sql.Identifier(schema, "partitions"), sql.Identifier(schema, "topics")
            )
        )
        done = repartition(pg_url, 8, "--yes")
        holder.rollback()
    assert done.code == 1
    assert "partition 3 of 'events'" in done.err
    assert "being written" in done.err
    assert [n for n, _, _ in topics(schema)] == ["events"]
    before = streams(pg_url, ids)
    assert repartition(pg_url, 8, "--yes").code == 0
    assert streams(pg_url, ids) == before


def _blocked_on(schema: str, table: str) -> int | None:
    """The backend waiting for a row lock to update ``schema.table``, if one is."""
    with psycopg.connect(database_url()) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE %s",
            (f'UPDATE "{schema}"."{table}"%',),
        ).fetchone()
    return None if row is None else int(row[0])


def _gone(pid: int) -> bool:
    with psycopg.connect(database_url()) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return row is None


def test_sigkill_after_the_copy_leaves_the_store_on_its_old_topic(
    pg_url: str, schema: str
) -> None:
    ids = seed(pg_url, streams=50, events=3)
    before = streams(pg_url, ids)
    topics_before = topics(schema)
    with psycopg.connect(database_url()) as holder:
        # The command renames the topics last; holding the old topic's row
        # stops it there, with every row copied, until it is killed.
        holder.execute(
            sql.SQL("SELECT 1 FROM {} WHERE name = 'events' FOR UPDATE").format(
                sql.Identifier(schema, "topics")
            )
        )
        started = Started(
            "log", "repartition", "--app", APP, "--url", pg_url,
            "--partitions", "16", "--yes", **ENV,
        )  # fmt: skip
        try:
            pid = until(
                lambda: _blocked_on(schema, "topics"), "the command's rename wait"
            )
        finally:
            started.kill()
        # A backend waiting for a lock notices its client is gone only once it
        # has the lock; end it first, so that nothing of it can commit.
        with psycopg.connect(database_url()) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        until(lambda: _gone(pid), "the killed command's backend to end")
        holder.rollback()
    assert started.process.returncode == -9
    assert topics(schema) == topics_before
    assert streams(pg_url, ids) == before
    done = repartition(pg_url, 16, "--yes")
    assert done.code == 0, done.err
    assert streams(pg_url, ids) == before
