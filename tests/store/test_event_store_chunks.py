"""A partition iterated in chunks gives every event once, in order, from any offset,
and reads a chunk only when the iterator reaches it."""

from __future__ import annotations

import uuid

from framework.log.backends.memory import MemoryLog
from framework.log.config import TopicConfig
from framework.store.event_store import LogEventStore
from framework.store.events import NewEvent


def event(n: int) -> NewEvent:
    return NewEvent(uuid.uuid4(), "a.B", 1, b"%d" % n, n, "c", "d", {"n": str(n)})


def test_chunks_smaller_than_the_partition_give_each_event_once_in_order() -> None:
    store = LogEventStore(MemoryLog(), config=TopicConfig(partitions=1))
    store.append("s", [event(n) for n in range(5)], 0)
    store.append("t", [event(n) for n in range(5, 7)], 0)
    whole = store.read_partition(0, 0, 100)
    assert [e.offset for e in whole] == list(range(7))
    for chunk in (1, 2, 3, 7, 500):
        assert list(store.iter_partition(0, 0, chunk)) == whole
        assert list(store.iter_partition(0, 3, chunk)) == whole[3:]
    assert list(store.iter_partition(0, 7)) == []


def test_events_appended_before_the_iterator_reaches_their_chunk_are_included() -> None:
    store = LogEventStore(MemoryLog(), config=TopicConfig(partitions=1))
    store.append("s", [event(0), event(1)], 0)
    events = store.iter_partition(0, 0, chunk=2)
    assert next(events).offset == 0
    store.append("s", [event(2)], 2)
    assert [e.offset for e in events] == [1, 2]
