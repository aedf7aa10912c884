"""Aggregates record events, apply them in @when handlers, and count versions from 1."""

from __future__ import annotations

import datetime as dt
import math
import uuid

import pytest

from framework.domain import Aggregate, DomainEvent, event, when
from framework.domain.context import MessageContext, message_context
from framework.errors import UnserializableEventError


@event("test_aggregate.Opened")
class Opened(DomainEvent):
    name: str


@event("test_aggregate.Added")
class Added(DomainEvent):
    item: str


@event("test_aggregate.Measured")
class Measured(DomainEvent):
    value: float
    at: dt.datetime


@event("test_aggregate.Unhandled")
class Unhandled(DomainEvent):
    pass


class Basket(Aggregate):
    name: str = ""
    items: list[str] = []  # noqa: RUF012 - copied per instance by Aggregate

    @classmethod
    def open(cls, name: str) -> Basket:
        basket = cls()
        basket.record(Opened(name=name))
        return basket

    def add(self, item: str) -> None:
        self.record(Added(item=item))

    @when(Opened)
    def _opened(self, e: Opened) -> None:
        self.name = e.name

    @when(Added)
    def _added(self, e: Added) -> None:
        self.items.append(e.item)

    @when(Measured)
    def _measured(self, e: Measured) -> None:
        pass


def test_versions_count_from_one_and_pending_events_are_collected_once() -> None:
    basket = Basket.open("mine")
    basket.add("apple")
    assert basket.version == 2
    assert [e.stream_version for e in basket.pending_events] == [1, 2]
    assert [e.name for e in basket.pending_events] == [
        "test_aggregate.Opened",
        "test_aggregate.Added",
    ]
    collected = basket.collect_events()
    assert len(collected) == 2
    assert basket.pending_events == ()
    assert basket.version == 2


def test_state_changes_through_apply_handlers_and_replays_the_same() -> None:
    basket = Basket.open("mine")
    basket.add("apple")
    basket.add("pear")
    replayed = Basket._replay(basket.id, [e.event for e in basket.collect_events()])
    assert (replayed.name, replayed.items, replayed.version) == (
        "mine",
        ["apple", "pear"],
        3,
    )


def test_mutable_defaults_are_not_shared_between_instances() -> None:
    one, two = Basket.open("a"), Basket.open("b")
    one.add("x")
    assert two.items == []
    assert Basket.items == []


def test_every_recorded_event_carries_its_metadata() -> None:
    basket = Basket.open("mine")
    envelope = basket.pending_events[0]
    assert isinstance(envelope.event_id, uuid.UUID)
    assert envelope.stream_id == basket.id
    assert envelope.version == 1
    assert envelope.timestamp.tzinfo is dt.UTC
    assert abs(envelope.timestamp - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    # Nothing caused it: it starts its own conversation.
    assert envelope.correlation_id == envelope.causation_id == str(envelope.event_id)
    assert envelope.partition is None
    assert envelope.offset is None


def test_events_recorded_while_handling_a_message_name_it() -> None:
    with message_context(MessageContext(correlation_id="c-1", causation_id="m-7")):
        basket = Basket.open("mine")
    envelope = basket.pending_events[0]
    assert (envelope.correlation_id, envelope.causation_id) == ("c-1", "m-7")


def test_an_unserializable_payload_fails_at_record_and_records_nothing() -> None:
    basket = Basket.open("mine")
    with pytest.raises(UnserializableEventError, match=r"Added\.item: expected str"):
        basket.add(42)  # type: ignore[arg-type]
    with pytest.raises(UnserializableEventError, match="finite float"):
        basket.record(Measured(value=math.nan, at=dt.datetime.now(dt.UTC)))
    with pytest.raises(UnserializableEventError, match="timezone-aware"):
        basket.record(Measured(value=1.0, at=dt.datetime(2024, 1, 1)))
    assert basket.version == 1
    assert len(basket.pending_events) == 1
    assert basket.items == []


def test_recording_an_event_without_a_handler_is_a_clear_error() -> None:
    basket = Basket.open("mine")
    with pytest.raises(TypeError, match="no @when handler for Unhandled"):
        basket.record(Unhandled())
    assert basket.version == 1


def test_user_headers_travel_with_the_event_and_dollar_names_are_reserved() -> None:
    basket = Basket.open("mine")
    envelope = basket.record(Added(item="x"), headers={"tenant": "acme"})
    assert envelope.headers == {"tenant": "acme"}
    with pytest.raises(UnserializableEventError, match="reserved"):
        basket.record(Added(item="y"), headers={"$v": "1"})


def test_an_aggregate_may_not_define_init() -> None:
    with pytest.raises(TypeError, match="defines __init__"):

        class Wrong(Aggregate):
            def __init__(self) -> None:
                super().__init__()


def test_a_handler_for_an_unregistered_class_fails_at_class_creation() -> None:
    class Loose(DomainEvent):
        pass

    with pytest.raises(TypeError, match="not a registered event"):

        class Wrong(Aggregate):
            @when(Loose)
            def _loose(self, e: Loose) -> None:
                pass


def test_replaying_events_of_another_aggregate_names_the_mismatch() -> None:
    with pytest.raises(TypeError, match="is 'x' really a Basket"):
        Basket._replay("x", [Unhandled()])


def test_aggregate_ids_must_be_non_empty_strings() -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        Basket("")
    assert Basket("given").id == "given"
