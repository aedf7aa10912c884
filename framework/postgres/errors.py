"""The one place psycopg errors become framework errors.

Every PostgreSQL call runs inside ``translated(url)``; no driver exception reaches
users. Messages name the host and port and never the password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from framework.errors import ConcurrencyError, StoreError
from framework.postgres.url import PostgresURL

# SQLSTATEs where running the same transaction again can succeed.
_TRANSIENT = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "57014",  # query_canceled (statement timeout)
}


class StoreConnectionError(StoreError, ConnectionError):
    """The database could not be reached or the connection broke mid-call.

    Retriable: the server may be restarting. If a write was in flight, it either
    committed whole or not at all; an idempotent retry (same event ids) tells which.
    """

    retriable = True

    def __init__(self, url: PostgresURL, detail: str) -> None:
        self.host = url.host
        self.port = url.port
        self.dbname = url.dbname
        super().__init__(
            f"cannot reach PostgreSQL at {url.host}:{url.port} (database "
            f"{url.dbname!r}, user {url.user!r}): {detail}; check that the server "
            "runs and accepts connections, then try again"
        )


class TransientDatabaseError(StoreError):
    """PostgreSQL aborted the transaction for a reason that passes (a deadlock, a
    serialization failure, a timeout). Nothing was written; try again."""

    retriable = True

    def __init__(self, url: PostgresURL, sqlstate: str, detail: str) -> None:
        self.sqlstate = sqlstate
        super().__init__(
            f"PostgreSQL at {url.host}:{url.port} aborted the transaction "
            f"(SQLSTATE {sqlstate}): {detail}; nothing was written, try again"
        )


class DatabaseError(StoreError):
    """PostgreSQL refused a statement for a reason retrying will not fix."""

    def __init__(self, url: PostgresURL, sqlstate: str, detail: str) -> None:
        self.sqlstate = sqlstate
        super().__init__(
            f"PostgreSQL at {url.host}:{url.port} (schema {url.schema!r}) refused a "
            f"statement (SQLSTATE {sqlstate}): {detail}; if a table is missing, run "
            "`python -m framework db migrate`"
        )


class DuplicateRowError(ConcurrencyError):
    """A unique constraint refused a row: someone stored that stream version or
    event id first. Nothing was written. The event store turns this into a
    ``ConcurrencyError`` naming the stream's actual version, or into an idempotent
    no-op when the very same events are already stored."""

    def __init__(self, url: PostgresURL, constraint: str, detail: str) -> None:
        self.constraint = constraint
        self.detail = detail
        # Bypasses ConcurrencyError's message: which stream and version is for the
        # caller to find out, the database only names the constraint.
        StoreError.__init__(
            self,
            f"a row violating {constraint!r} exists already in schema "
            f"{url.schema!r} ({detail}); nothing was written; reload and try again",
        )
        self.stream_id = ""
        self.expected_version = None
        self.actual_version = -1


def translate(url: PostgresURL, exc: Exception) -> StoreError:
    """The framework error for a psycopg (or pool) exception."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StoreConnectionError(
            url, f"no connection became free within the pool timeout ({exc})"
        )
    if isinstance(exc, psycopg_pool.PoolClosed):
        return StoreError(
            f"the connection pool for {url.redacted} is closed; the store was "
            "closed and cannot be used again; open a new one"
        )
    detail = url.scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, pg_errors.UniqueViolation):
        diag = exc.diag
        return DuplicateRowError(url, diag.constraint_name or "?", detail)
    if sqlstate in _TRANSIENT:
        return TransientDatabaseError(url, sqlstate, detail)
    if isinstance(exc, psycopg.OperationalError) or sqlstate.startswith("08"):
        return StoreConnectionError(url, detail or type(exc).__name__)
    return DatabaseError(url, sqlstate or "none", detail or type(exc).__name__)


@contextmanager
def translated(url: PostgresURL) -> Iterator[None]:
    """Run a block, turning driver errors into framework errors (``from`` them)."""
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
        raise translate(url, exc) from exc
