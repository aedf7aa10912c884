"""``db`` commands: create or upgrade the PostgreSQL tables (``db migrate``)."""

from __future__ import annotations

import argparse
import os
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
    applied, version = migrate_database(url)
    where = f"{url.redacted} schema {url.schema!r}"
    if applied:
        print(
            f"migrated {where} to version {version} "
            f"(applied {', '.join(map(str, applied))})"
        )
    else:
        print(f"{where} is up to date at version {version}")
    return 0
