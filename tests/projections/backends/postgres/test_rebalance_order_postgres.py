"""Through consumer-group rebalances on PostgreSQL (members joining, leaving
cleanly, SIGKILLed inside a transaction and while busy, and one stalled inside a
transaction past its lease, whose partitions move and which then goes on, with
writers appending throughout), a projection sees every stream's events once
each, in version order, with none lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework import Application, AppSettings
from tests.projections.rebalance_scenario import check_read_model, run_rebalances
from tests.projections.rebalance_worker import PARTITIONS

pytestmark = pytest.mark.postgres


def test_members_joining_leaving_and_killed_keep_every_stream_in_order(
    pg_url: str, tmp_path: Path
) -> None:
    # Migrated once here, so that the processes all open an existing schema.
    Application(pg_url, settings=AppSettings(partitions=PARTITIONS)).close()
    versions = run_rebalances(pg_url, tmp_path, leases=True)
    check_read_model(pg_url, versions)


@pytest.mark.slow
@pytest.mark.parametrize("run", range(10))
def test_the_rebalances_again_and_again_keep_every_stream_in_order(
    pg_url: str, tmp_path: Path, run: int
) -> None:
    Application(pg_url, settings=AppSettings(partitions=PARTITIONS)).close()
    check_read_model(pg_url, run_rebalances(pg_url, tmp_path, leases=True))
