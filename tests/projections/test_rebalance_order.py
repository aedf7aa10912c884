"""Through consumer-group rebalances on the file store (members joining, leaving
cleanly, SIGKILLed inside a transaction and while busy, with writers appending
throughout), a projection sees every stream's events once each, in version
order, with none lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework import Application, AppSettings
from tests.projections.rebalance_scenario import check_read_model, run_rebalances
from tests.projections.rebalance_worker import PARTITIONS


def test_members_joining_leaving_and_killed_keep_every_stream_in_order(
    tmp_path: Path,
) -> None:
    url = f"file:{tmp_path / 'store'}"
    # Created once here, so that the processes all open an existing store.
    Application(url, settings=AppSettings(partitions=PARTITIONS)).close()
    versions = run_rebalances(url, tmp_path)
    check_read_model(url, versions)


@pytest.mark.slow
@pytest.mark.parametrize("run", range(20))
def test_the_rebalances_again_and_again_keep_every_stream_in_order(
    tmp_path: Path, run: int
) -> None:
    url = f"file:{tmp_path / 'store'}"
    Application(url, settings=AppSettings(partitions=PARTITIONS)).close()
    check_read_model(url, run_rebalances(url, tmp_path))
