"""The event store passes its contract on the in-memory log."""

from __future__ import annotations

import pytest

from framework.log.backends.memory import MemoryLog
from framework.log.config import TopicConfig
from framework.store.event_store import LogEventStore
from framework.testing.store_contract import EventStoreContract, MakeStore


class TestEventStoreOnMemoryLog(EventStoreContract):
    @pytest.fixture
    def make_store(self) -> MakeStore:
        log = MemoryLog()
        return lambda: LogEventStore(log, config=TopicConfig(partitions=4))
