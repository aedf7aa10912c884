"""``Prepared`` statements run below psycopg's cursor give the same rows and the
same errors as through it, on the short-statement connection and when that one is
busy (a pooled connection), with NULLs and across a dropped connection."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.postgres.database import Database, fetchone_on
from framework.postgres.errors import DuplicateRowError
from framework.postgres.prepared import (
    BYTEA,
    BYTEA_ARRAY,
    INT4,
    INT4_ARRAY,
    INT8,
    INT8_ARRAY,
    TEXT,
    TEXT_ARRAY,
    UUID,
    UUID_ARRAY,
    Prepared,
)
from tests.conftest import database_url

pytestmark = pytest.mark.postgres

INSERT = (
    b"INSERT INTO {t} (id, n, big, data, note) "
    b"VALUES (%(id)s, %(n)s, %(big)s, %(data)s, %(note)s) RETURNING n, big, note"
)
SELECT = (
    b"SELECT id, n, big, data, note FROM {t} "
    b"WHERE n >= %(n)s AND n < %(n)s + 10 ORDER BY n"
)
TYPES = {"id": UUID, "n": INT4, "big": INT8, "data": BYTEA, "note": TEXT}


def test_placeholders_become_numbered_parameters_in_order_of_first_use() -> None:
    prepared = Prepared("q", SELECT, TYPES)
    assert prepared.names == ("n",)
    assert b"n >= $1 AND n < $1 + 10" in prepared.query
    insert = Prepared("i", INSERT, TYPES, (int, int, bytes.decode))
    assert insert.names == ("id", "n", "big", "data", "note")
    assert insert.values(
        {"id": uuid.UUID(int=1), "n": -2, "big": 2**40, "data": b"\x00", "note": None}
    ) == [
        uuid.UUID(int=1).bytes,
        b"\xff\xff\xff\xfe",
        (2**40).to_bytes(8, "big"),
        b"\x00",
        None,
    ]
    with pytest.raises(ValueError, match="no type given for parameters"):
        Prepared("q", b"SELECT %(missing)s", TYPES)
    assert Prepared("a", SELECT, TYPES).name != Prepared("a", INSERT, TYPES).name


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    with database.connection() as conn:
        conn.execute(
            f'CREATE TABLE "{database.schema}".t (id uuid, n integer UNIQUE, '
            "big bigint, data bytea, note text)"
        )
    yield database
    database.close()


def statements(db: Database) -> tuple[Prepared, Prepared]:
    table = f'"{db.schema}".t'.encode()
    return (
        Prepared("ins", INSERT.replace(b"{t}", table), TYPES, (int, int, bytes.decode)),
        Prepared("sel", SELECT.replace(b"{t}", table), TYPES),
    )


def row(n: int, note: str | None) -> dict[str, object]:
    return {
        "id": uuid.UUID(int=n),
        "n": n,
        "big": n * 2**33,
        "data": b"d%d" % n,
        "note": note,
    }


def test_rows_and_errors_match_the_cursor_on_either_connection(db: Database) -> None:
    insert, select = statements(db)
    assert db.fetchone_prepared(insert, row(1, "one")) == (1, 2**33, "one")
    assert db.fetchone_prepared(insert, row(2, None)) == (2, 2 * 2**33, None)
    with pytest.raises(DuplicateRowError):
        db.fetchone_prepared(insert, row(1, "again"))
    # The short-statement connection is still usable after the error.
    fast = db.fetchall_prepared(select, {"n": 0})
    assert fast == [
        (uuid.UUID(int=1), 1, 2**33, b"d1", "one"),
        (uuid.UUID(int=2), 2, 2 * 2**33, b"d2", None),
    ]
    # Another thread holds the short-statement connection: a pooled cursor runs
    # the same statement, with the same results and errors.
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with db.cursor():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        assert db.fetchone_prepared(insert, row(3, "three")) == (3, 3 * 2**33, "three")
        assert db.fetchall_prepared(select, {"n": 0}) == [
            *fast,
            (uuid.UUID(int=3), 3, 3 * 2**33, b"d3", "three"),
        ]
        with pytest.raises(DuplicateRowError):
            db.fetchone_prepared(insert, row(3, "again"))
    finally:
        release.set()
        holder.join(10)
    assert db.fetchall_prepared(select, {"n": 3}) == [
        (uuid.UUID(int=3), 3, 3 * 2**33, b"d3", "three")
    ]


def test_a_one_column_text_row_keeps_its_value_and_its_null(db: Database) -> None:
    # An append's offset comes back as one text column, read without the
    # general row's lists (``Prepared.first_row``).
    one = Prepared("one", b"SELECT %(n)s::integer + 1", {"n": INT4}, (int,))
    assert db.fetchone_prepared(one, {"n": 41}) == (42,)
    assert db.fetchone_prepared(one, {"n": None}) == (None,)


ARRAYS = (
    b"SELECT %(i4)s::integer[], %(i8)s::bigint[], %(t)s::text[], %(b)s::bytea[], "
    b"%(u)s::uuid[]"
)
ARRAY_TYPES = {
    "i4": INT4_ARRAY,
    "i8": INT8_ARRAY,
    "t": TEXT_ARRAY,
    "b": BYTEA_ARRAY,
    "u": UUID_ARRAY,
}


def _lists(element: st.SearchStrategy[object]) -> st.SearchStrategy[list[object]]:
    return st.lists(st.one_of(st.none(), element), max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    i4=_lists(st.integers(-(2**31), 2**31 - 1)),
    i8=_lists(st.integers(-(2**63), 2**63 - 1)),
    # PostgreSQL's text holds neither NUL nor lone surrogates (UTF-8 has none).
    t=_lists(
        st.text(
            alphabet=st.characters(
                blacklist_characters="\x00", blacklist_categories=("Cs",)
            )
        )
    ),
    b=_lists(st.binary(max_size=40)),
    u=_lists(st.uuids()),
)
def test_binary_arrays_reach_the_server_as_the_same_lists(  # noqa: PLR0917
    array_db: Database,
    i4: list[object],
    i8: list[object],
    t: list[object],
    b: list[object],
    u: list[object],
) -> None:
    prepared = Prepared("arrays", ARRAYS, ARRAY_TYPES)
    params = {"i4": i4, "i8": i8, "t": t, "b": b, "u": u}
    assert array_db.fetchone_prepared(prepared, params) == (i4, i8, t, b, u)
    # Inside a transaction, on a given connection; and on a plain psycopg one.
    with array_db.cursor() as cur:
        assert fetchone_on(cur.connection, prepared, params) == (i4, i8, t, b, u)
    with psycopg.connect(database_url(), autocommit=True) as plain:
        assert fetchone_on(plain, prepared, params) == (i4, i8, t, b, u)


@pytest.fixture(scope="module")
def array_db() -> Iterator[Database]:
    database = Database(database_url())
    yield database
    database.close()


def test_text_that_utf8_cannot_encode_is_refused_naming_the_parameter(
    array_db: Database,
) -> None:
    prepared = Prepared("arrays", ARRAYS, ARRAY_TYPES)
    params = {"i4": [], "i8": [], "t": ["ok", "\ud800"], "b": [], "u": []}
    with pytest.raises(ValueError, match=r"parameter 't' .*'\\ud800'.*lone surrogates"):
        array_db.fetchone_prepared(prepared, params)
    # The connection is still good for the next statement.
    params["t"] = ["ok"]
    assert array_db.fetchone_prepared(prepared, params) == ([], [], ["ok"], [], [])
