"""The event store passes its contract on the segment-file log, each store opening
the folder anew as another process would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.log.backends.segments import SegmentLog
from framework.log.config import TopicConfig
from framework.store.event_store import LogEventStore
from framework.testing.store_contract import EventStoreContract, MakeStore


class TestEventStoreOnSegmentLog(EventStoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[MakeStore]:
        opened: list[SegmentLog] = []

        def make() -> LogEventStore:
            log = SegmentLog(tmp_path / "store")
            opened.append(log)
            return LogEventStore(log, config=TopicConfig(partitions=4))

        yield make
        for log in opened:
            log.close()
