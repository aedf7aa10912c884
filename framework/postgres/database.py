"""``Database``: one schema on one server, reached through a connection pool.

Opening it checks the server with one direct connection (so a wrong host or
password fails at once with a clear message, not after a pool timeout), applies
the missing migrations, then starts the pool. Both backends share this object.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.pq import ConnStatus, TransactionStatus
from psycopg.pq.abc import PGresult

from framework.postgres.connection import (
    Connection,
    Cursor,
    all_prepared_rows,
    fetchall_on,
    fetchone_on,
    first_prepared_row,
    run_prepared,
)
from framework.postgres.errors import translate, translated
from framework.postgres.migration import current_versions, migrate, registered
from framework.postgres.notify import Notifier
from framework.postgres.prepared import Prepared
from framework.postgres.url import PostgresURL, parse_url

IDLE = TransactionStatus.IDLE
CONNECTION_OK = ConnStatus.OK

logger = logging.getLogger("framework.postgres")

__all__ = [
    "Connection",
    "Cursor",
    "Database",
    "fetchall_on",
    "fetchone_on",
    "migrate_database",
    "migration_status",
]

T = TypeVar("T")


class Database:
    """A pool of autocommit connections to ``url``'s schema, migrated on open, and
    one more connection beside it for short statements (``cursor``).

    Thread-safe. Every connection handed out by ``connection()`` runs its block
    inside ``translated``, so only framework errors come out of it.
    """

    def __init__(self, url: PostgresURL | str | None = None) -> None:
        self.url = url if isinstance(url, PostgresURL) else parse_url(url)
        self.schema = self.url.schema
        with translated(self.url):
            with psycopg.connect(self.url.conninfo, autocommit=True) as conn:
                migrate(conn, self.schema)
            self.pool: psycopg_pool.ConnectionPool[Connection] = (
                psycopg_pool.ConnectionPool(
                    self.url.conninfo,
                    connection_class=Connection,
                    min_size=self.url.pool_min,
                    max_size=self.url.pool_max,
                    kwargs={"autocommit": True},
                    timeout=self.url.connect_timeout,
                    name=f"framework:{self.schema}",
                    open=False,
                )
            )
            self.pool.open(wait=False)
        self.notifier: Notifier | None = (
            Notifier(self.url, self.channel) if self.url.notify else None
        )
        self._closed = False
        self._lock = threading.Lock()
        #: The connection for short statements beside the pool (see ``cursor``),
        #: and who is using it.
        self._hot: Connection | None = None
        self._hot_lock = threading.Lock()

    @property
    def channel(self) -> str:
        """The NOTIFY channel appends announce themselves on."""
        return f"framework:{self.schema}"[:63]

    def table(self, name: str) -> sql.Identifier:
        """A schema-qualified table name, quoted by psycopg."""
        return sql.Identifier(self.schema, name)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection in autocommit mode; driver errors translated.

        Taken and given back without the pool's ``connection()`` wrapper, whose
        commit-on-exit has nothing to do in autocommit. The pool still rolls back
        a transaction left open and replaces a connection that broke.
        """
        with translated(self.url):
            conn = self.pool.getconn()
            try:
                yield conn
            finally:
                self.pool.putconn(conn)

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        """The reused cursor of a connection, for statements whose results are
        fetched before the block ends.

        A caller finding it free gets the database's own short-statement connection,
        opened on first use beside the pool (so it never takes a pooled connection
        away from anyone): the pool's checkout and return cost a single-event append
        a fifth of its client time. Others use the pool. If that connection breaks,
        or is left inside a transaction, it is closed and the next use opens another.
        """
        if not self._hot_lock.acquire(blocking=False):
            with translated(self.url):
                conn = self.pool.getconn()
                try:
                    yield conn.reused_cursor()
                finally:
                    self.pool.putconn(conn)
            return
        try:
            with translated(self.url):
                conn = self._hot_connection()
                try:
                    yield conn.reused_cursor()
                finally:
                    self._check_hot(conn)
        finally:
            self._hot_lock.release()

    def _hot_connection(self) -> Connection:
        """The short-statement connection, opened if need be (``_hot_lock`` held)."""
        if self._hot is None:
            if self._closed:
                raise psycopg_pool.PoolClosed("the database is closed")
            self._hot = Connection.connect(self.url.conninfo, autocommit=True)
        return self._hot

    def _check_hot(self, conn: Connection) -> None:
        """After a use: a connection that broke, or was left inside a transaction,
        is closed, and the next use opens another (``_hot_lock`` held)."""
        pgconn = conn.pgconn
        # libpq's own status codes, not ``conn.info``, which builds an enum per call.
        if (
            conn.broken
            or pgconn.status != CONNECTION_OK
            or pgconn.transaction_status != IDLE
        ):
            self._hot = None
            conn.close()

    def fetchone(
        self, query: bytes, params: Mapping[str, Any] | Sequence[Any]
    ) -> tuple[Any, ...] | None:
        """Run one statement on a ``cursor`` and return its first row. psycopg
        prepares nothing on the framework's connections: a statement run often
        is a ``Prepared`` one, for ``fetchone_prepared``."""
        with self.cursor() as cur:
            return cur.execute(query, params).fetchone()

    def fetchone_prepared(
        self, prepared: Prepared, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """``fetchone`` of a ``Prepared`` statement, run directly on libpq (a fifth
        of the client time of a single-event append through the cursor, whose
        generator context managers alone cost a tenth): on the short-statement
        connection, or a pooled one when that one is busy."""
        return self._run_fast(prepared, params, first_prepared_row)

    def fetchall_prepared(
        self, prepared: Prepared, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """``fetchone_prepared`` for every row (loading a stream, in binary)."""
        return self._run_fast(prepared, params, all_prepared_rows)

    def _run_fast(
        self,
        prepared: Prepared,
        params: Mapping[str, Any],
        rows: Callable[[Connection, Prepared, PGresult], T],
    ) -> T:
        if not self._hot_lock.acquire(blocking=False):
            with self.connection() as conn:
                return rows(conn, prepared, run_prepared(conn, prepared, params))
        try:
            conn = self._hot_connection()
            try:
                return rows(conn, prepared, run_prepared(conn, prepared, params))
            finally:
                self._check_hot(conn)
        except (psycopg.Error, psycopg_pool.PoolClosed) as exc:
            raise translate(self.url, exc) from exc
        finally:
            self._hot_lock.release()

    def close(self) -> None:
        """Flush pending notifications and close the pool. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self.notifier is not None:
            self.notifier.close()
        with self._hot_lock:
            hot, self._hot = self._hot, None
        if hot is not None:
            hot.close()
        self.pool.close()


def migrate_database(
    url: PostgresURL | str | None = None,
) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Apply missing migrations to ``url``'s schema without opening a pool.

    Returns (each subsystem's migrations applied now, each subsystem's version
    afterwards). Raises ``StoreConnectionError`` if the server cannot be reached.
    """
    parsed = url if isinstance(url, PostgresURL) else parse_url(url)
    with (
        translated(parsed),
        psycopg.connect(parsed.conninfo, autocommit=True) as conn,
    ):
        applied = migrate(conn, parsed.schema)
        versions = current_versions(conn, parsed.schema)
    return applied, versions


def migration_status(
    url: PostgresURL | str | None = None,
) -> list[tuple[str, int, int]]:
    """(subsystem, version applied, latest version) of ``url``'s schema, in the
    order the migrations run; changes nothing."""
    parsed = url if isinstance(url, PostgresURL) else parse_url(url)
    with (
        translated(parsed),
        psycopg.connect(parsed.conninfo, autocommit=True) as conn,
    ):
        versions = current_versions(conn, parsed.schema)
    return [(s.subsystem, versions[s.subsystem], s.latest) for s in registered()]
