"""URLs, error translation and migrations: clear errors, no password, idempotent DDL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from framework.errors import ConcurrencyError, ConfigurationError, StoreError
from framework.log.backends.postgres import PostgresLog
from framework.postgres.database import migrate_database
from framework.postgres.errors import StoreConnectionError
from framework.postgres.migration import registered
from framework.postgres.url import DEFAULT_SCHEMA, parse_url
from framework.store.backends.postgres import PostgresEventStore
from framework.testing.store_contract import new_event
from tests.conftest import database_url
from tests.postgres.shared_schema import (
    OldEvent,
    create_shared_schema,
    create_topic,
    write_old_events,
)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def test_a_url_splits_into_libpq_settings_and_our_options() -> None:
    url = parse_url(
        "postgres://app:s3cret@db.example:6543/ledger?schema=books&pool_max=4"
        "&sslmode=disable&notify=off"
    )
    assert (url.host, url.port, url.dbname, url.user) == (
        "db.example",
        6543,
        "ledger",
        "app",
    )
    assert (url.schema, url.pool_max, url.notify) == ("books", 4, False)
    assert "schema" not in url.conninfo
    assert "sslmode=disable" in url.conninfo
    assert "s3cret" not in repr(url)
    assert "s3cret" not in url.redacted
    assert parse_url("postgresql://u@h/d").schema == DEFAULT_SCHEMA


def test_the_database_url_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRAMEWORK_DATABASE_URL", "postgresql://u@h:1/d?schema=x")
    assert parse_url().schema == "x"
    monkeypatch.delenv("FRAMEWORK_DATABASE_URL")
    with pytest.raises(ConfigurationError, match="FRAMEWORK_DATABASE_URL"):
        parse_url()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u@h/d?schema=a;drop", "not a plain identifier"),
        ("postgresql://u@h/d?pool_max=0", "pool_max"),
        ("mysql://u@h/d", "not a PostgreSQL URL"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_url(url)


def test_an_unreachable_server_is_a_retriable_error_naming_host_not_password() -> None:
    with pytest.raises(StoreConnectionError) as info:
        PostgresLog("postgresql://app:hunter2@127.0.0.1:1/test?connect_timeout=2")
    error = info.value
    assert isinstance(error, StoreError)
    assert error.retriable
    assert "127.0.0.1:1" in str(error)
    assert "hunter2" not in str(error)
    assert "hunter2" not in repr(error.__cause__) or error.__cause__ is None


def test_migrate_is_idempotent_and_records_the_schema_version(schema: str) -> None:
    url = f"{database_url()}?schema={schema}"
    latest = {s.subsystem: s.latest for s in registered()}
    every = {name: list(range(1, last + 1)) for name, last in latest.items()}
    assert migrate_database(url) == (every, latest)
    assert migrate_database(url) == ({name: [] for name in latest}, latest)
    with psycopg.connect(database_url()) as conn:
        rows = conn.execute(
            sql.SQL("SELECT subsystem, version FROM {} ORDER BY 1, 2").format(
                sql.Identifier(schema, "schema_migrations")
            )
        ).fetchall()
    assert rows == sorted((name, v) for name, vs in every.items() for v in vs)


def test_a_store_made_before_migration_3_is_upgraded_keeping_its_events(
    schema: str,
) -> None:
    url = f"{database_url()}?schema={schema}"
    _write_before(url, 2, {"b-stream": 2, "a-stream": 1})
    assert migrate_database(url) == (_after_shared(2), _latest())
    store = PostgresEventStore(url)
    try:
        assert [e.stream_version for e in store.read_stream("b-stream")] == [1, 2]
        with pytest.raises(ConcurrencyError):
            store.append("b-stream", [new_event()], expected_version=1)
        store.append("b-stream", [new_event()], expected_version=2)
        assert store.stream_version("b-stream") == 3
    finally:
        store.close()
    with psycopg.connect(database_url()) as conn:
        # Stream ids compare as bytes: the stream index is on the bytea key
        # (store migration 3), as it was on stream_id COLLATE "C" before.
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
            "AND indexname = 'records_stream_version'",
            (schema,),
        ).fetchone()
    assert row is not None
    assert "(topic_id, key, stream_version)" in row[0]


def test_migration_4_leaves_the_head_rows_without_checks_to_rerun(
    schema: str,
) -> None:
    url = f"{database_url()}?schema={schema}"
    _write_before(url, 3, {"s": 1})
    with psycopg.connect(database_url()) as conn:
        assert _partition_constraints(conn, schema) == ["c", "f", "p"]
    assert migrate_database(url) == (_after_shared(3), _latest())
    with psycopg.connect(database_url()) as conn:
        assert _partition_constraints(conn, schema) == ["p"]
    store = PostgresEventStore(url)
    try:
        appended = store.append("s", [new_event()], expected_version=1)
        assert (appended.first_version, appended.first_offset) == (2, 1)
    finally:
        store.close()


def _write_before(url: str, applied: int, streams: dict[str, int]) -> None:
    """Write ``streams`` (id -> event count) as a store whose code knew only the
    first ``applied`` migrations of the list all subsystems once shared did."""
    schema = parse_url(url).schema
    events = [
        OldEvent(
            stream_id=stream,
            event_id=event.event_id,
            name=event.name,
            version=event.version,
            data=event.data,
            timestamp_ms=event.timestamp_ms,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
        )
        for stream, count in streams.items()
        for event in (new_event() for _ in range(count))
    ]
    with psycopg.connect(database_url(), autocommit=True) as conn:
        create_shared_schema(conn, schema, applied)
        with conn.transaction():
            topic_id = create_topic(conn, schema, "events", 64)
            write_old_events(conn, schema, topic_id, 64, events)


def _latest() -> dict[str, int]:
    return {s.subsystem: s.latest for s in registered()}


def _after_shared(applied: int) -> dict[str, list[int]]:
    """Each subsystem's migrations a schema lacks when the shared list's first
    ``applied`` ran on it."""
    return {
        s.subsystem: [
            m.version
            for m in s.migrations
            if m.shared_number is None or m.shared_number > applied
        ]
        for s in registered()
    }


def _partition_constraints(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """The kinds of the head table's constraints: c(heck), f(oreign key), p(key)."""
    rows = conn.execute(
        "SELECT contype FROM pg_constraint WHERE conrelid = %s::regclass "
        "ORDER BY contype",
        (sql.Identifier(schema, "partitions").as_string(conn),),
    ).fetchall()
    return [str(row[0]) for row in rows]


def test_python_m_framework_db_migrate_uses_the_database_url(schema: str) -> None:
    env = {**os.environ, "FRAMEWORK_DATABASE_URL": f"{database_url()}?schema={schema}"}
    for expected in ("migrated", "up to date"):
        done = subprocess.run(
            [sys.executable, "-m", "framework", "db", "migrate"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
        assert schema in done.stdout


def test_db_migrate_against_a_dead_server_fails_with_a_clear_message() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "framework",
            "db",
            "migrate",
            "--url",
            "postgresql://app:hunter2@127.0.0.1:1/test?connect_timeout=2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot reach PostgreSQL at 127.0.0.1:1" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
