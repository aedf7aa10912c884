"""Declaring events: frozen attrs, one class per (name, version), storable payloads."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

import attrs
import pytest

from framework.domain.events import DomainEvent, EventRegistry, event, event_name
from framework.errors import EventRegistrationError


@pytest.fixture
def registry() -> EventRegistry:
    return EventRegistry()


def test_an_event_is_a_frozen_keyword_only_attrs_class(registry: EventRegistry) -> None:
    @event("t.Deposited", version=2, registry=registry)
    class Deposited(DomainEvent):
        amount: int

    deposited = Deposited(amount=5)
    assert attrs.has(Deposited)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        deposited.amount = 6  # type: ignore[misc]
    with pytest.raises(TypeError):
        Deposited(5)  # type: ignore[misc]
    assert event_name(Deposited) == ("t.Deposited", 2)
    assert registry.lookup("t.Deposited", 2) is Deposited
    assert Deposited in registry


def test_two_classes_under_one_name_and_version_fail_naming_both(
    registry: EventRegistry,
) -> None:
    @event("t.Clash", registry=registry)
    class First(DomainEvent):
        pass

    with pytest.raises(EventRegistrationError) as info:

        @event("t.Clash", registry=registry)
        class Second(DomainEvent):
            pass

    message = str(info.value)
    assert "First" in message
    assert "Second" in message
    assert "'t.Clash' version 1" in message


def test_the_same_name_at_another_version_is_a_separate_event(
    registry: EventRegistry,
) -> None:
    @event("t.Renamed", version=1, registry=registry)
    class RenamedV1(DomainEvent):
        name: str

    @event("t.Renamed", version=2, registry=registry)
    class RenamedV2(DomainEvent):
        first: str
        last: str

    assert registry.versions_of("t.Renamed") == [1, 2]
    assert registry.names() == ["t.Renamed v1", "t.Renamed v2"]


def test_a_field_type_the_codec_cannot_store_fails_at_declaration(
    registry: EventRegistry,
) -> None:
    with pytest.raises(EventRegistrationError, match=r"\.handle is annotated"):

        @event("t.Bad", registry=registry)
        class Bad(DomainEvent):
            handle: object


def test_a_class_that_is_not_a_domain_event_is_refused(
    registry: EventRegistry,
) -> None:
    with pytest.raises(EventRegistrationError, match="does not subclass DomainEvent"):
        event("t.Plain", registry=registry)(type("Plain", (), {}))


@pytest.mark.parametrize(
    ("name", "version"), [("", 1), ("  ", 1), ("t.X", 0), ("t.X", True)]
)
def test_bad_names_and_versions_are_refused(
    registry: EventRegistry, name: str, version: int
) -> None:
    with pytest.raises(EventRegistrationError):
        event(name, version=version, registry=registry)


def test_every_supported_type_is_accepted(registry: EventRegistry) -> None:
    class Colour(enum.Enum):
        RED = "red"

    @attrs.frozen
    class Money:
        cents: int
        currency: str

    @event("t.Everything", registry=registry)
    class Everything(DomainEvent):
        s: str
        i: int
        b: bool
        f: float
        d: Decimal
        u: uuid.UUID
        when: dt.datetime
        day: dt.date
        raw: bytes
        colour: Colour
        maybe: int | None
        items: list[str]
        pair: tuple[int, str]
        many: tuple[int, ...]
        tags: frozenset[str]
        extra: dict[str, int]
        money: Money

    assert registry.lookup("t.Everything", 1) is Everything


def test_an_unregistered_class_has_no_event_name() -> None:
    class Loose(DomainEvent):
        pass

    with pytest.raises(EventRegistrationError, match="decorate it with @event"):
        event_name(Loose)
