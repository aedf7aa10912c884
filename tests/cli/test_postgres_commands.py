"""The management commands on PostgreSQL, run as users run them: no schema is
created by mistake, failures show in ``status``, Ctrl-C is one line, a rebuild
resumes, and ``db drop`` drops only the framework's own schema."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql

from framework import Application
from tests.cli import cli_app
from tests.cli.commands import APP, Started, cli, seed, wait_until_failures_cleared
from tests.conftest import database_url

pytestmark = pytest.mark.postgres


def schema_exists(schema: str) -> bool:
    with psycopg.connect(database_url()) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
    return row is not None


def tables_of(schema: str) -> list[str]:
    with psycopg.connect(database_url()) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
    return sorted(r[0] for r in rows)


@pytest.mark.parametrize(
    "command",
    [("status",), ("run",), ("rebuild", "balances"), ("reset", "balances", "--yes")],
    ids=lambda c: c[0],
)
def test_a_command_on_a_missing_schema_says_so_and_creates_nothing(
    command: tuple[str, ...], schema: str, pg_url: str
) -> None:
    done = cli("projections", *command, "--app", APP, "--url", pg_url)
    assert done.code == 1
    assert f"schema {schema!r}" in done.err
    assert "does not exist" in done.err
    assert "db migrate" in done.err
    assert "Traceback" not in done.err
    assert not schema_exists(schema)


def test_a_schema_without_the_tables_is_reported_not_migrated(
    schema: str, pg_url: str
) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    done = cli("projections", "status", "--app", APP, "--url", pg_url)
    assert done.code == 1
    assert "holds no framework tables" in done.err
    assert tables_of(schema) == []


def test_status_shows_a_stopped_projection_until_a_fixed_run_applies_it(
    pg_url: str,
) -> None:
    seed(pg_url, projections="unlucky")
    with cli_app.build(pg_url, "unlucky") as app:
        with pytest.raises(Exception, match="unlucky amount"):
            app.projections["unlucky"].catch_up()
        failures = app.read_models.failures("unlucky", 1)
    assert failures
    env = {"CLI_PROJECTIONS": "unlucky"}
    done = cli("projections", "status", "--app", APP, "--url", pg_url, **env)
    assert done.code == 3, done.err
    assert "STOPPED at offset" in done.out
    assert "ValueError('unlucky amount')" in done.out
    runner = Started(
        "projections", "run", "--app", APP, "--url", pg_url, **env, CLI_FIXED="1"
    )
    try:
        line = runner.wait_for_line("running")
        assert re.fullmatch(r"running unlucky \(member [^)]+\); .*\n", line)
        with cli_app.build(pg_url, "unlucky") as app:
            wait_until_failures_cleared(app, "unlucky")
            assert app.read_model("unlucky").wait_for(app.end_position(), 600)
    finally:
        stopped = runner.interrupt()
    assert stopped.code == 0, stopped.err
    assert stopped.err.strip().splitlines() == [
        "stopped unlucky: every member left its group (run the command again to go on)"
    ]
    assert cli("projections", "status", "--app", APP, "--url", pg_url, **env).code == 0


def test_ctrl_c_stops_a_rebuild_and_running_it_again_resumes(pg_url: str) -> None:
    accounts = seed(pg_url, projections="blocking", deposits=tuple(range(1, 31)))
    env = {"CLI_PROJECTIONS": "blocking"}
    rebuild = Started(
        "projections", "rebuild", "blocking", "--app", APP, "--url", pg_url,
        **env, CLI_BLOCK_AT="25",
    )  # fmt: skip
    try:
        rebuild.wait_for_line("blocked")
    except BaseException:
        rebuild.kill()
        raise
    done = rebuild.interrupt()
    assert done.code == 130
    assert "Traceback" not in done.err
    match = re.search(r"interrupted: rebuilt (\d+) of 62 events", done.err)
    assert match, done.err
    assert done.err.strip().splitlines()[-1].endswith("to resume from there")
    again = cli(
        "projections", "rebuild", "blocking", "--app", APP, "--url", pg_url, **env
    )
    assert again.code == 0, again.err
    shown = [int(n) for n in re.findall(r" (\d+)/62 events", again.err)]
    assert min(shown) > int(match[1])
    with Application(pg_url) as app:
        table = app.read_model("blocking").table("balances")
        assert {k: v["balance"] for k, v in table.items()} == dict.fromkeys(
            accounts, sum(range(1, 31))
        )


def test_db_drop_says_what_it_would_drop_and_drops_only_with_yes(
    schema: str, pg_url: str
) -> None:
    seed(pg_url)
    asked = cli("db", "drop", "--url", pg_url)
    assert asked.code == 1
    assert asked.out.startswith("would drop postgresql://")
    assert f"schema {schema!r}" in asked.out
    assert "--yes" in asked.out
    assert schema_exists(schema)
    done = cli("db", "drop", "--url", pg_url, "--yes")
    assert done.code == 0, done.err
    assert not schema_exists(schema)
    again = cli("db", "drop", "--url", pg_url, "--yes")
    assert again.code == 1
    assert "does not exist" in again.err


def test_store_drop_drops_a_postgresql_store_too(schema: str, pg_url: str) -> None:
    seed(pg_url)
    done = cli("store", "drop", "--url", pg_url, "--yes")
    assert done.code == 0, done.err
    assert not schema_exists(schema)


def test_db_drop_refuses_a_schema_with_tables_the_framework_did_not_make(
    schema: str, pg_url: str
) -> None:
    seed(pg_url)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id int)").format(
                sql.Identifier(schema, "invoices")
            )
        )
    done = cli("db", "drop", "--url", pg_url, "--yes")
    assert done.code == 1
    assert "invoices" in done.err
    assert "invoices" in tables_of(schema)
    assert "records" in tables_of(schema)


def test_db_drop_refuses_a_schema_that_is_not_a_store(schema: str, pg_url: str) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    done = cli("db", "drop", "--url", pg_url, "--yes")
    assert done.code == 1
    assert "not a framework store" in done.err
    assert schema_exists(schema)
