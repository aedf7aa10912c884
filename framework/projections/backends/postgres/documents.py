"""Documents of one PostgreSQL read-model table on a cursor: plain reads, and the
buffered writes of a transaction."""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from framework.postgres.database import Cursor
from framework.projections.backends.postgres.statements import DocumentStatements
from framework.projections.ports import Document

#: Marks a key deleted inside a transaction's buffer.
_DELETED = object()


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


class BufferedTable(DocumentTable):
    """Writes are kept until the transaction ends, then flushed with one statement
    per kind; a key written many times in a batch is written once."""

    def __init__(self, cursor: Cursor, statements: DocumentStatements) -> None:
        super().__init__(cursor, statements)
        self.pending: dict[str, object] = {}

    def get(self, key: str) -> Document | None:
        found = self.pending.get(key)
        if found is None:
            return super().get(key)
        # The buffer keeps the caller's object: hand out a copy, as a read from
        # the database would be.
        return None if found is _DELETED else orjson.loads(orjson.dumps(found))

    def put(self, key: str, document: Document) -> None:
        # Encoded now, so that later changes to ``document`` do not leak in.
        self.pending[key] = orjson.loads(orjson.dumps(document))

    def delete(self, key: str) -> None:
        self.pending[key] = _DELETED

    def flush(self) -> None:
        if not self.pending:
            return
        keys: list[str] = []
        docs: list[str] = []
        deletes: list[str] = []
        for key, doc in self.pending.items():
            if doc is _DELETED:
                deletes.append(key)
            else:
                keys.append(key)
                docs.append(orjson.dumps(doc).decode())
        if keys:
            self._cursor.execute(self._q.put, (keys, docs))
        if deletes:
            self._cursor.execute(self._q.delete, (deletes,))
        self.pending.clear()

    def items(self) -> Iterator[tuple[str, Document]]:
        self.flush()
        return super().items()

    def count(self) -> int:
        self.flush()
        return super().count()
