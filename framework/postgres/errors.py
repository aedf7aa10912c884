"""The one place psycopg errors become framework errors.

Every PostgreSQL call runs inside ``translated(url)``; no driver exception reaches
users. An error is classified by its SQLSTATE (``classify``): only a connection
that could not be made or was lost is a ``StoreConnectionError``; every other
error says what kind of failure it is, in plain words, with the SQLSTATE, the
server's message and what to do, and whether trying again can help. Messages name
the host and port and never the password.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import attrs
import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from framework.errors import ConcurrencyError, FrameworkError, StoreError
from framework.postgres.url import PostgresURL, unknown_option

#: What ``python -m framework db migrate`` is for: the framework's tables.
_MIGRATE = (
    "run `python -m framework db migrate` with this URL to create the framework's "
    "tables in the schema"
)
#: Said of errors that roll back the statement's transaction.
_ROLLED_BACK = "its transaction was rolled back and nothing of it was written"


@attrs.frozen
class Classification:
    """What a SQLSTATE means to the caller: ``what`` happened in plain words,
    whether trying again can help, and ``advice`` on what to do. ``connection``:
    the connection could not be made or was lost."""

    what: str
    retriable: bool
    advice: str
    connection: bool = False


_CONNECTION = Classification(
    "the connection could not be made or was lost",
    True,
    "check that the server runs and accepts connections, then try again",
    connection=True,
)
_MISSING_PREPARED = Classification(
    "a statement the framework had prepared on this connection is gone (something "
    "ran DEALLOCATE or DISCARD on it, or a connection pooler moved it to another "
    "server session)",
    True,
    f"{_ROLLED_BACK}; the statement is prepared again on the next try",
)

#: By SQLSTATE, where the code says more than its class.
_BY_CODE: dict[str, Classification] = {
    "57P01": _CONNECTION,  # admin_shutdown: the backend was terminated
    "57P02": _CONNECTION,  # crash_shutdown
    "57P03": _CONNECTION,  # cannot_connect_now: starting up, shutting down
    "57P05": _CONNECTION,  # idle_session_timeout
    # idle_in_transaction_session_timeout: the server ended the session (a
    # stalled group member's transaction, ended so that its lock dies with its lease)
    "25P03": _CONNECTION,
    "26000": _MISSING_PREPARED,  # invalid_sql_statement_name
    "42P05": _MISSING_PREPARED,  # duplicate_prepared_statement (forgotten)
    "57014": Classification(
        "a statement was cancelled: it ran past the statement_timeout, or "
        "someone cancelled it",
        True,
        f"{_ROLLED_BACK}; try again, or raise statement_timeout (for instance "
        "`options=-c statement_timeout=30000` in the store URL) if it needs longer",
    ),
    "40001": Classification(
        "a serialization failure", True, f"{_ROLLED_BACK}; try again"
    ),
    "40P01": Classification(
        "a deadlock, which PostgreSQL broke by aborting this transaction",
        True,
        f"{_ROLLED_BACK}; try again",
    ),
    "55P03": Classification(
        "a lock could not be taken in time (lock_timeout)",
        True,
        f"{_ROLLED_BACK}; try again",
    ),
    "53300": Classification(
        "too many connections: the server takes no more clients (max_connections)",
        True,
        "try again when connections have closed; lower pool_max in the store URL "
        "or raise the server's max_connections",
    ),
    "53200": Classification(
        "the server ran out of memory",
        True,
        f"{_ROLLED_BACK}; try again, and if it recurs give the server more memory",
    ),
    "53100": Classification(
        "the server's disk is full",
        False,
        f"{_ROLLED_BACK}; free space on the server's data disk (or grow it), then "
        "try again",
    ),
    "3D000": Classification(
        "the database does not exist",
        False,
        "create it (`createdb`, or CREATE DATABASE as a user allowed to), or fix "
        "the database name in the store URL",
    ),
    "42P01": Classification("a table the framework needs is missing", False, _MIGRATE),
    "3F000": Classification("the schema does not exist", False, _MIGRATE),
    "28P01": Classification(
        "the server refused the password",
        False,
        "check the user and password in the store URL",
    ),
    "42704": Classification(
        "an object or setting the statement names does not exist",
        False,
        "check the names in the statement, or the settings in the store URL's options",
    ),
}

#: By SQLSTATE class (its first two characters).
_BY_CLASS: dict[str, Classification] = {
    "08": _CONNECTION,
    "53": Classification(
        "the server ran short of a resource",
        False,
        "see the server's message; raise the limit it names or free the resource",
    ),
    "54": Classification(
        "a PostgreSQL limit was exceeded (for instance an index entry too large: "
        "a very long stream id, event name or key)",
        False,
        "nothing was written; make the value smaller (keep stream ids short)",
    ),
    "58": Classification(
        "a system error on the server (an I/O error or a missing file)",
        False,
        "check the server's log and disks; an operator may need to act",
    ),
    "57": Classification(
        "an operator intervened", False, "see the server's message and its log"
    ),
    "40": Classification(
        "the server rolled the transaction back", True, f"{_ROLLED_BACK}; try again"
    ),
    "22": Classification(
        "a value was refused (data exception)",
        False,
        "nothing was written; check the values passed",
    ),
    "23": Classification(
        "a constraint refused a row", False, "nothing was written; check the values"
    ),
    "28": Classification(
        "the server refused the login",
        False,
        "check the user and password in the store URL and the server's pg_hba.conf",
    ),
    "42": Classification(
        "the statement was refused (a syntax error or an access rule)",
        False,
        "check that the user may use the schema and its tables",
    ),
    "XX": Classification(
        "an internal error of the server", False, "see the server's log"
    ),
}

_OTHER = Classification(
    "the server refused a statement", False, "see the server's message"
)
#: psycopg refused a statement before sending it (no SQLSTATE, no lost connection).
_CLIENT = Classification(
    "the driver refused a statement before sending it",
    False,
    "nothing was sent; this is a defect: report it with the message",
)

# A connection that fails before it is made carries no SQLSTATE, only the server's
# message: these recognise the usual ones.
_CONNECT_MESSAGES = (
    (re.compile(r'database "[^"]*" does not exist'), "3D000"),
    (
        re.compile(
            r"too many clients already|too many connections|connection slots are "
            r"reserved"
        ),
        "53300",
    ),
    (re.compile(r"the database system is (?:starting|shutting|not yet)"), "57P03"),
    (re.compile(r"password authentication failed"), "28P01"),
    (re.compile(r'role "[^"]*" does not exist|no pg_hba\.conf entry'), "28000"),
    (re.compile(r"unrecognized configuration parameter"), "42704"),
    (re.compile(r"invalid value for parameter"), "22023"),
)


def classify(sqlstate: str) -> Classification:
    """What an error's SQLSTATE means: by its code where that says more, else by
    its class. An empty SQLSTATE (none was given) is a connection failure."""
    if not sqlstate:
        return _CONNECTION
    found = _BY_CODE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2])
    return found or _OTHER


def _where(url: PostgresURL) -> str:
    return (
        f"PostgreSQL at {url.host}:{url.port} (database {url.dbname!r}, schema "
        f"{url.schema!r})"
    )


class StoreConnectionError(StoreError, ConnectionError):
    """The database could not be reached or the connection broke mid-call.

    Retriable: the server may be restarting. If a write was in flight, it either
    committed whole or not at all; an idempotent retry (same event ids) tells which.
    """

    retriable = True

    def __init__(self, url: PostgresURL, detail: str, sqlstate: str = "") -> None:
        self.host = url.host
        self.port = url.port
        self.dbname = url.dbname
        self.sqlstate = sqlstate
        code = f" (SQLSTATE {sqlstate})" if sqlstate else ""
        super().__init__(
            f"cannot reach PostgreSQL at {url.host}:{url.port} (database "
            f"{url.dbname!r}, user {url.user!r}): {detail}{code}; check that the "
            "server runs and accepts connections, then try again"
        )


class TransientDatabaseError(StoreError):
    """PostgreSQL stopped a statement for a reason that passes (a timeout, a
    deadlock, a serialization failure, too many connections, no memory left).
    What it would have written was not; try again."""

    retriable = True

    def __init__(self, url: PostgresURL, sqlstate: str, detail: str) -> None:
        self.sqlstate = sqlstate
        kind = classify(sqlstate)
        self.what = kind.what
        super().__init__(
            f"{_where(url)}: {kind.what} (SQLSTATE {sqlstate}: {detail}); {kind.advice}"
        )


class PreparedStatementLostError(TransientDatabaseError):
    """A statement the framework prepared on a connection was dropped behind its
    back (DEALLOCATE, DISCARD, a pooler's new server session) while a transaction
    used it. The transaction was rolled back; the statement is prepared again on
    the next try (the event store tries again by itself)."""


class DatabaseError(StoreError):
    """PostgreSQL refused a statement (or a connection) for a reason trying again
    will not fix; ``sqlstate`` and the message say which."""

    def __init__(
        self,
        url: PostgresURL,
        sqlstate: str,
        detail: str,
        kind: Classification | None = None,
    ) -> None:
        self.sqlstate = sqlstate
        kind = kind or classify(sqlstate)
        self.what = kind.what
        advice = kind.advice
        if sqlstate == "3D000":
            advice = (
                f"create it (`createdb -h {url.host} -p {url.port} -U {url.user} "
                f'{url.dbname}`, or CREATE DATABASE "{url.dbname}"), or fix the '
                "database name in the store URL"
            )
        super().__init__(
            f"{_where(url)}: {kind.what} (SQLSTATE {sqlstate}: {detail}); {advice}"
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


def _sqlstate(exc: Exception, detail: str) -> str:
    """The error's SQLSTATE; for a connection refused by the server while it was
    being made (psycopg gives none then), the one its message stands for."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if not sqlstate and isinstance(exc, psycopg.OperationalError):
        for pattern, code in _CONNECT_MESSAGES:
            if pattern.search(detail):
                return code
    return sqlstate


def translate(url: PostgresURL, exc: Exception) -> FrameworkError:
    """The framework error for a psycopg (or pool) exception."""
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg_pool.PoolClosed):
        return _pool_error(url, exc)
    text = str(exc).strip()
    detail = url.scrub(text.splitlines()[0] if text else "") or type(exc).__name__
    if isinstance(exc, pg_errors.UniqueViolation):
        diag = exc.diag
        return DuplicateRowError(url, diag.constraint_name or "?", detail)
    sqlstate = _sqlstate(exc, detail)
    if not sqlstate:
        return _without_sqlstate(url, exc, detail)
    return _with_sqlstate(url, sqlstate, detail)


