"""Migrations and the runner that applies each subsystem's missing ones.

Each subsystem keeps its own numbered migrations beside its PostgreSQL code and
registers them under the ``framework.postgres.migrations`` entry-point group
(pyproject.toml), so this shared runner finds them without importing any
subsystem by name. Idempotent and safe to run from several processes at once: a
transaction-level advisory lock per schema serialises them, and
``schema_migrations`` records what ran, per subsystem.
"""

from __future__ import annotations

import functools
import logging
import re
import zlib
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from typing import Any

import attrs
import psycopg
from psycopg import sql

from framework.errors import ConfigurationError

logger = logging.getLogger("framework.postgres")

#: The entry-point group each subsystem registers its ``SubsystemMigrations`` in.
ENTRY_POINT_GROUP = "framework.postgres.migrations"
#: What the runner records applied migrations in, per subsystem.
MIGRATIONS_TABLE = "schema_migrations"
#: Where the single list every subsystem shared before each had its own recorded
#: its numbers; read, never written (``Migration.shared_number``).
SHARED_TABLE = "schema_version"


@attrs.frozen
class Migration:
    version: int
    description: str
    #: Statements with ``{schema}`` where the schema identifier goes.
    statements: tuple[str, ...]
    #: The number this migration had in the single list every subsystem shared
    #: before each kept its own: a schema whose ``schema_version`` holds it has
    #: this migration, and it is not run again.
    shared_number: int | None = None


@attrs.frozen
class SubsystemMigrations:
    """One subsystem's migrations, numbered from 1 in the order they run."""

    subsystem: str
    migrations: tuple[Migration, ...]
    #: Subsystems whose tables these migrations change: theirs run first.
    after: tuple[str, ...] = ()

    @property
    def latest(self) -> int:
        return self.migrations[-1].version if self.migrations else 0


@functools.cache
def registered() -> tuple[SubsystemMigrations, ...]:
    """Every installed subsystem's migrations, each after those it builds on.

    Raises ``ConfigurationError`` when none are registered (the package's entry
    points are missing: it was not installed) or they do not fit together.
    """
    found: dict[str, SubsystemMigrations] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        migrations = entry.load()
        if not isinstance(migrations, SubsystemMigrations):
            raise ConfigurationError(
                f"entry point {entry.name} = {entry.value} in {ENTRY_POINT_GROUP} "
                "is not a SubsystemMigrations"
            )
        found[migrations.subsystem] = migrations
    if not found:
        raise ConfigurationError(
            f"no PostgreSQL migrations are registered (entry-point group "
            f"{ENTRY_POINT_GROUP}); install the framework package (pip install -e .) "
            "so that its entry points are recorded"
        )
    return in_order(found.values())


def in_order(
    subsystems: Iterable[SubsystemMigrations],
) -> tuple[SubsystemMigrations, ...]:
    """``subsystems`` with each after the ones it names in ``after``, otherwise
    by name; ``ConfigurationError`` for a missing or circular dependency."""
    waiting = {s.subsystem: s for s in subsystems}
    for s in waiting.values():
        numbers = [m.version for m in s.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ConfigurationError(
                f"the {s.subsystem} migrations are numbered {numbers}, not 1, 2, ..."
            )
        missing = [name for name in s.after if name not in waiting]
        if missing:
            raise ConfigurationError(
                f"the {s.subsystem} migrations build on {', '.join(missing)}, "
                "whose migrations are not registered"
            )
    ordered: list[SubsystemMigrations] = []
    done: set[str] = set()
    while waiting:
        ready = sorted(n for n, s in waiting.items() if done.issuperset(s.after))
        if not ready:
            raise ConfigurationError(
                f"the migrations of {', '.join(sorted(waiting))} wait for each other"
            )
        for name in ready:
            ordered.append(waiting.pop(name))
            done.add(name)
    return tuple(ordered)


def _lock_key(schema: str) -> int:
    # A stable signed 64-bit key per schema for pg_advisory_xact_lock; the same
    # key as before migrations were kept per subsystem, so that an older process
    # migrating the same schema at the same moment waits too.
    return zlib.crc32(f"framework.migrate:{schema}".encode()) - (1 << 31)


def _exists(conn: psycopg.Connection[Any], schema: str, table: str) -> bool:
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        (sql.Identifier(schema, table).as_string(conn),),
    ).fetchone()
    return bool(row and row[0])


