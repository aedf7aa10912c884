"""Each subsystem's migrations: a schema the shared list made opens with nothing
re-run, a fresh one gets the same tables, concurrent migrators stay safe, and
``db migrate`` / ``db status`` speak per subsystem."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from framework.errors import ConfigurationError
from framework.postgres.database import migrate_database, migration_status
from framework.postgres.migration import (
    Migration,
    SubsystemMigrations,
    in_order,
    migrate,
    registered,
)
from tests.conftest import database_url
from tests.postgres.fixtures import drop_schema, with_schema
from tests.postgres.shared_schema import create_shared_schema

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _shape(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[Any]]:
    """Tables, columns, indexes, constraints and functions of ``schema`` but the
    migrations' own, with the schema's name taken out."""

    def rows(query: str) -> list[Any]:
        found = conn.execute(query, {"s": schema}).fetchall()
        return [tuple(str(v).replace(schema, "S") for v in row) for row in found]

    return {
        "columns": rows(
            "SELECT table_name, ordinal_position, column_name, data_type, "
            "collation_name, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = %(s)s "
            "AND table_name NOT IN ('schema_migrations', 'schema_version') "
            "ORDER BY 1, 2"
        ),
        "tables": rows(
            "SELECT c.relname, c.relkind, c.reloptions FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s "
            "AND c.relname NOT LIKE 'schema_%%' ORDER BY 1"
        ),
        "indexes": rows(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %(s)s "
            "AND tablename NOT IN ('schema_migrations', 'schema_version') ORDER BY 1"
        ),
        "constraints": rows(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(c.oid) "
            "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = %(s)s AND conrelid::regclass::text "
            "NOT LIKE '%%schema_%%' ORDER BY 1, 2"
        ),
        "functions": rows(
            "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %(s)s ORDER BY 1"
        ),
    }


def test_a_schema_the_shared_list_made_opens_with_nothing_rerun(schema: str) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        create_shared_schema(conn, schema)
    url = with_schema(database_url(), schema)
    applied, versions = migrate_database(url)
    # Only what was released after the shared list runs.
    assert applied == {
        s.subsystem: [m.version for m in s.migrations if m.shared_number is None]
        for s in registered()
    }
    assert versions == {s.subsystem: s.latest for s in registered()}
    with psycopg.connect(database_url()) as conn:
        recorded = conn.execute(
            sql.SQL("SELECT subsystem, version FROM {} ORDER BY 1, 2").format(
                sql.Identifier(schema, "schema_migrations")
            )
        ).fetchall()
        shared = conn.execute(
            sql.SQL("SELECT version FROM {} ORDER BY 1").format(
                sql.Identifier(schema, "schema_version")
            )
        ).fetchall()
    assert recorded == sorted(
        (s.subsystem, m.version) for s in registered() for m in s.migrations
    )
    assert shared == [(v,) for v in range(1, 6)]  # left as it was
    assert migrate_database(url)[0] == {s.subsystem: [] for s in registered()}


def test_every_shared_migration_is_some_subsystems_and_no_other() -> None:
    numbers = sorted(
        m.shared_number
        for s in registered()
        for m in s.migrations
        if m.shared_number is not None
    )
    # Shared migration 1 made the log's records table with the store's columns.
    assert numbers == [1, 1, 2, 3, 4, 5]


def test_a_fresh_schema_has_the_tables_of_one_the_shared_list_made(
    schema: str,
) -> None:
    fresh = f"{schema}_fresh"
    try:
        with psycopg.connect(database_url(), autocommit=True) as conn:
            create_shared_schema(conn, schema)
        migrate_database(with_schema(database_url(), schema))
        migrate_database(with_schema(database_url(), fresh))
        with psycopg.connect(database_url()) as conn:
            assert _shape(conn, fresh) == _shape(conn, schema)
    finally:
        drop_schema(fresh)


def test_concurrent_migrators_apply_each_migration_once(schema: str) -> None:
    url = with_schema(database_url(), schema)
    results: list[dict[str, list[int]]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def run() -> None:
        try:
            start.wait()
            results.append(migrate_database(url)[0])
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for s in registered():
        runs = [r[s.subsystem] for r in results if r[s.subsystem]]
        assert runs == [list(range(1, s.latest + 1))]


def test_status_says_each_subsystems_version(schema: str) -> None:
    url = with_schema(database_url(), schema)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        create_shared_schema(conn, schema, upto=3)
    before = {name: (v, last) for name, v, last in migration_status(url)}
    assert before["log"] == (1, registered_latest("log"))
    assert before["projections"][0] == 1
    assert before["store"][0] == 2
    migrate_database(url)
    assert all(v == last for _, v, last in migration_status(url))


def registered_latest(name: str) -> int:
    return next(s.latest for s in registered() if s.subsystem == name)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framework", "db", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_status_and_migrate_speak_per_subsystem(schema: str) -> None:
    url = with_schema(database_url(), schema)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        create_shared_schema(conn, schema, upto=3)
    status = _cli("status", "--url", url)
    assert status.returncode == 1, status.stderr
    assert "log: version 1 of" in status.stdout
    assert "needs db migrate" in status.stdout
    migrated = _cli("migrate", "--url", url)
    assert migrated.returncode == 0, migrated.stderr
    assert "migrated" in migrated.stdout
    assert "log to version 2 (applied 2)" in migrated.stdout
    status = _cli("status", "--url", url)
    assert status.returncode == 0, status.stderr
    assert "needs db migrate" not in status.stdout
    for s in registered():
        assert f"{s.subsystem}: version {s.latest} of {s.latest}" in status.stdout
    again = _cli("migrate", "--url", url)
    assert "up to date: log at version" in again.stdout


def test_subsystems_run_after_those_they_build_on() -> None:
    one = (Migration(1, "a", ()),)
    order = in_order(
        [
            SubsystemMigrations("b", one, after=("c",)),
            SubsystemMigrations("c", one),
            SubsystemMigrations("a", one, after=("b",)),
        ]
    )
    assert [s.subsystem for s in order] == ["c", "b", "a"]
    with pytest.raises(ConfigurationError, match="not registered"):
        in_order([SubsystemMigrations("a", one, after=("x",))])
    with pytest.raises(ConfigurationError, match="wait for each other"):
        in_order(
            [
                SubsystemMigrations("a", one, after=("b",)),
                SubsystemMigrations("b", one, after=("a",)),
            ]
        )
    with pytest.raises(ConfigurationError, match="numbered"):
        in_order([SubsystemMigrations("a", (Migration(2, "a", ()),))])


def test_a_failing_migration_leaves_nothing_behind(schema: str) -> None:
    broken = SubsystemMigrations(
        "broken",
        (
            Migration(1, "a table", ("CREATE TABLE {schema}.t (x integer)",)),
            Migration(2, "a mistake", ("SELECT no_such_function()",)),
        ),
    )
    with psycopg.connect(database_url(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrate(conn, schema, [broken])
        exists = conn.execute("SELECT to_regclass(%s)", (f"{schema}.t",)).fetchone()
    assert exists == (None,)
