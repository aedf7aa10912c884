"""Aggregates: command methods record events; ``@when`` handlers alone change state."""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from framework.domain.context import current_context
from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent, event_name
from framework.domain.ids import uuid7
from framework.domain.payload import ensure_serializable
from framework.errors import EventRegistrationError, UnserializableEventError

A = TypeVar("A", bound="Aggregate")
F = TypeVar("F", bound=Callable[..., None])

Applier = Callable[[Any, Any], None]

_MUTABLE_DEFAULTS = (list, dict, set, bytearray)


def when(*event_types: type[DomainEvent]) -> Callable[[F], F]:
    """Mark an aggregate method as the handler that applies these event types."""
    if not event_types:
        raise EventRegistrationError("@when needs at least one event class")

    def mark(method: F) -> F:
        method.__applies__ = event_types  # type: ignore[attr-defined]
        return method

    return mark


class Aggregate:
    """Base of every aggregate. Its id is its stream id; its version counts events.

    State is declared as annotated class attributes with defaults (copied per
    instance when mutable) and changed only in ``@when`` handlers, so that loading
    replays exactly what recording did. Create one in a classmethod that calls
    ``cls()`` and records a creation event.
    """

    __appliers__: ClassVar[dict[type[DomainEvent], Applier]] = {}
    __mutable_defaults__: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__} defines __init__; aggregates set their state in "
                "@when handlers so that loading replays it. Declare fields as "
                "annotated class attributes with defaults and create instances in a "
                "classmethod that calls cls() and records a creation event"
            )
        appliers = dict(cls.__appliers__)
        for attribute in cls.__dict__.values():
            for event_type in getattr(attribute, "__applies__", ()):
                event_name(event_type)  # a clear error for an unregistered class
                appliers[event_type] = attribute
        cls.__appliers__ = appliers
        mutable = dict(cls.__mutable_defaults__)
        for name in inspect.get_annotations(cls):
            value = cls.__dict__.get(name)
            if isinstance(value, _MUTABLE_DEFAULTS):
                mutable[name] = value
        cls.__mutable_defaults__ = mutable

    def __init__(self, id: str | None = None) -> None:
        if id is not None and (not isinstance(id, str) or not id):
            raise ValueError(f"an aggregate id must be a non-empty str, got {id!r}")
        # Time-ordered by default, as event ids are (``framework.domain.ids``).
        self._id = id if id is not None else str(uuid7())
        self._version = 0
        #: The Lamport stamp of the last event it was loaded with: what it saves
        #: next is stamped above it (``framework.store.events.StoredEvent.stamp``).
        self._stamp = 0
        self._pending: list[EventEnvelope[DomainEvent]] = []
        for name, value in self.__mutable_defaults__.items():
            setattr(self, name, copy.copy(value))

    @property
    def id(self) -> str:
        return self._id

    @property
    def version(self) -> int:
        """How many events this instance has applied (stored and pending)."""
        return self._version

    @property
    def pending_events(self) -> tuple[EventEnvelope[DomainEvent], ...]:
        """Events recorded since the last save, oldest first."""
        return tuple(self._pending)

    def record(
        self, event: DomainEvent, *, headers: Mapping[str, str] | None = None
    ) -> EventEnvelope[DomainEvent]:
        """Apply ``event`` and keep it for the next save.

        Raises ``UnserializableEventError`` (nothing recorded) if the payload holds a
        value that cannot be stored, and ``TypeError`` if this aggregate has no
        ``@when`` handler for the event's class.
        """
        cls = type(event)
        name, version = event_name(cls)
        applier = self.__appliers__.get(cls)
        if applier is None:
            raise TypeError(
                f"{type(self).__qualname__} has no @when handler for {cls.__qualname__}"
                f" ({name!r}); add one so that loading can replay it"
            )
        ensure_serializable(event, cls.__event_check__, name)
        user_headers = _check_headers(headers, name) if headers else {}
        timestamp_ms = time.time_ns() // 1_000_000
        event_id = uuid7(timestamp_ms)
        context = current_context()
        if context is None:
            correlation_id = causation_id = str(event_id)
        else:
            correlation_id = context.correlation_id
            causation_id = context.causation_id
        envelope: EventEnvelope[DomainEvent] = EventEnvelope(
            event=event,
            event_id=event_id,
            stream_id=self._id,
            stream_version=self._version + 1,
            name=name,
            version=version,
            timestamp_ms=timestamp_ms,
            correlation_id=correlation_id,
            causation_id=causation_id,
            headers=user_headers,
        )
        applier(self, event)
        self._version += 1
        self._pending.append(envelope)
        return envelope

    def collect_events(self) -> list[EventEnvelope[DomainEvent]]:
        """Hand over the pending events and forget them (the repository saves them)."""
        pending, self._pending = self._pending, []
        return pending

    def _restore_pending(self, events: list[EventEnvelope[DomainEvent]]) -> None:
        """Put collected events back when their save failed, so nothing is lost."""
        self._pending = events + self._pending

    @classmethod
    def _replay(cls: type[A], aggregate_id: str, events: Iterable[DomainEvent]) -> A:
        """Rebuild an instance from stored events, without running any command."""
        self = cls.__new__(cls)
        Aggregate.__init__(self, aggregate_id)
        appliers = cls.__appliers__
        for event in events:
            applier = appliers.get(type(event))
            if applier is None:
                raise TypeError(
                    f"{cls.__qualname__} {aggregate_id!r} has no @when handler for "
                    f"stored event {type(event).__qualname__} at version "
                    f"{self._version + 1}; is {aggregate_id!r} really a "
                    f"{cls.__qualname__}?"
                )
            applier(self, event)
            self._version += 1
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} {self._id!r} v{self._version}>"


def _check_headers(headers: Mapping[str, str], name: str) -> dict[str, str]:
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UnserializableEventError(
                f"event {name!r}: headers must map str to str, got {key!r}: {value!r}"
            )
        if key.startswith("$"):
            raise UnserializableEventError(
                f"event {name!r}: header names starting with '$' are reserved for the "
                f"framework, got {key!r}; rename it"
            )
    return dict(headers)
