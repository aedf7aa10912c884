"""The payload type model: what an event's fields may hold, checked when a class is
declared (``@event``) and again when an aggregate records an event.

The model is codec-neutral: every codec stores these types, and its limits are what
every codec the framework ships can write (JSON's today: ints within 64 bits, finite
floats, str keys, lists and dicts at most 254 deep; a codec that stores less tightens
them here). The checks live in the domain rather than beside the JSON codec in
``framework.schema`` because ``Aggregate.record`` must refuse a bad value before
anything is recorded, and the domain may not import the schema layer; how each type
becomes bytes and back is the codec's part (``framework.schema.codecs``). Recording
also freezes the event's JSON values (``framework.domain.json_value``).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from framework.domain.json_value import JSON, FrozenList
from framework.errors import EventRegistrationError, UnserializableEventError

#: Returns a description of what is wrong with a value, or ``None`` when it fits: the
#: path to the bad part (``.field``, ``[0]``, ``['key']``), ": ", and what is wrong.
Check = Callable[[Any], str | None]

SUPPORTED = (
    "str, int, bool, float (finite), Decimal (finite), uuid.UUID, datetime "
    "(timezone-aware), date, bytes, Enum subclasses, None, JSON (framework.domain), "
    "X | None, list[X], tuple[X, ...], tuple[X, Y], frozenset[X], dict[str, X], and "
    "attrs classes of these"
)

#: The codecs' limits (see above). orjson refuses to write lists and dicts nested
#: deeper than this (the event's own dict counts as one level).
_MAX_NESTING = 254


def _at(step: str, problem: str) -> str:
    """``problem`` as seen one level up, ``step`` (``.name``, ``[0]``, ``['k']``)
    being where the level below sits."""
    return step + problem if problem[:1] in ".[" else f"{step}: {problem}"


def _bad(expected: str, value: Any) -> str:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"expected {expected}, got {type(value).__name__} {shown}"


def _exact(*kinds: type) -> Check:
    names = " or ".join(k.__name__ for k in kinds)

    def check(value: Any) -> str | None:
        return None if type(value) in kinds else _bad(names, value)

    return check


#: The codecs' limits (see above): orjson writes integers from the signed 64-bit
#: minimum to the unsigned maximum.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _int(value: Any) -> str | None:
    if type(value) is not int:
        return _bad("int", value)
    if not _INT_MIN <= value <= _INT_MAX:
        return _bad("an int within 64 bits (use Decimal or str for more)", value)
    return None


def _str(value: Any) -> str | None:
    if type(value) is not str:
        return _bad("str", value)
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return _bad("str without lone surrogates (not valid UTF-8)", value)
    return None


def _float(value: Any) -> str | None:
    if type(value) is float:
        # JSON has no NaN or infinity; orjson would silently write null.
        return None if math.isfinite(value) else _bad("a finite float", value)
    return _int(value) and _bad("float", value)


def _decimal(value: Any) -> str | None:
    if not isinstance(value, Decimal):
        return _bad("Decimal", value)
    return None if value.is_finite() else _bad("a finite Decimal", value)


def _datetime(value: Any) -> str | None:
    if not isinstance(value, dt.datetime):
        return _bad("datetime", value)
    if value.tzinfo is None or value.utcoffset() is None:
        return _bad("a timezone-aware datetime (naive times are ambiguous)", value)
    return None


def _date(value: Any) -> str | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return None
    return _bad("date", value)


def _instance(kind: type) -> Check:
    def check(value: Any) -> str | None:
        return None if isinstance(value, kind) else _bad(kind.__name__, value)

    return check


def _optional(inner: Check) -> Check:
    def check(value: Any) -> str | None:
        return None if value is None else inner(value)

    return check


def _sequence(container: type, item: Check) -> Check:
    # A list of JSON values is recorded as a FrozenList; it may be recorded again.
    kinds = (list, FrozenList) if container is list else (container,)

    def check(value: Any) -> str | None:
        if type(value) not in kinds:
            return _bad(container.__name__, value)
        for i, element in enumerate(typing.cast("list[Any]", value)):
            problem = item(element)
            if problem is not None:
                return _at(f"[{i}]", problem)
        return None

    return check


def _fixed_tuple(items: tuple[Check, ...]) -> Check:
    def check(value: Any) -> str | None:
        if type(value) is not tuple or len(value) != len(items):
            return _bad(f"a tuple of {len(items)} items", value)
        for i, (element, item) in enumerate(zip(value, items, strict=True)):
            problem = item(element)
            if problem is not None:
                return _at(f"[{i}]", problem)
        return None

    return check


def _mapping(item: Check) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, Mapping):
            return _bad("dict", value)
        for key, element in value.items():
            if _str(key) is not None:
                return f"key {key!r}: expected str keys (valid UTF-8)"
            problem = item(element)
            if problem is not None:
                return _at(f"[{key!r}]", problem)
        return None

    return check


_NOT_JSON = (
    "a JSON value (None, bool, int, float, str, a list, or a dict with str keys)"
)


def _json(levels: int) -> Check:
    """Checks a JSON value whose lists and dicts nest at most ``levels`` deep."""

    def check(value: Any) -> str | None:
        return _json_problem(value, levels, set())

    return check


def _json_problem(value: Any, levels: int, enclosing: set[int]) -> str | None:
    """What is wrong with a JSON value, if anything; ``enclosing`` holds the ids of
    the lists and dicts on the way down, to tell a cycle from a value seen twice."""
    kind = type(value)
    if kind is str:
        return _str(value)
    if value is None or kind is bool:
        return None
    if kind is int:
        fits = _INT_MIN <= value <= _INT_MAX
        return None if fits else _bad("an int within 64 bits (or use str)", value)
    if kind is float:
        return None if math.isfinite(value) else _bad("a finite float", value)
    if isinstance(value, dict | list):
        return _json_container_problem(value, levels, enclosing)
    hint = "; use a list" if isinstance(value, tuple) else ""
    return _bad(_NOT_JSON, value) + hint


def _json_container_problem(
    value: dict[Any, Any] | list[Any], levels: int, enclosing: set[int]
) -> str | None:
    if id(value) in enclosing:
        return "contains itself (a cycle), which JSON cannot write"
    if levels == 0:
        return (
            "nested deeper than JSON is written here: at most "
            f"{_MAX_NESTING} levels of lists and dicts, the event's own included"
        )
    enclosing.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str or _str(key) is not None:
                return f"key {key!r}: expected str keys (valid UTF-8) in a JSON object"
            problem = _json_problem(item, levels - 1, enclosing)
            if problem is not None:
                return _at(f"[{key!r}]", problem)
    else:
        for i, item in enumerate(value):
            problem = _json_problem(item, levels - 1, enclosing)
            if problem is not None:
                return _at(f"[{i}]", problem)
    enclosing.discard(id(value))
    return None


_SIMPLE: dict[Any, Check] = {
    str: _str,
    bool: _exact(bool),
    int: _int,
    float: _float,
    Decimal: _decimal,
    uuid.UUID: _instance(uuid.UUID),
    dt.datetime: _datetime,
    dt.date: _date,
    bytes: _exact(bytes),
    type(None): lambda v: None if v is None else _bad("None", v),
}


def check_for(  # noqa: PLR0911
    annotation: Any,
    where: str,
    localns: dict[str, Any] | None = None,
    *,
    depth: int = 1,
) -> Check:
    """Build the checker for one annotation; raise ``EventRegistrationError`` if the
    codec cannot store that type. ``depth`` counts the lists and dicts that enclose
    a value of it when the codec writes it (an event's field: 1, the event's own
    dict)."""
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    if annotation is JSON:
        return _json(_MAX_NESTING - depth)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _instance(annotation)
    if isinstance(annotation, type) and attrs.has(annotation):
        return payload_checker(
            annotation,
            where=f"{where} ({annotation.__name__})",
            localns=localns,
            depth=depth,
        )
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    inner = depth + 1
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return _optional(check_for(rest[0], where, localns, depth=depth))
    elif origin in (list, frozenset) and len(args) == 1:
        return _sequence(origin, check_for(args[0], where, localns, depth=inner))
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _sequence(tuple, check_for(args[0], where, localns, depth=inner))
    elif origin is tuple and args and Ellipsis not in args:
        return _fixed_tuple(
            tuple(check_for(a, where, localns, depth=inner) for a in args)
        )
    elif origin in (dict, Mapping) and len(args) == 2 and args[0] is str:
        return _mapping(check_for(args[1], where, localns, depth=inner))
    raise EventRegistrationError(
        f"{where} is annotated {annotation!r}, which events cannot store; "
        f"use one of: {SUPPORTED}"
    )


def payload_checker(
    cls: type, *, where: str, localns: dict[str, Any] | None = None, depth: int = 0
) -> Check:
    """A checker for every field of the attrs class ``cls``, whose instances the
    codec writes inside ``depth`` lists and dicts (an event: 0)."""
    try:
        hints = typing.get_type_hints(cls, localns=localns)
        # Resolve the attrs field types now, while the declaring scope is known, so
        # that codecs (cattrs) need not resolve string annotations later and fail.
        attrs.resolve_types(cls, localns=localns)
    except NameError as exc:
        raise EventRegistrationError(
            f"{where}: an annotation names something not defined when the class "
            f"is declared ({exc}); define or import it before the event class"
        ) from exc
    fields = [
        (
            f.name,
            check_for(hints[f.name], f"{where}.{f.name}", localns, depth=depth + 1),
        )
        for f in attrs.fields(cls)
    ]

    def check(value: Any) -> str | None:
        if type(value) is not cls:
            return _bad(cls.__name__, value)
        for name, field_check in fields:
            problem = field_check(getattr(value, name))
            if problem is not None:
                return _at(f".{name}", problem)
        return None

    return check


def ensure_serializable(event: Any, check: Check, name: str) -> None:
    """Raise ``UnserializableEventError`` naming the field if ``event`` is bad;
    otherwise freeze its JSON values in place (its class's ``__event_freeze__``), so
    that nothing changes the event once it is recorded."""
    problem = check(event)
    if problem is not None:
        raise UnserializableEventError(
            f"event {name!r} ({type(event).__name__}) cannot be stored: "
            f"{type(event).__name__}{problem}; nothing was recorded. "
            "Pass values of the annotated types"
        )
    freeze = getattr(type(event), "__event_freeze__", None)
    if freeze is not None:
        freeze(event)
