"""Documents of one PostgreSQL read-model table on a cursor: plain reads, and the
buffered writes of a transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import orjson

from framework.postgres.database import Cursor
from framework.projections.backends.base import DELETED, BufferedDocuments
from framework.projections.backends.postgres.statements import DocumentStatements
from framework.projections.ports import Document


class DocumentTable:
    """Reads of one document table on one cursor."""

    def __init__(self, cursor: Cursor, statements: DocumentStatements) -> None:
        self._cursor = cursor
        self._q = statements

    def get(self, key: str) -> Document | None:
        row = self._cursor.execute(self._q.get, (key,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def items(self) -> Iterator[tuple[str, Document]]:
        rows = self._cursor.execute(self._q.items).fetchall()
        return iter([(key, orjson.loads(doc)) for key, doc in rows])

    def count(self) -> int:
        row = self._cursor.execute(self._q.count).fetchone()
        return int(row[0]) if row else 0


class BufferedTable(BufferedDocuments):
    """Flushed with one statement per kind, from ``unnest``."""

    def __init__(self, cursor: Cursor, statements: DocumentStatements) -> None:
        super().__init__()
        self._cursor = cursor
        self._q = statements
        self._table = DocumentTable(cursor, statements)

    def _committed(self, key: str) -> Document | None:
        return self._table.get(key)

    def flush(self) -> None:
        if not self.pending:
            return
        keys: list[str] = []
        docs: list[str] = []
        deletes: list[str] = []
        for key, doc in self.pending.items():
            if doc is DELETED:
                deletes.append(key)
            else:
                keys.append(key)
                docs.append(cast("bytes", doc).decode())
        if keys:
            self._cursor.execute(self._q.put, (keys, docs))
        if deletes:
            self._cursor.execute(self._q.delete, (deletes,))
        self.pending.clear()

    def items(self) -> Iterator[tuple[str, Document]]:
        self.flush()
        return self._table.items()

    def count(self) -> int:
        self.flush()
        return self._table.count()
