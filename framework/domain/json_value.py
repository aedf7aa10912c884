"""JSON values: the ``JSON`` annotation for free-form event fields and the read-only
dicts and lists an event holds them in once recorded.

A JSON value is ``None``, ``bool``, ``int`` (64-bit), a finite ``float``, ``str``, a
list of JSON values or a dict of ``str`` keys to JSON values. Recording an event checks
them (``framework.domain.payload``) and freezes them into the containers below
(``payload_freezer``), so that nothing holding a reference can change a recorded
event; decoding freezes them the same way, so a recorded event and a loaded one hold
the same types.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, SupportsIndex, TypeAlias

import attrs

if TYPE_CHECKING:
    # Read-only for type checkers too: a recorded value refuses changes, and
    # Mapping and Sequence take a dict[str, int] where dict[str, JSON] would not.
    JSON: TypeAlias = (
        "bool | int | float | str | Sequence[JSON] | Mapping[str, JSON] | None"
    )
    JSONObject: TypeAlias = Mapping[str, JSON]
else:

    class JSON:
        """Annotates an event field that holds any JSON value: ``body: JSON``,
        ``attributes: dict[str, JSON]``. An annotation, not a class of values."""

        def __new__(cls, *args: object, **kwargs: object) -> NoReturn:
            raise TypeError(
                "JSON is an annotation for event fields (body: JSON); its values "
                "are None, bool, int, float, str, lists and dicts"
            )

    #: Annotates an event field that holds a JSON object (a dict of str keys).
    JSONObject = dict[str, JSON]


def _refuse(value: FrozenDict | FrozenList) -> NoReturn:
    kind = "dict" if isinstance(value, dict) else "list"
    raise TypeError(
        f"this {kind} is a JSON value of a recorded event and cannot change; work "
        f"on a copy: {kind}(value), or copy.deepcopy(value) for nested values too"
    )


class FrozenDict(dict[str, Any]):
    """A dict of a recorded event's JSON value: equal to the plain dict, and
    refusing every change. Copies (``dict(d)``, ``copy.copy``, ``copy.deepcopy``)
    are plain, mutable dicts and lists; pickling keeps it frozen."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        _refuse(self)

    def __delitem__(self, key: str) -> NoReturn:
        _refuse(self)

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def clear(self) -> NoReturn:
        _refuse(self)

    def pop(self, *args: Any) -> NoReturn:
        _refuse(self)

    def popitem(self) -> NoReturn:
        _refuse(self)

    def setdefault(self, *args: Any) -> NoReturn:
        _refuse(self)

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        copied: dict[str, Any] = {}
        memo[id(self)] = copied
        for key, value in self.items():
            copied[key] = copy.deepcopy(value, memo)
        return copied

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return FrozenDict, (dict(self),)


class FrozenList(list[Any]):
    """A list of a recorded event's JSON value: equal to the plain list, and
    refusing every change. Copies (``list(l)``, ``copy.copy``, ``copy.deepcopy``)
    are plain, mutable lists and dicts; pickling keeps it frozen."""

    __slots__ = ()

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        _refuse(self)

    def __delitem__(self, index: SupportsIndex | slice) -> NoReturn:
        _refuse(self)

    def __iadd__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self)

    def __imul__(self, count: SupportsIndex) -> NoReturn:
        _refuse(self)

    def append(self, value: Any) -> NoReturn:
        _refuse(self)

    def extend(self, values: Any) -> NoReturn:
        _refuse(self)

    def insert(self, index: SupportsIndex, value: Any) -> NoReturn:
        _refuse(self)

    def pop(self, index: SupportsIndex = -1) -> NoReturn:
        _refuse(self)

    def remove(self, value: Any) -> NoReturn:
        _refuse(self)

    def reverse(self) -> NoReturn:
        _refuse(self)

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self)

    def clear(self) -> NoReturn:
        _refuse(self)

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        copied: list[Any] = []
        memo[id(self)] = copied
        copied.extend(copy.deepcopy(value, memo) for value in self)
        return copied

    def __reduce__(self) -> tuple[type[FrozenList], tuple[list[Any]]]:
        return FrozenList, (list(self),)


def freeze_json(value: Any) -> Any:
    """A frozen copy of the JSON value ``value`` (checked already): every dict and
    list in it copied into a ``FrozenDict`` or ``FrozenList``."""
    if isinstance(value, dict):
        return FrozenDict({key: freeze_json(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList([freeze_json(item) for item in value])
    return value


#: Returns a value with its JSON values frozen (attrs instances: frozen in place).
Freeze = Callable[[Any], Any]


def freezer_for(annotation: Any) -> Freeze | None:  # noqa: PLR0911
    """What freezes the JSON values in a value of ``annotation`` (checked by
    ``framework.domain.payload.check_for`` already), or ``None`` when it holds
    none. Lists and dicts around JSON values are frozen too, so that no part of a
    recorded value can change."""
    if annotation is JSON:
        return freeze_json
    if isinstance(annotation, type) and attrs.has(annotation):
        return payload_freezer(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        (rest,) = [a for a in args if a is not type(None)]
        some = freezer_for(rest)
        return None if some is None else lambda v: None if v is None else some(v)
    if origin is tuple and args and Ellipsis not in args:
        parts = [freezer_for(a) for a in args]
        if not any(parts):
            return None
        return lambda v: tuple(
            x if part is None else part(x) for part, x in zip(parts, v, strict=True)
        )
    if origin in (list, tuple):
        return _freeze_items(origin, freezer_for(args[0]))
    if origin in (dict, Mapping):
        return _freeze_values(freezer_for(args[1]))
    # Scalars, containers of scalars, and frozensets (whose items are hashable,
    # so never a list or a dict).
    return None


def _freeze_items(container: type, item: Freeze | None) -> Freeze | None:
    if item is None:
        return None
    if container is list:
        return lambda v: FrozenList([item(x) for x in v])
    return lambda v: tuple(item(x) for x in v)


def _freeze_values(item: Freeze | None) -> Freeze | None:
    if item is None:
        return None
    return lambda v: FrozenDict({k: item(x) for k, x in v.items()})


def payload_freezer(cls: type) -> Freeze | None:
    """What freezes, in place, the JSON values of an instance of the attrs class
    ``cls`` (its types resolved by ``framework.domain.payload.payload_checker``), or
    ``None`` if it holds none: the codec's speed for ordinary events stays what it
    was."""
    fields = [
        (f.name, freeze)
        for f in attrs.fields(cls)
        if (freeze := freezer_for(f.type)) is not None
    ]
    if not fields:
        return None

    def freeze_fields(value: Any) -> Any:
        for name, freeze in fields:
            # Frozen attrs classes refuse setattr; this is the value recorded, made
            # safe from whoever still holds its lists and dicts, and equal to it.
            object.__setattr__(value, name, freeze(getattr(value, name)))
        return value

    return freeze_fields


__all__ = [
    "JSON",
    "Freeze",
    "FrozenDict",
    "FrozenList",
    "JSONObject",
    "freeze_json",
    "freezer_for",
    "payload_freezer",
]
