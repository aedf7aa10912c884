"""``Prepared`` statements run below psycopg's cursor give the same rows and the
same errors as through it, on the short-statement connection and when that one is
busy (a pooled cursor), with NULLs and across a dropped connection."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from framework.postgres.database import Database
from framework.postgres.errors import DuplicateRowError
from framework.postgres.prepared import BYTEA, INT4, INT8, TEXT, UUID, Prepared

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
