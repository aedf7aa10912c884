"""The JSON codec gives back exactly what it stored, and names what it cannot read."""

from __future__ import annotations

import copy
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import Aggregate, Application
from framework.domain import JSON, EventEnvelope, JSONObject, when
from framework.domain.events import DomainEvent, EventRegistry, event
from framework.domain.payload import ensure_serializable
from framework.errors import SchemaError, UnknownEventError
from framework.projections import Projection, Transaction, on
from framework.schema.codecs.json import JsonEventCodec

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


# -- JSON values --------------------------------------------------------------

json_registry = EventRegistry()


@attrs.frozen
class Note:
    text: str
    extra: JSON


@event("codec.Webhook", registry=json_registry)
class Webhook(DomainEvent):
    body: JSON
    attributes: JSONObject
    tags: list[JSON]
    maybe: JSON | None
    note: Note
    pairs: tuple[JSON, ...]
    count: int = 0


jsons = st.recursive(
    st.none()
    | st.booleans()
    | ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5)
    ),
    max_leaves=30,
)
webhooks = st.builds(
    Webhook,
    body=jsons,
    attributes=st.dictionaries(text, jsons, max_size=4),
    tags=st.lists(jsons, max_size=4),
    maybe=jsons,
    note=st.builds(Note, text=text, extra=jsons),
    pairs=st.lists(jsons, max_size=3).map(tuple),
    count=ints,
)


def typed(value: Any) -> Any:
    """``value`` with every container's and number's exact type spelled out, so that
    a comparison tells 1 from 1.0 and True, -0.0 from 0.0, and a frozen dict from a
    plain one."""
    kind = type(value).__name__
    if isinstance(value, dict):
        return kind, [(k, typed(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return kind, [typed(v) for v in value]
    if attrs.has(type(value)):
        return kind, [
            (f.name, typed(getattr(value, f.name))) for f in attrs.fields(type(value))
        ]
    return kind, repr(value)


@settings(deadline=None)
@given(webhooks)
def test_json_values_round_trip_exactly_in_the_form_they_were_recorded(
    value: Webhook,
) -> None:
    passed_in = copy.deepcopy(value)
    ensure_serializable(value, Webhook.__event_check__, "codec.Webhook")
    assert value == passed_in  # recording freezes; it changes no value
    codec = JsonEventCodec(json_registry)
    decoded = codec.decode("codec.Webhook", 1, codec.encode(value))
    assert decoded == value
    assert typed(decoded) == typed(value)


def test_decoded_json_values_are_as_frozen_as_recorded_ones() -> None:
    codec = JsonEventCodec(json_registry)
    data = b'{"body":{"a":[1,{}]},"attributes":{"k":[]},"tags":[{}],"maybe":null,'
    data += b'"note":{"text":"t","extra":[[]]},"pairs":[{"p":1}],"count":3}'
    decoded: Any = codec.decode("codec.Webhook", 1, data)
    for change in [
        lambda: decoded.body["a"].append(2),
        lambda: decoded.body["a"][1].update(x=1),
        lambda: decoded.attributes.pop("k"),
        lambda: decoded.tags.append(1),
        lambda: decoded.note.extra[0].append(1),
        decoded.pairs[0].clear,
    ]:
        with pytest.raises(TypeError, match="recorded event"):
            change()


def test_unicode_empty_containers_and_extreme_numbers_round_trip() -> None:
    value = Webhook(
        body={
            "": [],
            "ключ 🔑": {"": {}},
            "nul\x00": "\u2028 \U0001f600 é",
            "ints": [2**64 - 1, -(2**63), 0, -1],
            "floats": [-0.0, 5e-324, 1.7976931348623157e308, 0.1, 1.0],
            "flags": [True, False, None],
        },
        attributes={"k": {}},
        tags=[[], {}, [[]], ""],
        maybe=None,
        note=Note(text="", extra=[{}]),
        pairs=(),
    )
    ensure_serializable(value, Webhook.__event_check__, "codec.Webhook")
    codec = JsonEventCodec(json_registry)
    decoded = codec.decode("codec.Webhook", 1, codec.encode(value))
    assert typed(decoded) == typed(value)


def nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_the_deepest_json_each_field_may_hold_is_encoded_and_decoded() -> None:
    codec = JsonEventCodec(json_registry)
    value = Webhook(
        body=nested(253),
        attributes={"k": nested(252)},
        tags=[nested(252)],
        maybe=nested(253),
        note=Note(text="", extra=nested(252)),
        pairs=(nested(252),),
    )
    ensure_serializable(value, Webhook.__event_check__, "codec.Webhook")
    assert codec.decode("codec.Webhook", 1, codec.encode(value)) == value


@event("codec.AttributesChanged")
class AttributesChanged(DomainEvent):
    attributes: JSONObject
    payload: JSON


class Customer(Aggregate):
    attributes: dict[str, Any] = {}  # noqa: RUF012 - copied per instance by Aggregate
    payloads: list[Any] = []  # noqa: RUF012 - copied per instance by Aggregate

    def change(self, attributes: dict[str, Any], payload: Any) -> None:
        self.record(AttributesChanged(attributes=attributes, payload=payload))

    @when(AttributesChanged)
    def _changed(self, e: AttributesChanged) -> None:
        self.attributes = {**self.attributes, **e.attributes}
        self.payloads.append(e.payload)


class CustomerAttributes(Projection):
    name = "customer_attributes"
    version = 1
    tables = ("customers",)

    @on(AttributesChanged)
    def _changed(self, e: EventEnvelope[AttributesChanged], tx: Transaction) -> None:
        customers = tx.table("customers")
        row = customers.get(e.stream_id) or {"attributes": {}, "payloads": []}
        row["attributes"].update(e.event.attributes)
        row["payloads"].append(e.event.payload)
        customers.put(e.stream_id, row)


def test_json_fields_are_saved_loaded_and_projected_as_they_were_recorded() -> None:
    app = Application("memory://")
    inline = app.project(CustomerAttributes(), inline=True)
    customer = Customer()
    first = {"plan": "pro", "seats": 3, "tags": ["a", "ü"], "limits": {}}
    customer.change(first, {"webhook": [1, 2.5, None, True, {"deep": [[]]}]})
    first["plan"] = "changed after recording"  # cannot reach the recorded event
    customer.change({"seats": 2**64 - 1, "ratio": -0.5}, [])
    recorded = [e.event for e in customer.pending_events]
    app.save(customer)

    loaded = app.load(Customer, customer.id)
    assert (
        loaded.attributes
        == customer.attributes
        == {
            "plan": "pro",
            "seats": 2**64 - 1,
            "tags": ["a", "ü"],
            "limits": {},
            "ratio": -0.5,
        }
    )
    assert loaded.payloads == customer.payloads
    assert typed(loaded.payloads) == typed(customer.payloads)
    stored = [e.event for e in app.read_stream(customer.id)]
    assert stored == recorded
    assert typed(stored) == typed(recorded)

    row = inline.get("customers", customer.id)
    assert row == {"attributes": loaded.attributes, "payloads": loaded.payloads}
