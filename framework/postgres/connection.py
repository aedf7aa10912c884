"""``Connection``: the framework's PostgreSQL connection, and the one owner of the
statements prepared on it.

psycopg prepares statements of its own (``prepare=True``, and any query run five
times) and, when a transaction rolls back or a DROP, ALTER or DISCARD runs, sends
``DEALLOCATE ALL``, which also drops the statements the framework prepared below
it. So psycopg prepares nothing on these connections (``prepare_threshold`` is
None): a ``Prepared`` statement is prepared once per connection by
``run_prepared``, which remembers its name there. If a statement turns out to be
gone anyway (someone ran DEALLOCATE or DISCARD, a pooler moved the connection to
another server session), the connection forgets what it had prepared and prepares
again: at once outside a transaction, on the caller's retry inside one (the error
aborted it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Self

import psycopg
from psycopg.abc import Transformer as Loader
from psycopg.adapt import Transformer
from psycopg.errors import error_from_result
from psycopg.generators import execute
from psycopg.pq import ConnStatus, DiagnosticField, ExecStatus, TransactionStatus
from psycopg.pq.abc import PGresult

from framework.postgres.prepared import Prepared

logger = logging.getLogger("framework.postgres")

Cursor = psycopg.Cursor[tuple[Any, ...]]

IDLE = TransactionStatus.IDLE
COMMAND_OK = ExecStatus.COMMAND_OK
CONNECTION_OK = ConnStatus.OK
TUPLES_OK = ExecStatus.TUPLES_OK
SQLSTATE = DiagnosticField.SQLSTATE
#: invalid_sql_statement_name: the prepared statement is not there.
STATEMENT_MISSING = b"26000"
#: duplicate_prepared_statement: it is there, though the connection forgot it.
STATEMENT_EXISTS = b"42P05"


class Connection(psycopg.Connection[tuple[Any, ...]]):
    """A connection of the framework: psycopg prepares nothing on it, and it keeps
    one cursor for the short statements.

    Making a cursor costs a sixth of a single-event append's client time, so the
    hot paths reuse this one. A connection is used by one thread at a time (the
    pool hands it out), and so is its cursor.
    """

    _reused: Cursor | None = None
    #: Names of the ``Prepared`` statements this connection has prepared.
    _fast_prepared: set[bytes] | None = None
    _transformer: Loader | None = None

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """psycopg's ``connect``, with psycopg's own statement preparation off:
        ``run_prepared`` is the only thing that prepares on this connection."""
        kwargs["prepare_threshold"] = None
        return super().connect(conninfo, **kwargs)

    def transformer(self) -> Loader:
        """This connection's loader of binary results for ``Prepared`` reads."""
        loader = self._transformer
        if loader is None:
            loader = self._transformer = Transformer(self)
        return loader

    def prepared_names(self) -> set[bytes]:
        """The names of the ``Prepared`` statements prepared on this connection."""
        names = self._fast_prepared
        if names is None:
            names = self._fast_prepared = set()
        return names

    def reused_cursor(self) -> Cursor:
        """This connection's cursor for statements whose results are read at once."""
        cursor = self._reused
        if cursor is None or cursor.closed:
            cursor = self._reused = self.cursor()
        return cursor


def failure(conn: Connection, result: PGresult) -> psycopg.Error:
    """The exception for a failed result: the statement's error, or, when the
    connection went down, an ``OperationalError`` as psycopg's cursor reports it."""
    if conn.pgconn.status != CONNECTION_OK:
        message = result.error_field(DiagnosticField.MESSAGE_PRIMARY)
        text = message or conn.pgconn.error_message or b"the connection was lost"
        return psycopg.OperationalError(text.decode(errors="replace").strip())
    return error_from_result(result, conn.info.encoding)


def _prepare(conn: Connection, prepared: Prepared, names: set[bytes]) -> None:
    result = conn.pgconn.prepare(prepared.name, prepared.query, prepared.types)
    if result.status != COMMAND_OK:
        if (
            result.error_field(SQLSTATE) == STATEMENT_EXISTS
            and conn.pgconn.status == CONNECTION_OK
        ):
            # A statement's name is made from its text, so the one there is this
            # one: use it. Inside a transaction the error aborted it, though.
            names.add(prepared.name)
            if conn.pgconn.transaction_status == IDLE:
                return
        raise failure(conn, result)
    names.add(prepared.name)


