"""PostgreSQL consumer groups split partitions, move only what must move, and take
over from a member whose connection died."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from framework.errors import ConfigurationError
from framework.postgres.database import Database
from framework.projections.backends.postgres import PostgresGroup

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    yield database
    database.close()


def test_members_split_partitions_and_take_over_from_one_whose_session_died(
    db: Database,
) -> None:
    groups = [PostgresGroup(db, "proj", 12, member_id=f"m{n}") for n in range(3)]
    try:
        for group in groups:
            group.join()
        for _ in range(2):
            for group in groups:
                group.rebalance()
        assert [g.owned for g in groups] == [
            [0, 1, 2, 3],
            [4, 5, 6, 7],
            [8, 9, 10, 11],
        ]
        # m1's process dies: its session, and its locks with it, end at once.
        conn = groups[1]._conn
        assert conn is not None
        conn.close()
        for _ in range(2):
            for group in (groups[0], groups[2]):
                group.rebalance()
        assert groups[0].owned == list(range(6))
        assert groups[2].owned == list(range(6, 12))
        assert groups[0].live_members() == ["m0", "m2"]
        taken, released = groups[0].rebalance()
        assert (taken, released) == ([], [])
    finally:
        for group in groups:
            group.leave()


def test_a_member_id_in_use_by_a_live_member_is_refused(db: Database) -> None:
    first = PostgresGroup(db, "proj", 4, member_id="same")
    first.join()
    try:
        with pytest.raises(ConfigurationError, match="in use"):
            PostgresGroup(db, "proj", 4, member_id="same").join()
    finally:
        first.leave()


def test_a_lease_shorter_than_the_heartbeat_is_refused(db: Database) -> None:
    with pytest.raises(ConfigurationError, match="heartbeat < lease"):
        PostgresGroup(db, "proj", 4, lease=0.1, heartbeat=0.2)
