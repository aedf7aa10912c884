"""A session the server ended because a transaction stayed idle in it too long
(``idle_in_transaction_session_timeout``, which a stalled group member meets) is
a lost connection: retriable, so a member logs it and goes on."""

from __future__ import annotations

from psycopg import errors as pg_errors

from framework.postgres.errors import StoreConnectionError, translate
from framework.postgres.url import parse_url

URL = parse_url("postgresql://app@db.example:5433/ledger?schema=books")


def test_a_session_ended_for_an_idle_transaction_is_a_lost_connection() -> None:
    driver_error = pg_errors.lookup("25P03")(
        "terminating connection due to idle-in-transaction timeout"
    )
    error = translate(URL, driver_error)
    assert type(error) is StoreConnectionError
    assert error.retriable
    assert "idle-in-transaction timeout" in str(error)
