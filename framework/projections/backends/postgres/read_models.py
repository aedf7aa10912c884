"""Read models in PostgreSQL, beside the events: document tables and checkpoints in
one transaction, in the event store's schema.

A projection's documents live in one table per (projection, generation, table),
``rm_<id>_<generation>_<table>`` with ``jsonb`` documents; its state, checkpoints
and dead letters in the shared ``projections``, ``projection_checkpoints`` and
``projection_parked`` tables (migration 2). Every writing transaction of a
projection first takes a transaction-level advisory lock on it, so that members
writing documents that several partitions share cannot lose each other's updates
(as SQLite's write lock does for the embedded store). Writes are buffered per
transaction and flushed at its end, one ``INSERT ... ON CONFLICT`` from ``unnest``
per table. Query reads are single statements on the live generation: a rebuild's
swap drops the old generation's tables in the transaction that moves
``generation``, so a read sees the old table or, after a retry, the new one, never
a half-built one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from psycopg import sql

from framework.errors import ProjectionError
from framework.postgres.database import Cursor, Database
from framework.postgres.errors import DatabaseError
from framework.postgres.notify import Notifier
from framework.postgres.url import PostgresURL
from framework.projections.backends.base import BaseReadModelStore
from framework.projections.backends.postgres.announcements import Announcements
from framework.projections.backends.postgres.documents import DocumentTable
from framework.projections.backends.postgres.inline import InlineProjection
from framework.projections.backends.postgres.statements import (
    ReadModelStatements,
    lock_key,
    table_name,
)
from framework.projections.backends.postgres.transaction import PostgresTransaction
from framework.projections.errors import UnknownProjectionError, UnknownTableError
from framework.projections.ports import (
    Document,
    Documents,
    InlineRunner,
    ParkedEvent,
    ProjectionFailure,
    ProjectionState,
    Transaction,
)
from framework.store.backends.postgres import PostgresEventStore

logger = logging.getLogger("framework.projections")

#: SQLSTATE undefined_table: a generation swapped out under a query.
_UNDEFINED_TABLE = "42P01"


class PostgresReadModelStore(BaseReadModelStore):
    """A ``ReadModelStore`` in a PostgreSQL schema; thread- and process-safe.

    Give it the event store's ``Database`` to share its pool (and to allow inline
    projections inside appends), or a URL to open one of its own. Committed
    checkpoints are announced with NOTIFY (unless the URL says ``notify=0``), so
    that pull queries in any process wake at once instead of polling.
    """

    def __init__(
        self,
        url: PostgresURL | str | Database | None = None,
        *,
        idle_timeout: float = 10.0,
    ) -> None:
        #: Seconds a transaction holding a projection's lock may wait on its
        #: client before the server ends the session: a hung (stopped, not dead)
        #: process cannot block the projection's other writers for longer.
        self.idle_timeout = idle_timeout
        self._owns_db = not isinstance(url, Database)
        self.db = url if isinstance(url, Database) else Database(url)
        self.schema = self.db.schema
        self._ids: dict[str, int] = {}
        self._live: dict[str, int] = {}
        self.channel = f"framework:{self.schema}:projections"[:63]
        self._notifier = (
            Notifier(self.db.url, self.channel, linger=0.0)
            if self.db.url.notify
            else None
        )
        self.announcements = Announcements(self.db, self.channel)
        self.statements = ReadModelStatements(self.db)

    # -- lifecycle of a projection -------------------------------------------

    def ensure(
        self, name: str, version: int, tables: tuple[str, ...]
    ) -> ProjectionState:
        with self._locked(name) as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (name, version, generation) VALUES (%s, %s, 1) "
                    "ON CONFLICT (name) DO NOTHING"
                ).format(self.db.table("projections")),
                (name, version),
            )
            pid, stored_version, generation, building = self._row(cur, name)
            self._create_tables(cur, pid, generation, tables)
            if building is not None:
                self._create_tables(cur, pid, building, tables)
        return ProjectionState(
            name=name, version=stored_version, generation=generation, building=building
        )

    @contextmanager
    def _locked(self, name: str) -> Iterator[Cursor]:
        """A transaction holding the projection's lock (DDL and swaps)."""
        with self.db.connection() as conn, conn.transaction():
            cur = conn.reused_cursor()
            self.lock(cur, name)
            yield cur

    def _row(self, cur: Cursor, name: str) -> tuple[int, int, int, int | None]:
        row = cur.execute(self.statements.state, (name,)).fetchone()
        if row is None:
            raise ProjectionError(
                f"projection {name!r} has no read model in schema {self.schema!r} "
                "yet; run it (or register it with app.project) first"
            )
        pid, version, generation, building = row
        self._ids[name] = pid
        return pid, version, generation, building

    def _create_tables(
        self, cur: Cursor, pid: int, generation: int, tables: tuple[str, ...]
    ) -> None:
        for table in tables:
            cur.execute(self.statements.documents(pid, generation, table).create)

    def _drop_generation(self, cur: Cursor, name: str, generation: int) -> None:
        pid = self._ids[name]
        rows = cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s "
            "AND tablename LIKE %s",
            (self.schema, f"rm\\_{pid}\\_{generation}\\_%"),
        ).fetchall()
        for (table,) in rows:
            cur.execute(sql.SQL("DROP TABLE {}").format(self.db.table(table)))
        for target in ("projection_checkpoints", "projection_parked"):
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE name = %s AND generation = %s").format(
                    self.db.table(target)
                ),
                (name, generation),
            )

    def state(self, name: str) -> ProjectionState | None:
        with self.db.cursor() as cur:
            row = cur.execute(self.statements.state, (name,)).fetchone()
        if row is None:
            return None
        pid, version, generation, building = row
        self._ids[name] = pid
        self._live[name] = generation
        return ProjectionState(
            name=name, version=version, generation=generation, building=building
        )

    def checkpoints(self, name: str, generation: int) -> dict[int, int]:
        with self.db.cursor() as cur:
            rows = cur.execute(
                self.statements.checkpoints, (name, generation)
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    # -- transactions --------------------------------------------------------------

    def _id(self, name: str) -> int:
        found = self._ids.get(name)
        if found is None:
            if self.state(name) is None:
                raise ProjectionError(
                    f"projection {name!r} has no read model in schema "
                    f"{self.schema!r}; ensure() it first"
                )
            found = self._ids[name]
        return found

    @contextmanager
    def transaction(self, name: str, generation: int) -> Iterator[Transaction]:
        pid = self._id(name)
        with self.db.connection() as conn:
            with conn.transaction():
                cur = conn.reused_cursor()
                transaction = self.bind(cur, name, pid, generation)
                yield transaction
                transaction.flush()
            self.announce(name, generation, transaction.checkpoints)

    def bind(
        self, cursor: Cursor, name: str, projection_id: int, generation: int
    ) -> PostgresTransaction:
        """A transaction of the projection on ``cursor``'s open transaction, after
        taking the projection's lock there; the caller flushes and commits."""
        self.lock(cursor, name)
        return PostgresTransaction(
            self.statements, cursor, name, projection_id, generation
        )

    def lock(self, cursor: Cursor, name: str) -> None:
        """Take the projection's write lock in ``cursor``'s transaction (held to
        its end)."""
        cursor.execute(
            self.statements.lock,
            (f"{int(self.idle_timeout * 1000)}ms", *lock_key(self.schema, name)),
        )

    def attach_inline(self, store: object, runner: InlineRunner) -> bool:
        """Apply ``runner``'s projection inside every append of ``store``, if it
        is a PostgreSQL store on this database; whether it is."""
        if not isinstance(store, PostgresEventStore):
            return False
        theirs, ours = store.db.url, self.db.url
        if (theirs.host, theirs.port, theirs.dbname) != (
            ours.host,
            ours.port,
            ours.dbname,
        ):
            return False
        store.add_hook(InlineProjection(self, store, runner))
        return True

    def announce(
        self, name: str, generation: int, checkpoints: Mapping[int, int]
    ) -> None:
        """NOTIFY committed checkpoints (after the commit; a hint for waiters)."""
        if self._notifier is None:
            return
        topic = f"{name}:{generation}"
        for partition, offset in checkpoints.items():
            self._notifier.publish(topic, partition, offset)

    # -- queries -----------------------------------------------------------------

    def table(self, name: str, table: str) -> Documents:
        if name not in self._live and self.state(name) is None:
            raise UnknownProjectionError(name, self.projection_names())
        return _LiveTable(self, name, table)

    def tables(self, name: str, generation: int) -> list[str]:
        """The document tables of a generation."""
        prefix = table_name(self._id(name), generation, "")
        with self.db.cursor() as cur:
            rows = cur.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s "
                "AND starts_with(tablename, %s)",
                (self.schema, prefix),
            ).fetchall()
        return sorted(row[0][len(prefix) :] for row in rows)

    def projection_names(self) -> list[str]:
        with self.db.cursor() as cur:
            rows = cur.execute(
                sql.SQL("SELECT name FROM {} ORDER BY name").format(
                    self.db.table("projections")
                )
            ).fetchall()
        return [row[0] for row in rows]

    def _read(self, name: str, table: str, read: str, *args: Any) -> Any:
        """One statement on the live generation's table; after a swap dropped
        the generation this process knew, look it up again and retry."""
        generation = 0
        for _ in range(3):
            live = self._live.get(name)
            if live is None:
                state = self.state(name)
                if state is None:
                    raise UnknownProjectionError(name, self.projection_names())
                live = state.generation
            generation = live
            statements = self.statements.documents(self._ids[name], generation, table)
            try:
                with self.db.cursor() as cur:
                    return getattr(DocumentTable(cur, statements), read)(*args)
            except DatabaseError as exc:
                if exc.sqlstate != _UNDEFINED_TABLE:
                    raise
                self._live.pop(name, None)
        raise UnknownTableError(name, table, self.tables(name, generation))

    # -- rebuilds and resets ---------------------------------------------------

    def begin_rebuild(self, name: str, tables: tuple[str, ...]) -> int:
        with self._locked(name) as cur:
            pid, _, generation, building = self._row(cur, name)
            if building is None:
                building = generation + 1
                self._drop_generation(cur, name, building)
                cur.execute(
                    sql.SQL("UPDATE {} SET building = %s WHERE name = %s").format(
                        self.db.table("projections")
                    ),
                    (building, name),
                )
            self._create_tables(cur, pid, building, tables)
        return int(building)

    def finish_rebuild(self, name: str, generation: int, version: int) -> None:
        with self._locked(name) as cur:
            _, _, old, _ = self._row(cur, name)
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET generation = %s, building = NULL, version = %s "
                    "WHERE name = %s"
                ).format(self.db.table("projections")),
                (generation, version, name),
            )
            self._drop_generation(cur, name, old)
        self._live[name] = generation

    def reset(self, name: str, tables: tuple[str, ...], version: int) -> None:
        with self._locked(name) as cur:
            if cur.execute(self.statements.state, (name,)).fetchone() is None:
                return
            pid, _, generation, building = self._row(cur, name)
            for dropped in (generation, building):
                if dropped is not None:
                    self._drop_generation(cur, name, dropped)
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET building = NULL, version = %s WHERE name = %s"
                ).format(self.db.table("projections")),
                (version, name),
            )
            self._create_tables(cur, pid, generation, tables)

    # -- dead letters ------------------------------------------------------------

    def parked(self, name: str, generation: int) -> list[ParkedEvent]:
        with self.db.cursor() as cur:
            rows = cur.execute(self.statements.parked, (name, generation)).fetchall()
        return [ParkedEvent.from_row(r) for r in rows]

    # -- failures ----------------------------------------------------------------

    def record_failure(
        self, name: str, generation: int, failure: ProjectionFailure
    ) -> None:
        with self.db.cursor() as cur:
            cur.execute(
                self.statements.record_failure,
                (name, generation, failure.partition, failure.to_json().decode()),
            )

    def failures(self, name: str, generation: int) -> list[ProjectionFailure]:
        with self.db.cursor() as cur:
            rows = cur.execute(self.statements.failures, (name, generation)).fetchall()
        return [ProjectionFailure.from_json(row[0]) for row in rows]

    # -- push --------------------------------------------------------------------

    def wait_for_checkpoints(
        self, name: str, generation: int, position: Mapping[int, int], timeout: float
    ) -> bool:
        """Block until checkpoints announced (by any process) for ``name``'s
        ``generation`` cover ``position``; ``False`` after ``timeout``. A hint:
        callers check the checkpoints themselves."""
        return self.announcements.wait_for(f"{name}:{generation}", position, timeout)

    def close(self) -> None:
        """Stop listening, send pending announcements, and close the pool if this
        store opened it. Idempotent."""
        self.announcements.close()
        if self._notifier is not None:
            self._notifier.close()
        if self._owns_db:
            self.db.close()


class _LiveTable:
    """Reads of the generation queries see; each read is one statement."""

    def __init__(self, store: PostgresReadModelStore, name: str, table: str) -> None:
        self._store = store
        self._projection = name
        self._table = table

    def get(self, key: str) -> Document | None:
        return self._store._read(self._projection, self._table, "get", key)

    def items(self) -> Iterator[tuple[str, Document]]:
        found: Iterator[tuple[str, Document]] = self._store._read(
            self._projection, self._table, "items"
        )
        return found

    def count(self) -> int:
        return int(self._store._read(self._projection, self._table, "count"))


def open_postgres_read_models(url: str, store: object) -> PostgresReadModelStore:
    """The ``READ_MODEL_OPENERS`` entry: read models in the event store's own
    database and pool when ``store`` is a ``PostgresEventStore``, else in the
    schema ``url`` names."""
    if isinstance(store, PostgresEventStore):
        return PostgresReadModelStore(store.db)
    return PostgresReadModelStore(url)
