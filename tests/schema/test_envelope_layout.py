"""The envelope layout: one statement of the field order that stored events and
envelopes share, checked on import, and the builders that go by it."""

from __future__ import annotations

import uuid
from typing import NamedTuple

import pytest

from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent, EventRegistry, event
from framework.schema.codecs.json import JsonEventCodec
from framework.schema.envelope_layout import (
    ENVELOPE_FIELDS,
    STORED_FIELDS,
    LayoutError,
    check_envelope_fields,
    check_stored_fields,
    envelope_at,
)
from framework.schema.envelopes import EnvelopeDecoder
from framework.store.events import StoredEvent

registry = EventRegistry()


@event("layout.Noted", registry=registry)
class Noted(DomainEvent):
    text: str


def test_the_store_and_the_domain_hold_the_fields_in_the_layout_order() -> None:
    # The envelope side is checked when the layout module is imported; the store
    # side here, as schema may not import the store.
    check_stored_fields(StoredEvent._fields)
    check_envelope_fields(EventEnvelope._fields)
    assert StoredEvent._fields == STORED_FIELDS
    assert EventEnvelope._fields == ENVELOPE_FIELDS


def test_a_reordered_field_is_refused_with_a_message_saying_what_to_change() -> None:
    swapped = list(STORED_FIELDS)
    swapped[7], swapped[8] = swapped[8], swapped[7]
    with pytest.raises(LayoutError, match="keep the two orders in step") as info:
        check_stored_fields(swapped)
    assert "StoredEvent" in str(info.value)
    assert "framework.schema.envelope_layout" in str(info.value)
    with pytest.raises(LayoutError, match="EventEnvelope"):
        check_envelope_fields(("event", *swapped))


def _stored(partition: int = 2, offset: int = 9) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        stream_id="s-1",
        stream_version=3,
        name="layout.Noted",
        version=1,
        data=b'{"text":"hi"}',
        timestamp_ms=1_700_000_000_000,
        correlation_id="corr",
        causation_id="caus",
        headers={"h": "v"},
        stamp=41,
        partition=partition,
        offset=offset,
    )


def test_an_envelope_read_from_a_stored_event_holds_its_fields_by_name() -> None:
    stored = _stored()
    envelope = EnvelopeDecoder(JsonEventCodec(registry), "events").envelope(stored)
    assert type(envelope) is EventEnvelope
    assert envelope.event == Noted(text="hi")
    for name in ENVELOPE_FIELDS[1:]:
        assert getattr(envelope, name) == getattr(stored, name), name


class Reordered(NamedTuple):
    """A stored event whose correlation and causation ids swapped places."""

    event_id: uuid.UUID
    stream_id: str
    stream_version: int
    name: str
    version: int
    data: bytes
    timestamp_ms: int
    causation_id: str
    correlation_id: str
    headers: dict[str, str]
    stamp: int
    partition: int
    offset: int


def test_reading_a_stored_event_of_another_field_order_is_refused() -> None:
    reordered = Reordered(*_stored())
    reader = EnvelopeDecoder(JsonEventCodec(registry), "events")
    with pytest.raises(LayoutError, match="StoredEvent has the fields"):
        reader.envelope(reordered)


def test_an_envelope_at_a_position_changes_only_its_stamp_partition_and_offset() -> (
    None
):
    envelope = EnvelopeDecoder(JsonEventCodec(registry), "events").envelope(_stored())
    placed = envelope_at(envelope, 12, 5, 77)
    assert type(placed) is EventEnvelope
    assert placed == envelope._replace(stamp=12, partition=5, offset=77)
