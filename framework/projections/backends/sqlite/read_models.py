"""Read models in SQLite (stdlib): document tables and checkpoints in one transaction.

The database runs in WAL mode, so queries read a consistent snapshot while a runner
writes, and a rebuild's swap is one transaction: a query sees the old generation or
the new one, never a half-built one. Several runner processes may share the file:
each batch takes SQLite's write lock for its whole transaction, so concurrent members
cannot lose each other's updates.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from framework.errors import ProjectionError
from framework.files import make_dirs
from framework.projections.backends.base import BaseReadModelStore
from framework.projections.backends.sqlite.documents import DocumentTable
from framework.projections.backends.sqlite.schema import (
    RECORD_FAILURE,
    create_schema,
    table_name,
    table_prefix,
)
from framework.projections.backends.sqlite.transaction import SQLiteTransaction
from framework.projections.errors import UnknownProjectionError, UnknownTableError
from framework.projections.ports import (
    Document,
    Documents,
    ParkedEvent,
    ProjectionFailure,
    ProjectionState,
    Transaction,
)


class SQLiteReadModelStore(BaseReadModelStore):
    """A ``ReadModelStore`` in one SQLite file, shared by every process using it."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        if str(path) == ":memory:" or not str(path):
            raise ProjectionError(
                "SQLiteReadModelStore needs a file path (several connections share "
                "it); use MemoryReadModelStore for a store in memory"
            )
        self.path = str(path)
        make_dirs(Path(self.path).parent)
        self._busy_timeout = busy_timeout
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._writer = self._connect()
        create_schema(self._writer)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts; a power cut may roll back the last
        # transactions, read model and checkpoint together, which are then replayed.
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """An immediate transaction on the writer connection: committed at the end
        of the block, rolled back if it raises."""
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise

    def _reader(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    # -- lifecycle of a projection -------------------------------------------

    def ensure(
        self, name: str, version: int, tables: tuple[str, ...]
    ) -> ProjectionState:
        with self._writing():
            row = self._writer.execute(
                "SELECT version, generation, building FROM fw_projections "
                "WHERE name = ?",
                (name,),
            ).fetchone()
            if row is None:
                self._writer.execute(
                    "INSERT INTO fw_projections (name, version, generation) "
                    "VALUES (?, ?, 1)",
                    (name, version),
                )
                row = (version, 1, None)
            self._create_tables(name, row[1], tables)
            if row[2] is not None:
                self._create_tables(name, row[2], tables)
        return ProjectionState(
            name=name, version=row[0], generation=row[1], building=row[2]
        )

    def _create_tables(
        self, name: str, generation: int, tables: tuple[str, ...]
    ) -> None:
        for table in tables:
            self._writer.execute(
                f"CREATE TABLE IF NOT EXISTS {table_name(name, generation, table)} "
                "(key TEXT PRIMARY KEY, doc BLOB NOT NULL) WITHOUT ROWID"
            )

    def _drop_generation(self, name: str, generation: int) -> None:
        rows = self._writer.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        ).fetchall()
        prefix = table_prefix(name, generation)
        for (table,) in rows:
            if table.startswith(prefix):
                self._writer.execute(f'DROP TABLE "{table}"')
        for sql in (
            "DELETE FROM fw_checkpoints WHERE name = ? AND generation = ?",
            "DELETE FROM fw_parked WHERE name = ? AND generation = ?",
        ):
            self._writer.execute(sql, (name, generation))

    def state(self, name: str) -> ProjectionState | None:
        row = (
            self._reader()
            .execute(
                "SELECT version, generation, building FROM fw_projections "
                "WHERE name = ?",
                (name,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return ProjectionState(
            name=name, version=row[0], generation=row[1], building=row[2]
        )

    def checkpoints(self, name: str, generation: int) -> dict[int, int]:
        rows = (
            self._reader()
            .execute(
                'SELECT partition, "offset" FROM fw_checkpoints '
                'WHERE name = ? AND generation = ? AND "offset" >= 0',
                (name, generation),
            )
            .fetchall()
        )
        return dict(rows)

    @contextmanager
    def transaction(self, name: str, generation: int) -> Iterator[Transaction]:
        with self._writing():
            transaction = SQLiteTransaction(self._writer, name, generation)
            yield transaction
            transaction.flush()

    def table(self, name: str, table: str) -> Documents:
        if self.state(name) is None:
            raise UnknownProjectionError(name, self.projection_names())
        return _SnapshotTable(self, name, table)

    def tables(self, name: str, generation: int) -> list[str]:
        """The document tables of a generation."""
        prefix = table_prefix(name, generation)
        rows = (
            self._reader()
            .execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND substr(name, 1, ?) = ?",
                (len(prefix), prefix),
            )
            .fetchall()
        )
        return sorted(row[0][len(prefix) :] for row in rows)

    def projection_names(self) -> list[str]:
        rows = (
            self._reader()
            .execute("SELECT name FROM fw_projections ORDER BY name")
            .fetchall()
        )
        return [row[0] for row in rows]

    # -- rebuilds and resets ---------------------------------------------------

    def begin_rebuild(self, name: str, tables: tuple[str, ...]) -> int:
        with self._writing():
            generation, building = self._writer.execute(
                "SELECT generation, building FROM fw_projections WHERE name = ?",
                (name,),
            ).fetchone()
            if building is None:
                building = generation + 1
                self._drop_generation(name, building)
                self._writer.execute(
                    "UPDATE fw_projections SET building = ? WHERE name = ?",
                    (building, name),
                )
            self._create_tables(name, building, tables)
        return int(building)

    def finish_rebuild(self, name: str, generation: int, version: int) -> None:
        with self._writing():
            (old,) = self._writer.execute(
                "SELECT generation FROM fw_projections WHERE name = ?", (name,)
            ).fetchone()
            self._writer.execute(
                "UPDATE fw_projections SET generation = ?, building = NULL, "
                "version = ? WHERE name = ?",
                (generation, version, name),
            )
            self._drop_generation(name, old)

    def reset(self, name: str, tables: tuple[str, ...], version: int) -> None:
        with self._writing():
            row = self._writer.execute(
                "SELECT generation, building FROM fw_projections WHERE name = ?",
                (name,),
            ).fetchone()
            if row is not None:
                for generation in row:
                    if generation is not None:
                        self._drop_generation(name, generation)
                self._writer.execute(
                    "UPDATE fw_projections SET building = NULL, version = ? "
                    "WHERE name = ?",
                    (version, name),
                )
                self._create_tables(name, row[0], tables)

    # -- dead letters ------------------------------------------------------------

    def parked(self, name: str, generation: int) -> list[ParkedEvent]:
        rows = (
            self._reader()
            .execute(
                'SELECT partition, "offset", stream_id, event_name, error, attempts, '
                "parked_at_ms FROM fw_parked WHERE name = ? AND generation = ? "
                'ORDER BY partition, "offset"',
                (name, generation),
            )
            .fetchall()
        )
        return [ParkedEvent.from_row(r) for r in rows]

    # -- failures ----------------------------------------------------------------

    def record_failure(
        self, name: str, generation: int, failure: ProjectionFailure
    ) -> None:
        with self._write_lock:
            self._writer.execute(
                RECORD_FAILURE,
                (name, generation, failure.partition, failure.to_json().decode()),
            )

    def failures(self, name: str, generation: int) -> list[ProjectionFailure]:
        rows = (
            self._reader()
            .execute(
                "SELECT failure FROM fw_checkpoints WHERE name = ? AND generation = ? "
                "AND json_extract(failure, '$.offset') > \"offset\" "
                "ORDER BY partition",
                (name, generation),
            )
            .fetchall()
        )
        return [ProjectionFailure.from_json(row[0]) for row in rows]

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()


class _SnapshotTable:
    """Reads of the generation queries see, each in one read transaction, so that a
    concurrent swap shows the old generation or the new one, never a mix."""

    def __init__(self, store: SQLiteReadModelStore, name: str, table: str) -> None:
        self._store = store
        self._projection = name
        self._table = table

    @contextmanager
    def _snapshot(self) -> Iterator[DocumentTable]:
        connection = self._store._reader()
        connection.execute("BEGIN")
        try:
            (generation,) = connection.execute(
                "SELECT generation FROM fw_projections WHERE name = ?",
                (self._projection,),
            ).fetchone()
            try:
                yield DocumentTable(
                    connection, table_name(self._projection, generation, self._table)
                )
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                known = self._store.tables(self._projection, generation)
                raise UnknownTableError(self._projection, self._table, known) from None
        finally:
            connection.execute("COMMIT")

    def get(self, key: str) -> Document | None:
        with self._snapshot() as table:
            return table.get(key)

    def items(self) -> Iterator[tuple[str, Document]]:
        with self._snapshot() as table:
            found = list(table.items())
        return iter(found)

    def count(self) -> int:
        with self._snapshot() as table:
            return table.count()
