"""libpq parameters in the store URL take effect on every connection the
framework opens: the pool's, the short-statement one and the notifier's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from framework.postgres.database import Database

pytestmark = pytest.mark.postgres


@pytest.fixture(
    params=[
        "options=-c statement_timeout=5000",
        "options=-c%20statement_timeout%3D5000",
    ],
    ids=["raw", "percent-encoded"],
)
def db(pg_url: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    database = Database(
        f"{pg_url}&{request.param}&application_name=the ledger+1&sslmode=disable"
    )
    yield database
    database.close()


def test_a_statement_timeout_in_the_url_holds_on_every_connection(
    db: Database,
) -> None:
    with db.cursor() as hot:
        assert hot.execute("SHOW statement_timeout").fetchone() == ("5s",)
        # Busy: the next one is a pooled connection.
        with db.cursor() as pooled:
            assert pooled.connection is not hot.connection
            assert pooled.execute("SHOW statement_timeout").fetchone() == ("5s",)
    with db.connection() as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)


def test_other_libpq_parameters_arrive_intact(db: Database) -> None:
    with db.cursor() as cur:
        assert cur.execute("SHOW application_name").fetchone() == ("the ledger+1",)
        assert cur.execute(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone() == (False,)
