"""``db`` commands: create or upgrade the PostgreSQL tables (``db migrate``), show
each subsystem's migrations (``db status``), or drop the framework's schema
(``db drop``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from framework.application.admin import (
    drop_postgres_schema,
    migrate_postgres,
    postgres_migration_status,
)
from framework.application.settings import STORE_URL_ENV
from framework.errors import ConfigurationError

#: Read when ``--url`` is not given, before ``FRAMEWORK_STORE_URL``.
DATABASE_URL_ENV = "FRAMEWORK_DATABASE_URL"


def add_db_commands(groups: Any) -> None:
    db = groups.add_parser("db", help="database tables and migrations")
    commands = db.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate = commands.add_parser(
        "migrate",
        help="create or upgrade the tables (idempotent; safe to run concurrently)",
    )
    migrate.add_argument(
        "--url",
        help=f"postgresql://user@host:port/db?schema=name (default: ${DATABASE_URL_ENV}"
        f", then ${STORE_URL_ENV})",
    )
    migrate.set_defaults(run=run_migrate)
    status = commands.add_parser(
        "status",
        help="show each subsystem's applied and latest migration (exit 1 when "
        "any needs db migrate)",
    )
    status.add_argument(
        "--url",
        help=f"postgresql://...?schema=name (default: ${DATABASE_URL_ENV}, then "
        f"${STORE_URL_ENV})",
    )
    status.set_defaults(run=run_status)
    drop = commands.add_parser(
        "drop",
        help="drop the framework's schema named in the URL, with every event and "
        "read model in it (says what it would drop unless given --yes)",
    )
    drop.add_argument(
        "--url",
        help=f"postgresql://...?schema=name (default: ${DATABASE_URL_ENV}, then "
        f"${STORE_URL_ENV})",
    )
    drop.add_argument("--yes", action="store_true", help="really drop it")
    drop.set_defaults(run=run_drop)


def _database_url(given: str | None) -> str:
    url = given or os.environ.get(DATABASE_URL_ENV) or os.environ.get(STORE_URL_ENV)
    if not url:
        raise ConfigurationError(
            f"no database URL: pass --url postgresql://... or set {DATABASE_URL_ENV}"
        )
    return url


def run_migrate(args: argparse.Namespace) -> int:
    migrated = migrate_postgres(_database_url(args.url))
    if any(migrated.applied.values()):
        done = "; ".join(
            f"{name} to version {migrated.versions[name]} (applied "
            f"{', '.join(map(str, numbers))})"
            for name, numbers in migrated.applied.items()
            if numbers
        )
        print(f"migrated {migrated.where}: {done}")
    else:
        at = ", ".join(
            f"{name} at version {v}" for name, v in migrated.versions.items()
        )
        print(f"{migrated.where} is up to date: {at}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print each subsystem's applied and latest migration; 1 when any lags."""
    where, subsystems = postgres_migration_status(_database_url(args.url))
    print(f"{where}:")
    for s in subsystems:
        state = "needs db migrate" if s.behind else "up to date"
        print(f"  {s.subsystem}: version {s.version} of {s.latest} ({state})")
    return 1 if any(s.behind for s in subsystems) else 0


def run_drop(args: argparse.Namespace) -> int:
    return drop_schema(_database_url(args.url), yes=args.yes)


def drop_schema(url: str, *, yes: bool) -> int:
    """Drop the framework's schema ``url`` names (``db drop``). Without ``yes``,
    say what would be dropped and return 1."""
    schema = drop_postgres_schema(url, dry_run=not yes)
    if not yes:
        print(
            f"would drop {schema.where} with its {schema.tables} tables (the event "
            f"log, {schema.documents} read-model tables, checkpoints, group "
            "members); add --yes to drop it"
        )
        return 1
    print(f"dropped {schema.where} ({schema.tables} tables)")
    return 0