def _with_sqlstate(url: PostgresURL, sqlstate: str, detail: str) -> StoreError:
    kind = classify(sqlstate)
    if kind.connection:
        return StoreConnectionError(url, detail, sqlstate)
    if kind is _MISSING_PREPARED:
        return PreparedStatementLostError(url, sqlstate, detail)
    if kind.retriable:
        return TransientDatabaseError(url, sqlstate, detail)
    return DatabaseError(url, sqlstate, detail)


def _pool_error(url: PostgresURL, exc: Exception) -> StoreError:
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StoreConnectionError(
            url, f"no connection became free within the pool timeout ({exc})"
        )
    return StoreError(
        f"the connection pool for {url.redacted} is closed; the store was "
        "closed and cannot be used again; open a new one"
    )


def _without_sqlstate(url: PostgresURL, exc: Exception, detail: str) -> FrameworkError:
    """An error the server sent no SQLSTATE for: libpq refusing the URL, a lost
    or refused connection, or psycopg refusing a statement before sending it."""
    option = unknown_option(detail)
    if option is not None:
        return option
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StoreConnectionError(url, detail)
    return DatabaseError(url, "none", detail, _CLIENT)


@contextmanager
def translated(url: PostgresURL) -> Iterator[None]:
    """Run a block, turning driver errors into framework errors (``from`` them)."""
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed) as exc:
        raise translate(url, exc) from exc
