"""A PostgreSQL sequence as the ``Sequencer`` of an event store that is not on
PostgreSQL (the file store, say): its stamps then order every event of the store
as the sequence handed numbers out, one round trip per append."""

from __future__ import annotations

import threading

import psycopg
from psycopg import sql

from framework.postgres.errors import translated
from framework.postgres.url import PostgresURL, parse_url

#: The sequence, in the URL's schema.
SEQUENCE = "framework_stamps"


class PostgresSequencer:
    """``next_stamp`` is ``nextval`` of ``<schema>.framework_stamps``, created if
    missing. Thread-safe: one connection, used under a lock."""

    def __init__(self, url: PostgresURL | str) -> None:
        self.url = url if isinstance(url, PostgresURL) else parse_url(url)
        self._lock = threading.Lock()
        name = sql.Identifier(self.url.schema, SEQUENCE)
        self._next = (
            sql.SQL("SELECT nextval({}::regclass)")
            .format(sql.Literal(name.as_string(None)))
            .as_bytes(None)
        )
        with translated(self.url):
            self._conn = psycopg.connect(self.url.conninfo, autocommit=True)
            try:
                self._conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self.url.schema)
                    )
                )
                self._conn.execute(
                    sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(name)
                )
            except BaseException:
                self._conn.close()
                raise

    def next_stamp(self) -> int:
        with self._lock, translated(self.url):
            row = self._conn.execute(self._next).fetchone()
        assert row is not None  # nextval always returns one row
        return int(row[0])

    def close(self) -> None:
        """Close the connection. Idempotent."""
        self._conn.close()