def _execute(
    conn: Connection, prepared: Prepared, params: Mapping[str, Any]
) -> PGresult:
    pgconn = conn.pgconn
    pgconn.send_query_prepared(
        prepared.name, prepared.values(params), prepared.formats, prepared.result_format
    )
    results: list[PGresult] = conn.wait(execute(pgconn))
    return results[-1]


def run_prepared(
    conn: Connection, prepared: Prepared, params: Mapping[str, Any]
) -> PGresult:
    """Run ``prepared`` on ``conn``'s libpq connection (preparing it on first use);
    errors raise as psycopg's exceptions.

    A statement found missing (SQLSTATE 26000) is prepared again and, outside a
    transaction, run again once; inside one, whose error aborted it, its error is
    raised (``translate`` makes it a retriable ``PreparedStatementLostError``) and
    the next run prepares it again.
    """
    names = conn.prepared_names()
    if prepared.name not in names:
        _prepare(conn, prepared, names)
    # ``_execute``, inline: a call more would cost every statement.
    pgconn = conn.pgconn
    pgconn.send_query_prepared(
        prepared.name, prepared.values(params), prepared.formats, prepared.result_format
    )
    results: list[PGresult] = conn.wait(execute(pgconn))
    result = results[-1]
    if result.status != TUPLES_OK:
        return _run_again(conn, prepared, params, result)
    return result


def _run_again(
    conn: Connection, prepared: Prepared, params: Mapping[str, Any], result: PGresult
) -> PGresult:
    """After ``result`` failed: run ``prepared`` once more if it failed because its
    statement was gone and no transaction was aborted by that; else raise."""
    pgconn = conn.pgconn
    if (
        result.error_field(SQLSTATE) != STATEMENT_MISSING
        or pgconn.status != CONNECTION_OK
    ):
        raise failure(conn, result)
    # Whoever dropped it (DEALLOCATE ALL, DISCARD ALL, a new server session behind
    # a pooler) may have dropped the others too.
    names = conn.prepared_names()
    logger.info(
        "prepared statement %s was gone from connection %d; preparing the %d "
        "statements it had again as they are used",
        prepared.name.decode(),
        pgconn.backend_pid,
        len(names),
    )
    names.clear()
    if pgconn.transaction_status != IDLE:
        raise failure(conn, result)
    _prepare(conn, prepared, names)
    result = _execute(conn, prepared, params)
    if result.status != TUPLES_OK:
        raise failure(conn, result)
    return result


def fetchone_on(
    conn: psycopg.Connection[Any], prepared: Prepared, params: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """The first row of ``prepared`` run on ``conn``, in whatever transaction it is
    in (``Database.fetchone_prepared`` picks the connection itself). Raises
    psycopg's errors: the caller's ``Database.cursor`` block translates them."""
    if not isinstance(conn, Connection):
        # Not one of ours: psycopg prepares on it, and is alone in doing so.
        with conn.cursor(binary=prepared.result_format == 1) as cur:
            return cur.execute(prepared.source, params, prepare=True).fetchone()
    return first_prepared_row(conn, prepared, run_prepared(conn, prepared, params))


def fetchall_on(
    conn: psycopg.Connection[Any], prepared: Prepared, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """``fetchone_on`` for every row (binary results)."""
    if not isinstance(conn, Connection):
        with conn.cursor(binary=True) as cur:
            return cur.execute(prepared.source, params, prepare=True).fetchall()
    return all_prepared_rows(conn, prepared, run_prepared(conn, prepared, params))


def first_prepared_row(
    conn: Connection, prepared: Prepared, result: PGresult
) -> tuple[Any, ...] | None:
    if not result.ntuples:
        return None
    if prepared.parse is None:
        loader = conn.transformer()
        loader.set_pgresult(result)
        row: tuple[Any, ...] | None = loader.load_row(0, tuple)
        return row
    return prepared.first_row(result)


def all_prepared_rows(
    conn: Connection, prepared: Prepared, result: PGresult
) -> list[tuple[Any, ...]]:
    # psycopg's loaders (in C) read the binary result, as its cursor would.
    loader = conn.transformer()
    loader.set_pgresult(result)
    rows: list[tuple[Any, ...]] = loader.load_rows(0, result.ntuples, tuple)
    return rows
