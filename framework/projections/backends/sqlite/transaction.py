"""One atomic change of an SQLite read model and its checkpoints."""

from __future__ import annotations

import sqlite3

from framework.projections.backends.base import BufferedTransaction
from framework.projections.backends.sqlite.documents import BufferedTable
from framework.projections.backends.sqlite.schema import PARK, UNPARK, table_name


class SQLiteTransaction(BufferedTransaction[BufferedTable]):
    """One atomic change of a projection's read model and checkpoints, on the
    writer connection inside its immediate transaction."""

    def __init__(
        self, connection: sqlite3.Connection, name: str, generation: int
    ) -> None:
        super().__init__(name, generation)
        self._connection = connection

    def _open(self, table: str) -> BufferedTable:
        return BufferedTable(
            self._connection, table_name(self.name, self.generation, table)
        )

    def checkpoint(self, partition: int) -> int:
        row = self._connection.execute(
            'SELECT "offset" FROM fw_checkpoints '
            "WHERE name = ? AND generation = ? AND partition = ?",
            (self.name, self.generation, partition),
        ).fetchone()
        return -1 if row is None else int(row[0])

    def flush(self) -> None:
        for table in self.tables.values():
            table.flush()
        self._connection.executemany(
            "INSERT OR REPLACE INTO fw_checkpoints "
            '(name, generation, partition, "offset") VALUES (?, ?, ?, ?)',
            [(self.name, self.generation, p, o) for p, o in self.checkpoints.items()],
        )
        if self.parked:
            self._connection.executemany(PARK, self.parked_rows())
        if self.unparked:
            self._connection.executemany(UNPARK, self.unparked_rows())
