"""``db`` commands: create or upgrade the PostgreSQL tables (``db migrate``), or
drop the framework's schema (``db drop``)."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from framework.errors import ConfigurationError

#: Read when ``--url`` is not given, before ``FRAMEWORK_STORE_URL``.
DATABASE_URL_ENV = "FRAMEWORK_DATABASE_URL"
STORE_URL_ENV = "FRAMEWORK_STORE_URL"


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
    # Imported here: psycopg is needed only by this command.
    from framework.postgres.database import migrate_database
    from framework.postgres.url import parse_url

    url = parse_url(_database_url(args.url))
    applied, versions = migrate_database(url)
    where = f"{url.redacted} schema {url.schema!r}"
    if any(applied.values()):
        done = "; ".join(
            f"{name} to version {versions[name]} (applied "
            f"{', '.join(map(str, numbers))})"
            for name, numbers in applied.items()
            if numbers
        )
        print(f"migrated {where}: {done}")
    else:
        at = ", ".join(f"{name} at version {v}" for name, v in versions.items())
        print(f"{where} is up to date: {at}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print each subsystem's applied and latest migration; 1 when any lags."""
    from framework.postgres.database import migration_status
    from framework.postgres.url import parse_url

    url = parse_url(_database_url(args.url))
    print(f"{url.redacted} schema {url.schema!r}:")
    behind = False
    for name, version, latest in migration_status(url):
        state = "up to date" if version == latest else "needs db migrate"
        behind = behind or version != latest
        print(f"  {name}: version {version} of {latest} ({state})")
    return 1 if behind else 0


def run_drop(args: argparse.Namespace) -> int:
    return drop_schema(_database_url(args.url), yes=args.yes)


#: A projection's document tables: rm_<id>_<generation>_<table>.
_DOCUMENT_TABLE = re.compile(r"rm_[0-9]+_[0-9]+_[a-z][a-z0-9_]*")


def _framework_tables() -> set[str]:
    """The tables the migrations create (and the migrations' own tables)."""
    from framework.postgres.migration import created_tables

    return created_tables()


def drop_schema(url_text: str, *, yes: bool) -> int:
    """Drop the schema ``url_text`` names if it is the framework's: it has the
    migrations' table and no tables the framework did not make. Without
    ``yes``, say what would be dropped and return 1."""
    # Imported here: psycopg is needed only by this command.
    import psycopg
    from psycopg import sql

    from framework.application.settings import StoreNotFoundError
    from framework.postgres.errors import translated
    from framework.postgres.url import parse_url

    url = parse_url(url_text)
    where = f"{url.redacted} schema {url.schema!r}"
    with translated(url), psycopg.connect(url.conninfo, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s "
                "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname",
                (url.schema,),
            ).fetchall()
        ]
        exists = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (url.schema,)
        ).fetchone()
        if not exists:
            raise StoreNotFoundError(
                where, "that schema does not exist", "check --url (its ?schema=)"
            )
        if "schema_migrations" not in tables and "schema_version" not in tables:
            raise ConfigurationError(
                f"{where} is not a framework store (it has no schema_migrations "
                "table); nothing dropped: check --url (its ?schema=)"
            )
        known = _framework_tables()
        foreign = [
            t for t in tables if t not in known and not _DOCUMENT_TABLE.fullmatch(t)
        ]
        if foreign:
            raise ConfigurationError(
                f"{where} also holds tables the framework did not create "
                f"({', '.join(foreign)}); nothing dropped: move them out, or drop "
                "the schema yourself"
            )
        documents = sum(1 for t in tables if _DOCUMENT_TABLE.fullmatch(t))
        if not yes:
            print(
                f"would drop {where} with its {len(tables)} tables (the event log"
                f", {documents} read-model tables, checkpoints, group members); "
                "add --yes to drop it"
            )
            return 1
        # Waiting behind a running application's locks would hang; say so.
        conn.execute("SET lock_timeout = '10s'")
        try:
            conn.execute(
                sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(url.schema))
            )
        except psycopg.errors.LockNotAvailable:
            raise ConfigurationError(
                f"{where} is in use (a lock was held for 10 s); stop the "
                "applications and runners using it, then drop it again"
            ) from None
    print(f"dropped {where} ({len(tables)} tables)")
    return 0
