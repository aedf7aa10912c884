"""Event ids and default aggregate ids are UUID version 7: unique, and ordered by
the time they were made (what keeps the stores' unique indexes appending)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.domain import Aggregate, DomainEvent, event, when
from framework.domain.ids import uuid7, uuid7_time_ms


@event("test_ids.Noted")
class Noted(DomainEvent):
    text: str


class Note(Aggregate):
    @when(Noted)
    def _noted(self, e: Noted) -> None:
        pass


_MS = st.integers(min_value=0, max_value=(1 << 48) - 1)


@given(_MS)
def test_a_uuid7_carries_its_time_version_and_variant(ms: int) -> None:
    value = uuid7(ms)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert uuid7_time_ms(value) == ms
    assert uuid.UUID(str(value)) == value


@given(_MS, _MS)
def test_ids_of_different_milliseconds_sort_by_time_as_uuids_and_as_text(
    a: int, b: int
) -> None:
    if a == b:
        return
    first, second = sorted((a, b))
    assert uuid7(first) < uuid7(second)
    assert str(uuid7(first)) < str(uuid7(second))


def test_ids_made_in_the_same_millisecond_still_differ() -> None:
    ids = {uuid7(1_700_000_000_000) for _ in range(50_000)}
    assert len(ids) == 50_000


@pytest.mark.parametrize("ms", [-1, 1 << 48])
def test_a_time_outside_48_bits_is_refused_naming_it(ms: int) -> None:
    with pytest.raises(ValueError, match=str(ms)):
        uuid7(ms)


def test_the_time_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version 4"):
        uuid7_time_ms(uuid.uuid4())


def test_recorded_events_and_new_aggregates_get_time_ordered_ids() -> None:
    note = Note()
    for text in "wxyz":
        note.record(Noted(text=text))
    envelopes = note.pending_events
    assert all(e.event_id.version == 7 for e in envelopes)
    assert all(uuid7_time_ms(e.event_id) == e.timestamp_ms for e in envelopes)
    assert [uuid7_time_ms(e.event_id) for e in envelopes] == sorted(
        uuid7_time_ms(e.event_id) for e in envelopes
    )
    assert uuid.UUID(note.id).version == 7
    assert Note("mine").id == "mine"
