"""A PostgreSQL sequence as a file store's sequencer: the stamps order every event,
in all partitions, as the saves happened."""

from __future__ import annotations

from pathlib import Path

import pytest

from example_ledger.domain import Account
from framework import Application, AppSettings
from framework.errors import ConfigurationError


@pytest.mark.postgres
def test_stamps_from_a_sequence_order_every_event_as_saved(
    tmp_path: Path, pg_url: str
) -> None:
    settings = AppSettings(partitions=4, sequencer=pg_url)
    url = f"file:{tmp_path / 'store'}"
    saved: list[str] = []
    # Two applications on one store, as two processes would be.
    with (
        Application(url, settings=settings) as one,
        Application(url, settings=settings) as two,
    ):
        for n in range(40):
            app = one if n % 2 else two
            account = Account.open(f"owner{n}")
            app.save(account)
            saved.append(account.id)
        events = [e for p in range(4) for e in one.store.iter_partition(p)]
    assert len({e.partition for e in events}) > 1
    by_stamp = sorted(events, key=lambda e: e.stamp)
    assert [e.stream_id for e in by_stamp] == saved
    for partition in range(4):
        stamps = [e.stamp for e in events if e.partition == partition]
        assert stamps == sorted(set(stamps))


def test_a_sequencer_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="postgresql://"):
        Application(
            f"file:{tmp_path / 'store'}",
            settings=AppSettings(sequencer="redis://localhost"),
        )
