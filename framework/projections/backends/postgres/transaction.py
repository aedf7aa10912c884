"""One atomic change of a PostgreSQL read model and its checkpoints, on a cursor
inside a transaction (the store's own, or an append's)."""

from __future__ import annotations

from framework.postgres.database import Cursor
from framework.projections.backends.base import BufferedTransaction
from framework.projections.backends.postgres.documents import BufferedTable
from framework.projections.backends.postgres.statements import ReadModelStatements


class PostgresTransaction(BufferedTransaction[BufferedTable]):
    """One atomic change of a projection's read model and checkpoints, on a
    connection inside a transaction (its own, or an append's)."""

    def __init__(
        self,
        statements: ReadModelStatements,
        cursor: Cursor,
        name: str,
        projection_id: int,
        generation: int,
    ) -> None:
        super().__init__(name, generation)
        self._statements = statements
        self._cursor = cursor
        self._id = projection_id

    def _open(self, table: str) -> BufferedTable:
        return BufferedTable(
            self._cursor, self._statements.documents(self._id, self.generation, table)
        )

    def checkpoint(self, partition: int) -> int:
        row = self._cursor.execute(
            self._statements.checkpoint, (self.name, self.generation, partition)
        ).fetchone()
        return -1 if row is None else int(row[0])

    def flush(self) -> None:
        """Write everything buffered (still inside the transaction)."""
        for table in self.tables.values():
            table.flush()
        statements, cur = self._statements, self._cursor
        if self.checkpoints:
            cur.execute(
                statements.advance,
                (
                    self.name,
                    self.generation,
                    list(self.checkpoints),
                    list(self.checkpoints.values()),
                ),
            )
        if self.parked:
            cur.executemany(statements.park, self.parked_rows())
        if self.unparked:
            cur.executemany(statements.unpark, self.unparked_rows())
