"""A hypothesis state machine holds the event store to a plain model of streams."""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from framework.errors import ConcurrencyError
from framework.log.backends.memory import MemoryLog
from framework.log.config import TopicConfig
from framework.store.event_store import LogEventStore
from framework.store.events import Appended, NewEvent
from framework.testing.store_contract import new_event

STREAMS = st.sampled_from(["a", "b", "c", "d", "e"])


class EventStoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.log = MemoryLog()
        self.store = self._open()
        self.model: dict[str, list[uuid.UUID]] = {}
        self.last: tuple[str, list[NewEvent], int | None, Appended] | None = None

    def _open(self) -> LogEventStore:
        return LogEventStore(self.log, config=TopicConfig(partitions=3))

    @rule(stream=STREAMS, count=st.integers(1, 3), mode=st.sampled_from(["ok", "any"]))
    def append(self, stream: str, count: int, mode: str) -> None:
        events = [new_event() for _ in range(count)]
        current = len(self.model.get(stream, []))
        expected = current if mode == "ok" else None
        appended = self.store.append(stream, events, expected_version=expected)
        assert not appended.already_stored
        assert (appended.first_version, appended.last_version) == (
            current + 1,
            current + count,
        )
        self.model.setdefault(stream, []).extend(e.event_id for e in events)
        self.last = (stream, events, expected, appended)

    @rule(stream=STREAMS, delta=st.integers(-3, 3).filter(lambda d: d != 0))
    def append_with_stale_version(self, stream: str, delta: int) -> None:
        current = len(self.model.get(stream, []))
        expected = current + delta
        if expected < 0:
            return
        before = self.store.end_position()
        with pytest.raises(ConcurrencyError) as info:
            self.store.append(stream, [new_event()], expected_version=expected)
        assert info.value.actual_version == current
        assert self.store.end_position() == before

    @rule()
    def retry_the_last_append(self) -> None:
        if self.last is None:
            return
        stream, events, expected, original = self.last
        before = self.store.end_position()
        again = self.store.append(stream, events, expected_version=expected)
        if expected is None and self.model[stream][-len(events) :] != [
            e.event_id for e in events
        ]:
            # Without an expected version only a retry at the tail is recognised.
            self.model[stream].extend(e.event_id for e in events)
            return
        assert again.already_stored
        assert (again.first_offset, again.last_offset) == (
            original.first_offset,
            original.last_offset,
        )
        assert self.store.end_position() == before

    @rule()
    def reopen(self) -> None:
        self.store = self._open()

    @invariant()
    def streams_match_the_model(self) -> None:
        for stream, ids in self.model.items():
            stored = self.store.read_stream(stream)
            assert [e.event_id for e in stored] == ids
            assert [e.stream_version for e in stored] == list(range(1, len(ids) + 1))
            assert self.store.stream_version(stream) == len(ids)
            assert self.store.read_stream_data(stream) == [
                (e.name, e.version, e.data, e.stamp) for e in stored
            ]

    @invariant()
    def partitions_are_contiguous(self) -> None:
        total = 0
        for partition in range(self.store.partitions):
            events = list(self.store.iter_partition(partition))
            offsets = [e.offset for e in events]
            assert offsets == list(range(len(offsets)))
            # Lamport stamps only grow along a partition.
            stamps = [e.stamp for e in events]
            assert all(a < b for a, b in itertools.pairwise(stamps))
            total += len(offsets)
        assert total == sum(len(ids) for ids in self.model.values())


EventStoreModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestEventStoreModel = EventStoreModel.TestCase
