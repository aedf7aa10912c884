"""Documents of one SQLite read-model table on a connection: plain reads, and the
buffered writes of a transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import orjson

from framework.projections.backends.base import DELETED, BufferedDocuments
from framework.projections.ports import Document


class DocumentTable:
    """Reads of one document table on one connection."""

    def __init__(self, connection: sqlite3.Connection, sql_name: str) -> None:
        self._connection = connection
        self._name = sql_name

    def get(self, key: str) -> Document | None:
        row = self._connection.execute(
            f"SELECT doc FROM {self._name} WHERE key = ?",  # noqa: S608
            (key,),
        ).fetchone()
        return None if row is None else orjson.loads(row[0])

    def items(self) -> Iterator[tuple[str, Document]]:
        rows = self._connection.execute(
            f"SELECT key, doc FROM {self._name} ORDER BY key"  # noqa: S608
        ).fetchall()
        for key, doc in rows:
            yield key, orjson.loads(doc)

    def count(self) -> int:
        row = self._connection.execute(
            f"SELECT count(*) FROM {self._name}"  # noqa: S608
        ).fetchone()
        return int(row[0])


class BufferedTable(BufferedDocuments):
    """Flushed with one executemany per kind."""

    def __init__(self, connection: sqlite3.Connection, sql_name: str) -> None:
        super().__init__()
        self._connection = connection
        self._name = sql_name
        self._table = DocumentTable(connection, sql_name)

    def _committed(self, key: str) -> Document | None:
        return self._table.get(key)

    def flush(self) -> None:
        puts = [(k, d) for k, d in self.pending.items() if d is not DELETED]
        deletes = [(k,) for k, d in self.pending.items() if d is DELETED]
        if puts:
            self._connection.executemany(
                f"INSERT OR REPLACE INTO {self._name} (key, doc) VALUES (?, ?)",  # noqa: S608
                puts,
            )
        if deletes:
            self._connection.executemany(
                f"DELETE FROM {self._name} WHERE key = ?",  # noqa: S608
                deletes,
            )
        self.pending.clear()

    def items(self) -> Iterator[tuple[str, Document]]:
        self.flush()
        return self._table.items()

    def count(self) -> int:
        self.flush()
        return self._table.count()
