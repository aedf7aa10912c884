"""The classification of PostgreSQL errors by SQLSTATE: only a connection that
could not be made or was lost says "cannot reach PostgreSQL"; the others say what
they are, with their SQLSTATE, the server's message, what to do, and whether
trying again can help."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg_errors

from framework.errors import StoreError
from framework.postgres.errors import (
    DatabaseError,
    PreparedStatementLostError,
    StoreConnectionError,
    TransientDatabaseError,
    classify,
    translate,
)
from framework.postgres.url import parse_url

URL = parse_url("postgresql://app:hunter2@db.example:5433/ledger?schema=books")

# (SQLSTATE, error class, retriable, words its message must hold)
TABLE = [
    ("08006", StoreConnectionError, True, "cannot reach PostgreSQL"),
    ("08001", StoreConnectionError, True, "cannot reach PostgreSQL"),
    ("57P01", StoreConnectionError, True, "cannot reach PostgreSQL"),
    ("57P02", StoreConnectionError, True, "cannot reach PostgreSQL"),
    ("57P03", StoreConnectionError, True, "cannot reach PostgreSQL"),
    ("53100", DatabaseError, False, "disk is full"),
    ("53200", TransientDatabaseError, True, "out of memory"),
    ("53300", TransientDatabaseError, True, "too many connections"),
    ("53400", DatabaseError, False, "ran short of a resource"),
    ("54000", DatabaseError, False, "limit was exceeded"),
    ("54001", DatabaseError, False, "limit was exceeded"),
    ("58030", DatabaseError, False, "I/O error"),
    ("58P01", DatabaseError, False, "system error"),
    ("57014", TransientDatabaseError, True, "statement_timeout"),
    ("40001", TransientDatabaseError, True, "serialization failure"),
    ("40P01", TransientDatabaseError, True, "deadlock"),
    ("55P03", TransientDatabaseError, True, "lock"),
    ("26000", PreparedStatementLostError, True, "prepared again"),
    ("42P05", PreparedStatementLostError, True, "prepared again"),
    ("3D000", DatabaseError, False, "createdb"),
    ("42P01", DatabaseError, False, "python -m framework db migrate"),
    ("3F000", DatabaseError, False, "python -m framework db migrate"),
    ("42601", DatabaseError, False, "syntax error"),
    ("22P02", DatabaseError, False, "data exception"),
    ("XX000", DatabaseError, False, "internal error"),
    ("28P01", DatabaseError, False, "password"),
]


@pytest.mark.parametrize(("sqlstate", "cls", "retriable", "words"), TABLE)
def test_each_sqlstate_becomes_the_error_of_its_class(
    sqlstate: str, cls: type[StoreError], retriable: bool, words: str
) -> None:
    driver_error = pg_errors.lookup(sqlstate)("the server's own words (hunter2)")
    error = translate(URL, driver_error)
    assert type(error) is cls
    assert error.retriable is retriable
    assert classify(sqlstate).retriable is retriable
    message = str(error)
    assert words in message
    assert sqlstate in message
    assert "the server's own words" in message
    assert "db.example:5433" in message
    assert "hunter2" not in message
    # Only a missing table or schema is for the migrations.
    assert ("db migrate" in message) == (sqlstate in ("42P01", "3F000"))
    if cls is not StoreConnectionError:
        assert "cannot reach" not in message
        assert error.sqlstate == sqlstate  # type: ignore[attr-defined]


def test_a_missing_database_is_named_with_how_to_create_it() -> None:
    error = translate(URL, pg_errors.lookup("3D000")('database "ledger" missing'))
    assert "createdb -h db.example -p 5433 -U app ledger" in str(error)
    assert 'CREATE DATABASE "ledger"' in str(error)


def test_an_error_without_sqlstate_is_a_lost_connection_only_from_the_connection() -> (
    None
):
    lost = translate(URL, psycopg.OperationalError("server closed the connection"))
    assert isinstance(lost, StoreConnectionError)
    assert lost.retriable
    refused = translate(URL, psycopg.ProgrammingError("query has 2 placeholders"))
    assert isinstance(refused, DatabaseError)
    assert not refused.retriable
    assert "cannot reach" not in str(refused)
