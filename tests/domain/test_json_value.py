"""JSON values in events: declared with ``JSON``, checked and frozen when recorded."""

from __future__ import annotations

import copy
import datetime as dt
import math
import pickle
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Optional

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.domain import (
    JSON,
    Aggregate,
    DomainEvent,
    EventRegistry,
    JSONObject,
    event,
    when,
)
from framework.errors import EventRegistrationError, UnserializableEventError

registry = EventRegistry()


@attrs.frozen
class Labelled:
    label: str
    extra: JSON


@event("json.Received", registry=registry)
class Received(DomainEvent):
    body: JSON
    attributes: JSONObject
    tags: list[JSON]
    labelled: Labelled | None = None


class Inbox(Aggregate):
    kept: Any = None

    @when(Received)
    def _received(self, e: Received) -> None:
        # An aggregate that keeps a reference to what an event holds.
        self.kept = e.attributes


def received(
    body: Any = None, attributes: Any = None, tags: Any = None, **kw: Any
) -> Received:
    return Received(
        body=body,
        attributes={} if attributes is None else attributes,
        tags=[] if tags is None else tags,
        **kw,
    )


def nested(levels: int) -> list[Any]:
    """A list nested ``levels`` deep: ``nested(1) == []``, ``nested(2) == [[]]``."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


# -- declaring ------------------------------------------------------------------


@pytest.mark.parametrize(
    "annotation",
    [
        JSON,
        JSON | None,
        Optional[JSON],  # noqa: UP045 - the spelling users still write
        JSONObject,
        JSONObject | None,
        dict[str, JSON],
        list[JSON],
        list[JSON] | None,
        tuple[JSON, ...],
        tuple[int, JSON],
        frozenset[JSON],
        dict[str, list[JSON]],
    ],
    ids=repr,
)
def test_json_annotations_are_accepted_alone_and_inside_other_types(
    annotation: Any,
) -> None:
    local = EventRegistry()
    cls = type("Holder", (DomainEvent,), {"__annotations__": {"value": annotation}})
    declared = event("json.Holder", registry=local)(cls)
    assert local.lookup("json.Holder", 1) is declared


def test_json_under_keys_that_are_not_str_is_refused_at_declaration() -> None:
    with pytest.raises(EventRegistrationError, match=r"\.by_number is annotated"):

        @event("json.Bad", registry=EventRegistry())
        class Bad(DomainEvent):
            by_number: dict[int, JSON]


def test_json_is_an_annotation_and_not_a_class_to_instantiate() -> None:
    with pytest.raises(TypeError, match="annotation"):
        JSON()


# -- checking when recorded ---------------------------------------------------


def test_a_value_that_is_not_json_names_the_field_the_path_and_what_was_found() -> None:
    inbox = Inbox()
    with pytest.raises(UnserializableEventError) as info:
        inbox.record(received(attributes={"a": [1, "two", {3}]}))
    message = str(info.value)
    assert "'json.Received'" in message
    assert "Received.attributes['a'][2]: expected a JSON value" in message
    assert "got set {3}" in message
    assert "nothing was recorded" in message
    assert inbox.version == 0
    assert inbox.pending_events == ()
    assert inbox.kept is None


#: Values JSON cannot hold, with what the error says was found.
NOT_JSON: list[tuple[Any, str]] = [
    ({1, 2}, "got set {1, 2}"),
    (frozenset(), "got frozenset"),
    (b"raw", "got bytes b'raw'"),
    (bytearray(b"raw"), "got bytearray"),
    (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "got datetime"),
    (dt.date(2024, 1, 1), "got date"),
    (Decimal("1.5"), "got Decimal"),
    ((1, 2), "got tuple (1, 2); use a list"),
    (math.nan, "expected a finite float, got float nan"),
    (math.inf, "expected a finite float, got float inf"),
    (-math.inf, "expected a finite float, got float -inf"),
    (2**64, "expected an int within 64 bits"),
    (-(2**63) - 1, "expected an int within 64 bits"),
    ("\ud800", "without lone surrogates"),
    ({1: "one"}, "key 1: expected str keys"),
    ({("a",): 1}, "key ('a',): expected str keys"),
    ({"\udfff": 1}, "key '\\udfff': expected str keys"),
    (object(), "got object <object object"),
    (Labelled(label="x", extra=1), "got Labelled"),
    (range(3), "got range"),
    (iter([1]), "got list_iterator"),
]


@pytest.mark.parametrize(("bad", "found"), NOT_JSON, ids=lambda v: repr(v)[:20])
def test_each_kind_of_non_json_value_is_refused_naming_what_was_found(
    bad: Any, found: str
) -> None:
    inbox = Inbox()
    with pytest.raises(UnserializableEventError) as info:
        inbox.record(received(body=bad))
    assert "Received.body: " in str(info.value)
    assert found in str(info.value)
    assert inbox.version == 0


def test_ints_at_the_64_bit_bounds_are_json() -> None:
    inbox = Inbox()
    inbox.record(received(body=[-(2**63), 2**64 - 1, 0, -1]))
    assert inbox.version == 1


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
jsons = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def bad_json_at_a_path(draw: st.DrawFn) -> tuple[Any, str, str]:
    """A JSON value with one non-JSON value at a drawn depth, the path to it
    (``['a'][2]``) and what the error should say was found."""
    bad, found = draw(st.sampled_from(NOT_JSON))
    value = bad
    path = ""
    for _ in range(draw(st.integers(0, 12))):
        siblings = draw(st.lists(jsons, max_size=3))
        if draw(st.booleans()):
            index = draw(st.integers(0, len(siblings)))
            value = [*siblings[:index], value, *siblings[index:]]
            path = f"[{index}]{path}"
        else:
            key = draw(text)
            others = {f"{key}~{n}": s for n, s in enumerate(siblings)}
            value = {**others, key: value} if draw(st.booleans()) else {key: value}
            path = f"[{key!r}]{path}"
    return value, path, found


@settings(deadline=None)
@given(bad_json_at_a_path())
def test_a_bad_value_at_any_depth_is_refused_naming_its_path(
    case: tuple[Any, str, str],
) -> None:
    value, path, found = case
    for build, field in [
        (lambda v: received(body=v), "body"),
        (lambda v: received(tags=["fine", v]), "tags[1]"),
        (lambda v: received(attributes={"k": v}), "attributes['k']"),
        (
            lambda v: received(labelled=Labelled(label="l", extra=v)),
            "labelled.extra",
        ),
    ]:
        inbox = Inbox()
        with pytest.raises(UnserializableEventError) as info:
            inbox.record(build(value))
        assert f"Received.{field}{path}: " in str(info.value)
        assert found in str(info.value)
        assert inbox.version == 0


def test_a_value_that_contains_itself_is_refused_naming_where_the_cycle_closes() -> (
    None
):
    loop: list[Any] = [1]
    loop.append(loop)
    ring: dict[str, Any] = {"x": {}}
    ring["x"]["y"] = ring
    inbox = Inbox()
    with pytest.raises(UnserializableEventError, match=r"body\[1\]: contains itself"):
        inbox.record(received(body=loop))
    with pytest.raises(
        UnserializableEventError, match=r"attributes\['r'\]\['x'\]\['y'\]: contains"
    ):
        inbox.record(received(attributes={"r": ring}))
    assert inbox.version == 0


def test_the_same_value_twice_is_not_a_cycle() -> None:
    shared = {"a": [1, 2]}
    inbox = Inbox()
    inbox.record(received(body=[shared, shared, {"again": shared}]))
    assert inbox.pending_events[0].event.body == [shared, shared, {"again": shared}]


@pytest.mark.parametrize(
    ("build", "levels"),
    [
        # The event itself is one level of the stored JSON; the encoder writes 254.
        (lambda v: received(body=v), 253),
        (lambda v: received(attributes={"k": v}), 252),
        (lambda v: received(tags=[v]), 252),
        (lambda v: received(labelled=Labelled(label="l", extra=v)), 252),
    ],
    ids=["body", "attributes", "tags", "labelled"],
)
def test_json_nested_deeper_than_the_encoder_writes_is_refused_when_recorded(
    build: Callable[[Any], Received], levels: int
) -> None:
    inbox = Inbox()
    inbox.record(build(nested(levels)))
    with pytest.raises(UnserializableEventError, match="nested deeper than"):
        inbox.record(build(nested(levels + 1)))
    assert inbox.version == 1


# -- freezing -----------------------------------------------------------------


def test_changing_the_values_passed_in_after_recording_does_not_change_the_event() -> (
    None
):
    body = {"list": [1, 2], "inner": {"a": 1}}
    attributes = {"k": [1]}
    tags = [{"t": 1}]
    inbox = Inbox()
    recorded = inbox.record(received(body, attributes, tags)).event
    body["list"].append(3)
    body["inner"]["b"] = 2
    body["new"] = True
    attributes["k"].append(2)
    attributes["other"] = 1
    tags.append("more")
    tags[0]["t"] = 2
    assert recorded.body == {"list": [1, 2], "inner": {"a": 1}}
    assert recorded.attributes == {"k": [1]}
    assert recorded.tags == [{"t": 1}]


def test_a_recorded_json_value_refuses_every_change() -> None:
    inbox = Inbox()
    recorded = inbox.record(received({"list": [1, {"deep": []}]}, {"k": 1})).event
    body: Any = recorded.body
    changes: list[Callable[[], object]] = [
        lambda: body.__setitem__("x", 1),
        lambda: body.__delitem__("list"),
        lambda: body.update(x=1),
        lambda: body.setdefault("x", 1),
        lambda: body.pop("list"),
        body.popitem,
        body.clear,
        lambda: body.__ior__({"x": 1}),
        lambda: body["list"].append(3),
        lambda: body["list"].extend([3]),
        lambda: body["list"].insert(0, 3),
        lambda: body["list"].__setitem__(0, 3),
        lambda: body["list"].__delitem__(0),
        body["list"].pop,
        lambda: body["list"].remove(1),
        body["list"].reverse,
        lambda: body["list"].sort(key=str),
        body["list"].clear,
        lambda: body["list"].__iadd__([3]),
        lambda: body["list"].__imul__(2),
        lambda: body["list"][1]["deep"].append(1),
    ]
    for change in changes:
        with pytest.raises(TypeError, match="recorded event"):
            change()
    assert recorded.body == {"list": [1, {"deep": []}]}
    with pytest.raises(TypeError, match="recorded event"):
        recorded.attributes["k"] = 2  # type: ignore[index]


def test_an_aggregate_keeping_a_reference_cannot_change_the_recorded_event() -> None:
    inbox = Inbox()
    envelope = inbox.record(received(attributes={"k": 1}))
    assert inbox.kept == {"k": 1}
    with pytest.raises(TypeError, match="recorded event"):
        inbox.kept["k"] = 2
    assert envelope.event.attributes == {"k": 1}


def test_copies_of_a_frozen_value_are_plain_mutable_dicts_and_lists() -> None:
    inbox = Inbox()
    body: Any = inbox.record(received({"a": [1, {"b": 2}]})).event.body
    shallow = dict(body)
    shallow["c"] = 3
    assert type(copy.copy(body)) is dict
    deep = copy.deepcopy(body)
    assert type(deep) is dict
    assert type(deep["a"]) is list
    assert type(deep["a"][1]) is dict
    deep["a"][1]["b"] = 5
    deep["a"].append(6)
    assert body == {"a": [1, {"b": 2}]}
    assert [*list(body["a"]), 7] == [1, {"b": 2}, 7]


def test_a_frozen_value_equals_the_plain_value_and_survives_pickling() -> None:
    inbox = Inbox()
    recorded = inbox.record(received({"a": [1, {"b": None}]}, tags=[[]])).event
    assert recorded.body == {"a": [1, {"b": None}]}
    assert isinstance(recorded.body, dict)
    assert isinstance(recorded.tags, list)
    assert repr(recorded.body) == "{'a': [1, {'b': None}]}"
    again = pickle.loads(pickle.dumps(recorded))  # noqa: S301 - our own bytes
    assert again == recorded
    with pytest.raises(TypeError, match="recorded event"):
        again.body["a"].append(2)


def test_a_frozen_value_can_be_recorded_again_in_another_event() -> None:
    inbox = Inbox()
    first = inbox.record(received({"a": [1]}, {"k": [2]}, [[3]])).event
    second = inbox.record(
        received(first.body, first.attributes, first.tags, labelled=None)
    ).event
    assert second == first
    assert inbox.version == 2