def _applied(
    conn: psycopg.Connection[Any],
    schema: str,
    subsystems: Sequence[SubsystemMigrations],
) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(subsystem, version) of every migration the schema has: those recorded in
    ``schema_migrations``, and those recorded under their shared number in
    ``schema_version``."""
    recorded: set[tuple[str, int]] = set()
    have: set[tuple[str, int]] = set()
    if _exists(conn, schema, MIGRATIONS_TABLE):
        rows = conn.execute(
            sql.SQL("SELECT subsystem, version FROM {}").format(
                sql.Identifier(schema, MIGRATIONS_TABLE)
            )
        ).fetchall()
        recorded.update((str(s), int(v)) for s, v in rows)
    if _exists(conn, schema, SHARED_TABLE):
        rows = conn.execute(
            sql.SQL("SELECT version FROM {}").format(
                sql.Identifier(schema, SHARED_TABLE)
            )
        ).fetchall()
        shared = {int(row[0]) for row in rows}
        have.update(
            (s.subsystem, m.version)
            for s in subsystems
            for m in s.migrations
            if m.shared_number in shared
        )
    return recorded, have


def current_versions(
    conn: psycopg.Connection[Any],
    schema: str,
    subsystems: Sequence[SubsystemMigrations] | None = None,
) -> dict[str, int]:
    """Each subsystem's highest applied migration (0 for none), in run order."""
    subsystems = registered() if subsystems is None else subsystems
    recorded, shared = _applied(conn, schema, subsystems)
    have = recorded | shared
    return {
        s.subsystem: max(
            (m.version for m in s.migrations if (s.subsystem, m.version) in have),
            default=0,
        )
        for s in subsystems
    }


def migrate(
    conn: psycopg.Connection[Any],
    schema: str,
    subsystems: Sequence[SubsystemMigrations] | None = None,
) -> dict[str, list[int]]:
    """Apply the migrations ``schema`` lacks, in one transaction; return each
    subsystem's newly applied numbers (empty lists when it is up to date).

    A schema migrated before each subsystem had its own list keeps its
    ``schema_version`` table: what it records is written into
    ``schema_migrations`` under the subsystems' numbers, and not run again.
    Raises psycopg errors: callers run it inside ``translated``.
    """
    subsystems = registered() if subsystems is None else subsystems
    ident = sql.Identifier(schema)
    table = sql.Identifier(schema, MIGRATIONS_TABLE)
    record = sql.SQL(
        "INSERT INTO {} (subsystem, version, description) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING"
    ).format(table)
    applied: dict[str, list[int]] = {s.subsystem: [] for s in subsystems}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                    subsystem text NOT NULL,
                    version integer NOT NULL,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (subsystem, version)
                )"""
            ).format(table)
        )
        recorded, shared = _applied(conn, schema, subsystems)
        for s in subsystems:
            for migration in s.migrations:
                key = (s.subsystem, migration.version)
                if key in recorded:
                    continue
                if key in shared:
                    # Recorded under its shared number only: record it here too.
                    conn.execute(record, (*key, migration.description))
                    continue
                for statement in migration.statements:
                    conn.execute(sql.SQL(statement).format(schema=ident))
                conn.execute(record, (*key, migration.description))
                applied[s.subsystem].append(migration.version)
    for name, numbers in applied.items():
        if numbers:
            logger.info(
                "schema %r: %s migrated to version %d", schema, name, numbers[-1]
            )
    return applied


def created_tables(subsystems: Sequence[SubsystemMigrations] | None = None) -> set[str]:
    """The tables the migrations create, and the runner's own."""
    subsystems = registered() if subsystems is None else subsystems
    names = {MIGRATIONS_TABLE, SHARED_TABLE}
    for s in subsystems:
        for migration in s.migrations:
            for statement in migration.statements:
                names.update(_CREATED.findall(statement))
    return names


_CREATED = re.compile(r"CREATE TABLE \{schema\}\.(\w+)")
