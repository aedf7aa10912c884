"""Domain events: frozen attrs classes registered under a stable name and a version."""

from __future__ import annotations

import sys
import threading
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import attrs

from framework.domain.json_value import Freeze, payload_freezer
from framework.domain.payload import Check, payload_checker
from framework.errors import EventRegistrationError

E = TypeVar("E", bound="DomainEvent")


class DomainEvent:
    """Base of every event class. Declare subclasses with ``@event(name, version)``.

    An event holds only its payload; id, stream, version, time and causation travel
    beside it in an ``EventEnvelope``.
    """

    __slots__ = ()
    __event_name__: ClassVar[str]
    __event_version__: ClassVar[int]
    __event_check__: ClassVar[Check]
    #: Freezes an instance's JSON values in place; ``None`` when it holds none.
    __event_freeze__: ClassVar[Freeze | None] = None


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class EventRegistry:
    """Event classes by (name, version), and each class's name and version."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, int], type[DomainEvent]] = {}
        self._lock = threading.Lock()

    def register(self, cls: type[DomainEvent], name: str, version: int) -> None:
        """Register ``cls``; raise ``EventRegistrationError`` naming both classes if
        another class already holds that name and version."""
        key = (name, version)
        with self._lock:
            existing = self._by_key.get(key)
            # Re-executing the same module (importlib.reload) declares the same class
            # again; only a different class under the same key is a real clash.
            if existing is not None and _qualified(existing) != _qualified(cls):
                raise EventRegistrationError(
                    f"event name {name!r} version {version} is registered twice: by "
                    f"{_qualified(existing)} and by {_qualified(cls)}; give one of "
                    "them another name or version"
                )
            self._by_key[key] = cls

    def lookup(self, name: str, version: int) -> type[DomainEvent] | None:
        return self._by_key.get((name, version))

    def versions_of(self, name: str) -> list[int]:
        return sorted(v for (n, v) in self._by_key if n == name)

    def names(self) -> list[str]:
        """Every registered ``name v<version>``, sorted."""
        return sorted(f"{n} v{v}" for (n, v) in self._by_key)

    def __contains__(self, cls: object) -> bool:
        return (
            isinstance(cls, type)
            and self._by_key.get(
                (
                    getattr(cls, "__event_name__", ""),
                    getattr(cls, "__event_version__", 0),
                )
            )
            is cls
        )


#: The registry ``@event`` uses unless told otherwise; decoding looks names up here.
registry = EventRegistry()


@typing.dataclass_transform(
    kw_only_default=True, frozen_default=True, field_specifiers=(attrs.field,)
)
def event(
    name: str, *, version: int = 1, registry: EventRegistry | None = None
) -> Callable[[type[E]], type[E]]:
    """Declare an event class: frozen keyword-only attrs, registered as (name, version).

    The payload's annotations are checked now, so a type the codec cannot store fails
    at import time. Raises ``EventRegistrationError``. Fields annotated ``JSON``
    (``framework.domain.JSON``) hold free-form JSON values, frozen once recorded.
    """
    if not isinstance(name, str) or not name.strip():
        raise EventRegistrationError(f"an event name must be a non-empty str: {name!r}")
    if name.startswith("$"):
        raise EventRegistrationError(
            f"event name {name!r}: names starting with '$' are the framework's own "
            "(policy checkpoints); choose another"
        )
    if type(version) is not int or version < 1:
        raise EventRegistrationError(
            f"event {name!r}: version must be an int of at least 1, got {version!r}"
        )
    target = registry if registry is not None else globals()["registry"]
    # Annotations are strings under `from __future__ import annotations`; names local
    # to the declaring function (value objects, enums) resolve only from its frame.
    caller_locals = dict(sys._getframe(1).f_locals)

    def declare(cls: type[E]) -> type[E]:
        if not (isinstance(cls, type) and issubclass(cls, DomainEvent)):
            raise EventRegistrationError(
                f"@event({name!r}) decorates {cls!r}, which does not subclass "
                "DomainEvent; declare it as `class X(DomainEvent)`"
            )
        if "__attrs_attrs__" not in cls.__dict__:
            cls = attrs.frozen(kw_only=True, slots=True)(cls)
        elif not getattr(cls, "__attrs_frozen__", True):
            raise EventRegistrationError(
                f"event class {_qualified(cls)} must be frozen"
            )
        checker = payload_checker(
            cls, where=f"event {name!r} ({cls.__qualname__})", localns=caller_locals
        )
        cls.__event_name__ = name
        cls.__event_version__ = version
        cls.__event_check__ = staticmethod(checker)
        freeze = payload_freezer(cls)
        cls.__event_freeze__ = None if freeze is None else staticmethod(freeze)
        target.register(cls, name, version)
        return cls

    return declare


def event_name(cls: type[Any]) -> tuple[str, int]:
    """The registered (name, version) of an event class."""
    try:
        return cls.__dict__["__event_name__"], cls.__dict__["__event_version__"]
    except KeyError:
        raise EventRegistrationError(
            f"{_qualified(cls)} is not a registered event; decorate it with "
            "@event('context.EventName', version=1)"
        ) from None
