"""The causal merge on random causal histories across partitions: nothing is handed
out before an event it depends on, partitions keep their order, nothing is lost,
and what a window forces out of order is counted exactly."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.projections.causal import CausalMerge

PARTITIONS = 3


@attrs.frozen
class Event:
    number: int
    partition: int
    stamp: int
    causes: frozenset[int]


def history(draws: list[tuple[int, list[int]]]) -> list[Event]:
    """Events as commands would write them: each stamped above its causes and
    above the last stamp of its partition."""
    events: list[Event] = []
    last = dict.fromkeys(range(PARTITIONS), 0)
    for number, (partition, picks) in enumerate(draws):
        causes = frozenset(p % number for p in picks) if number else frozenset()
        stamp = max([last[partition], *(events[c].stamp for c in causes)]) + 1
        last[partition] = stamp
        events.append(Event(number, partition, stamp, causes))
    return events


histories = st.lists(
    st.tuples(
        st.integers(0, PARTITIONS - 1),
        st.lists(st.integers(0, 10_000), max_size=3),
    ),
    min_size=1,
    max_size=40,
).map(history)
#: Between creations: read some partition, up to some events (0: all there are).
schedules = st.lists(
    st.tuples(st.booleans(), st.integers(0, PARTITIONS - 1), st.integers(0, 3)),
    max_size=120,
)


class Reader:
    """Reads partitions of a history as it is written, into a merge."""

    def __init__(self, events: list[Event], merge: CausalMerge[Event]) -> None:
        self.events = events
        self.merge = merge
        self.created = 0
        self.offered = dict.fromkeys(range(PARTITIONS), 0)
        self.delivered: list[Event] = []

    def visible(self, partition: int) -> list[Event]:
        return [e for e in self.events[: self.created] if e.partition == partition]

    def create(self) -> None:
        self.created = min(self.created + 1, len(self.events))

    def read(self, partition: int, limit: int) -> None:
        there = self.visible(partition)[self.offered[partition] :]
        taken = there if limit == 0 else there[:limit]
        self.merge.offer(partition, [(e.stamp, e) for e in taken])
        self.offered[partition] += len(taken)
        if len(taken) == len(there):
            self.merge.read_to_end(partition)
        self.delivered.extend(e for _, e in self.merge.release())

    def finish(self) -> None:
        self.created = len(self.events)
        while len(self.delivered) < len(self.events):
            for partition in range(PARTITIONS):
                self.read(partition, 0)


def run(
    events: list[Event],
    schedule: list[tuple[bool, int, int]],
    make: Callable[[], CausalMerge[Event]],
) -> Reader:
    reader = Reader(events, make())
    for create, partition, limit in schedule:
        if create:
            reader.create()
        else:
            reader.read(partition, limit)
    reader.finish()
    return reader


def out_of_order(delivered: list[Event]) -> int:
    """Events handed out after a larger stamp from another partition."""
    count = 0
    for i, event in enumerate(delivered):
        if any(
            e.stamp > event.stamp and e.partition != event.partition
            for e in delivered[:i]
        ):
            count += 1
    return count


def check_whole_and_in_partition_order(
    events: list[Event], delivered: list[Event]
) -> None:
    assert sorted(e.number for e in delivered) == list(range(len(events)))
    for partition in range(PARTITIONS):
        numbers = [e.number for e in delivered if e.partition == partition]
        assert numbers == sorted(numbers)


@settings(max_examples=300, deadline=None)
@given(events=histories, schedule=schedules)
def test_nothing_is_handed_out_before_an_event_it_depends_on(
    events: list[Event], schedule: list[tuple[bool, int, int]]
) -> None:
    reader = run(
        events, schedule, lambda: CausalMerge(range(PARTITIONS), clock=lambda: 0.0)
    )
    check_whole_and_in_partition_order(events, reader.delivered)
    position = {e.number: i for i, e in enumerate(reader.delivered)}
    for event in reader.delivered:
        for cause in event.causes:
            assert position[cause] < position[event.number], (
                f"event {event.number} came before its cause {cause}"
            )
    assert reader.merge.forced == 0
    assert reader.merge.out_of_order == out_of_order(reader.delivered)


@settings(max_examples=300, deadline=None)
@given(events=histories, schedule=schedules, window=st.integers(0, 4))
def test_a_window_that_expires_counts_what_it_hands_out_of_order_exactly(
    events: list[Event], schedule: list[tuple[bool, int, int]], window: int
) -> None:
    reader = run(
        events,
        schedule,
        lambda: CausalMerge(range(PARTITIONS), window_events=window, clock=lambda: 0.0),
    )
    check_whole_and_in_partition_order(events, reader.delivered)
    assert reader.merge.out_of_order == out_of_order(reader.delivered)
    assert reader.merge.buffered == 0


def test_a_partition_never_read_holds_events_back_until_the_window_passes() -> None:
    now = [0.0]
    merge: CausalMerge[str] = CausalMerge(
        [0, 1], window_seconds=5, clock=lambda: now[0]
    )
    merge.offer(0, [(1, "a"), (2, "b")])
    merge.read_to_end(0)
    assert merge.release() == []
    now[0] = 5.0
    assert merge.release() == [(0, "a"), (0, "b")]
    assert merge.forced == 2
    merge.offer(1, [(1, "late")])
    assert merge.release() == []  # partition 0 may have moved on since
    merge.read_to_end(0)
    assert merge.release() == [(1, "late")]
    assert merge.out_of_order == 1


def test_an_unknown_partition_and_a_negative_window_are_refused() -> None:
    merge: CausalMerge[str] = CausalMerge([0, 1])
    with pytest.raises(ValueError, match="partition 5 is not one of"):
        merge.offer(5, [(1, "x")])
    with pytest.raises(ValueError, match="partition 7 is not one of"):
        merge.read_to_end(7)
    with pytest.raises(ValueError, match="0 or more"):
        CausalMerge([0], window_events=-1)
    with pytest.raises(ValueError, match="at least one partition"):
        CausalMerge([])
