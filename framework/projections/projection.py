"""Projections: a handler per event type, turning events into read models."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent, event_name
from framework.errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., None])

#: What happens when a handler keeps failing: stop the partition, or park the event.
FailurePolicy = Literal["stop", "park"]
#: The order events reach the handlers: each partition's on its own (the default,
#: at full speed), or all partitions merged in causal order (``causal``).
EventOrder = Literal["partition", "causal"]

NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def on(*event_types: type[DomainEvent]) -> Callable[[F], F]:
    """Mark a projection method as the handler of these event types.

    The method is called as ``method(self, envelope, tx)`` inside the transaction
    that also moves the projection's checkpoint.
    """
    for event_type in event_types:
        event_name(event_type)  # a clear error for an unregistered class

    def mark(method: F) -> F:
        method.__projects__ = event_types  # type: ignore[attr-defined]
        return method

    return mark


class Projection:
    """Base of every projection: a ``name``, a ``version`` and ``@on`` handlers.

    Events of types without a handler are skipped, unless ``strict`` is set, in which
    case they are an error. Bump ``version`` when the handlers change meaning; the
    status command then reports the projection as needing a rebuild.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    strict: ClassVar[bool] = False
    failure: ClassVar[FailurePolicy] = "stop"
    #: ``"causal"``: events of all partitions reach the handlers in an order
    #: consistent with causality (``framework.projections.causal``): an event
    #: never before one it depends on, across partitions. One runner then applies
    #: every partition.
    order: ClassVar[EventOrder] = "partition"
    #: Document tables the projection writes (names as for ``name``).
    tables: ClassVar[tuple[str, ...]] = ()
    __handlers__: ClassVar[dict[tuple[str, int], Callable[..., None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is not None and not NAME.match(name):
            raise ConfigurationError(
                f"projection name {name!r} must be lower-case letters, digits and "
                "underscores, starting with a letter (it names tables)"
            )
        for table in cls.tables:
            if not NAME.match(table):
                raise ConfigurationError(
                    f"{cls.__qualname__}: table name {table!r} must be lower-case "
                    "letters, digits and underscores, starting with a letter"
                )
        if cls.order not in ("partition", "causal"):
            raise ConfigurationError(
                f"{cls.__qualname__}.order must be 'partition' or 'causal', "
                f"got {cls.order!r}"
            )
        if cls.failure not in ("stop", "park"):
            raise ConfigurationError(
                f"{cls.__qualname__}.failure must be 'stop' or 'park', "
                f"got {cls.failure!r}"
            )
        handlers = dict(cls.__handlers__)
        for attribute in cls.__dict__.values():
            for event_type in getattr(attribute, "__projects__", ()):
                handlers[event_name(event_type)] = attribute
        cls.__handlers__ = handlers

    def handler_for(
        self, name: str, version: int
    ) -> Callable[[Projection, EventEnvelope[Any], Any], None] | None:
        return self.__handlers__.get((name, version))

    def handles(self, name: str, version: int) -> bool:
        return (name, version) in self.__handlers__
