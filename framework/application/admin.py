"""Store administration: what the management commands do to a whole store without
an application (migrate or drop a PostgreSQL schema, repair a file log, delete a
file store, change a store's partition count)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from framework.application.repartition import (
    Repartitioned,
    repartition_file_store,
    repartition_postgres_store,
)
from framework.application.settings import StoreNotFoundError, file_root
from framework.application.wiring import running_group_members
from framework.errors import ConfigurationError

__all__ = [
    "FileStore",
    "Migrated",
    "PostgresSchema",
    "Repartitioned",
    "SubsystemVersion",
    "drop_file_store",
    "drop_postgres_schema",
    "migrate_postgres",
    "postgres_migration_status",
    "repair_file_log",
    "repartition_file_store",
    "repartition_postgres_store",
]

if TYPE_CHECKING:
    from framework.log.backends.segments import RepairReport

#: A projection's document tables: rm_<id>_<generation>_<table>.
_DOCUMENT_TABLE = re.compile(r"rm_[0-9]+_[0-9]+_[a-z][a-z0-9_]*")

#: What a file store's folder holds; a folder with anything else is refused.
_FILE_STORE_ENTRIES = frozenset(
    {
        "log",
        "index",
        "groups",
        "read_models.sqlite",
        "read_models.sqlite-wal",
        "read_models.sqlite-shm",
        "read_models.sqlite-journal",
    }
)


@attrs.frozen(kw_only=True)
class Migrated:
    """``where`` (server and schema, never a password) after ``db migrate``: per
    subsystem, the migrations ``applied`` (none if it was up to date) and the
    ``versions`` it is at now."""

    where: str
    applied: dict[str, list[int]]
    versions: dict[str, int]


@attrs.frozen(kw_only=True)
class SubsystemVersion:
    """One subsystem's migrations in a schema: ``version`` applied of ``latest``."""

    subsystem: str
    version: int
    latest: int

    @property
    def behind(self) -> bool:
        return self.version != self.latest


@attrs.frozen(kw_only=True)
class PostgresSchema:
    """A framework schema: ``where`` (server and schema), its number of
    ``tables``, of which ``documents`` hold read models."""

    where: str
    tables: int
    documents: int


@attrs.frozen(kw_only=True)
class FileStore:
    """A file store, as ``what`` describes it (folder, size, topics)."""

    what: str


def migrate_postgres(url_text: str) -> Migrated:
    """Create or upgrade the framework's tables in the schema ``url_text`` names
    (idempotent; safe to run concurrently)."""
    # Imported here: psycopg is needed only by this operation.
    from framework.postgres.database import migrate_database
    from framework.postgres.url import parse_url

    url = parse_url(url_text)
    applied, versions = migrate_database(url)
    return Migrated(
        where=f"{url.redacted} schema {url.schema!r}",
        applied=applied,
        versions=versions,
    )


def postgres_migration_status(url_text: str) -> tuple[str, list[SubsystemVersion]]:
    """Where ``url_text`` points (server and schema) and each subsystem's applied
    and latest migration, in the order they run; changes nothing."""
    from framework.postgres.database import migration_status
    from framework.postgres.url import parse_url

    url = parse_url(url_text)
    return f"{url.redacted} schema {url.schema!r}", [
        SubsystemVersion(subsystem=name, version=version, latest=latest)
        for name, version, latest in migration_status(url)
    ]


def _framework_tables() -> set[str]:
    """The tables the migrations create (and the migrations' own tables)."""
    from framework.postgres.migration import created_tables

    return created_tables()


def drop_postgres_schema(url_text: str, *, dry_run: bool) -> PostgresSchema:
    """Drop the schema ``url_text`` names if it is the framework's: it has the
    migrations' table and no tables the framework did not make; with
    ``dry_run``, only check that and say what would be dropped. Raises
    ``StoreNotFoundError`` for a schema that does not exist and
    ``ConfigurationError`` for one that is not (only) the framework's or is in
    use."""
    # Imported here: psycopg is needed only by this operation.
    import psycopg
    from psycopg import sql

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
        schema = PostgresSchema(
            where=where,
            tables=len(tables),
            documents=sum(1 for t in tables if _DOCUMENT_TABLE.fullmatch(t)),
        )
        if dry_run:
            return schema
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
    return schema


def repair_file_log(
    url: str, topic: str, partitions: Iterable[int] | None, *, dry_run: bool
) -> Iterator[RepairReport]:
    """Truncate each partition of ``topic`` (default: all) in the file store at
    ``url`` at its first damaged batch, yielding a report per partition as it
    goes; with ``dry_run``, only say what would be dropped."""
    # Imported here: the segment backend is only loaded by those who use it.
    from framework.log.backends.segments import SegmentLog

    root = file_root(url) / "log"
    if not root.is_dir():
        raise ConfigurationError(f"{root} holds no log; check --url")
    with SegmentLog(root) as log:
        for partition in partitions or range(log.topic_config(topic).partitions):
            yield log.repair(topic, partition, dry_run=dry_run)


def drop_file_store(root: Path, *, dry_run: bool) -> FileStore:
    """Delete the folder of a file store, if it looks like one (a log with
    topics, and nothing a store does not make) and no runner is using it; with
    ``dry_run``, only check that and say what would be deleted."""
    if not (root / "log" / "topics").is_dir():
        raise StoreNotFoundError(
            str(root),
            "the folder holds no log" if root.is_dir() else "there is no such folder",
            "check --url; nothing deleted",
        )
    foreign = sorted(
        p.name for p in root.iterdir() if p.name not in _FILE_STORE_ENTRIES
    )
    if foreign:
        raise ConfigurationError(
            f"{root} holds more than a store ({', '.join(foreign)}); nothing "
            "deleted: move those out, or delete the folder yourself"
        )
    busy = running_group_members(root)
    if busy:
        raise ConfigurationError(
            f"{root} is in use by running projection members ({', '.join(busy)}); "
            "stop them (`projections run`), then drop it again"
        )
    topics = sorted(p.stem for p in (root / "log" / "topics").glob("*.json"))
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    what = f"{root} ({size:,} bytes: topics {', '.join(topics) or 'none'}"
    what += ", read models)" if (root / "read_models.sqlite").exists() else ")"
    if not dry_run:
        shutil.rmtree(root)
    return FileStore(what=what)
