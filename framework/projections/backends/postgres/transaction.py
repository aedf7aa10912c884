"""One atomic change of a PostgreSQL read model and its checkpoints, on a cursor
inside a transaction (the store's own, or an append's)."""

from __future__ import annotations

from framework.postgres.database import Cursor
from framework.projections.backends.postgres.documents import BufferedTable
from framework.projections.backends.postgres.statements import ReadModelStatements
from framework.projections.ports import ParkedEvent


class PostgresTransaction:
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
        self._statements = statements
        self._cursor = cursor
        self._name = name
        self._id = projection_id
        self.generation = generation
        self._tables: dict[str, BufferedTable] = {}
        #: Partition -> offset advanced to in this transaction.
        self.checkpoints: dict[int, int] = {}
        self._parked: list[ParkedEvent] = []
        self._unparked: list[tuple[int, int]] = []

    def table(self, name: str) -> BufferedTable:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = BufferedTable(
                self._cursor,
                self._statements.documents(self._id, self.generation, name),
            )
        return table

    def checkpoint(self, partition: int) -> int:
        row = self._cursor.execute(
            self._statements.checkpoint, (self._name, self.generation, partition)
        ).fetchone()
        return -1 if row is None else int(row[0])

    def advance(self, partition: int, offset: int) -> None:
        self.checkpoints[partition] = offset

    def park(self, parked: ParkedEvent) -> None:
        self._parked.append(parked)

    def unpark(self, partition: int, offset: int) -> None:
        self._unparked.append((partition, offset))

    def flush(self) -> None:
        """Write everything buffered (still inside the transaction)."""
        for table in self._tables.values():
            table.flush()
        statements, cur = self._statements, self._cursor
        key = (self._name, self.generation)
        if self.checkpoints:
            cur.execute(
                statements.advance,
                (*key, list(self.checkpoints), list(self.checkpoints.values())),
            )
        if self._parked:
            cur.executemany(
                statements.park,
                [
                    (
                        *key,
                        e.partition,
                        e.offset,
                        e.stream_id,
                        e.name,
                        e.error,
                        e.attempts,
                        e.parked_at_ms,
                    )
                    for e in self._parked
                ],
            )
        if self._unparked:
            cur.executemany(
                statements.unpark, [(*key, p, o) for p, o in self._unparked]
            )
