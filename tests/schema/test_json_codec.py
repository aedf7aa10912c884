"""The JSON codec gives back exactly what it stored, and names what it cannot read."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.domain.events import DomainEvent, EventRegistry, event
from framework.domain.payload import ensure_serializable
from framework.errors import SchemaError, UnknownEventError
from framework.schema.json import JsonEventCodec

registry = EventRegistry()


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Money:
    cents: int
    currency: str


@event("codec.Everything", registry=registry)
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
    monies: list[Money]


@event("codec.Small", registry=registry)
class Small(DomainEvent):
    n: int


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
ints = st.integers(-(2**63), 2**64 - 1)
offsets = st.integers(-23 * 60, 23 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
money = st.builds(Money, cents=ints, currency=text)
everything = st.builds(
    Everything,
    s=text,
    i=ints,
    b=st.booleans(),
    f=st.floats(allow_nan=False, allow_infinity=False),
    d=st.decimals(allow_nan=False, allow_infinity=False),
    u=st.uuids(),
    when=st.datetimes(timezones=offsets),
    day=st.dates(),
    raw=st.binary(max_size=30),
    colour=st.sampled_from(Colour),
    maybe=st.none() | ints,
    items=st.lists(text, max_size=4),
    pair=st.tuples(ints, text),
    many=st.lists(ints, max_size=4).map(tuple),
    tags=st.frozensets(text, max_size=4),
    extra=st.dictionaries(text, ints, max_size=4),
    money=money,
    monies=st.lists(money, max_size=3),
)


@given(everything)
def test_every_storable_payload_round_trips_exactly(value: Everything) -> None:
    ensure_serializable(value, Everything.__event_check__, "codec.Everything")
    codec = JsonEventCodec(registry)
    data = codec.encode(value)
    assert codec.decode("codec.Everything", 1, data) == value


def test_an_unknown_event_names_itself_its_position_and_the_registered_names() -> None:
    codec = JsonEventCodec(registry)
    with pytest.raises(UnknownEventError) as info:
        codec.decode("codec.Missing", 1, b"{}", where="events/3 offset 17")
    message = str(info.value)
    assert "'codec.Missing' version 1" in message
    assert "events/3 offset 17" in message
    assert "codec.Small v1" in message
    assert info.value.registered == ("codec.Everything v1", "codec.Small v1")
    assert isinstance(info.value, LookupError)


def test_an_unknown_version_of_a_known_event_suggests_an_upcaster() -> None:
    codec = JsonEventCodec(registry)
    with pytest.raises(UnknownEventError, match="upcaster from version 3"):
        codec.decode("codec.Small", 3, b'{"n": 1}', where="here")


def test_stored_bytes_of_another_shape_give_a_schema_error() -> None:
    codec = JsonEventCodec(registry)
    with pytest.raises(SchemaError, match="does not match Small"):
        codec.decode("codec.Small", 1, b'{"m": 1}')
    with pytest.raises(SchemaError):
        codec.decode("codec.Small", 1, b"not json")


def test_encoding_is_compact_json() -> None:
    assert JsonEventCodec(registry).encode(Small(n=3)) == b'{"n":3}'
