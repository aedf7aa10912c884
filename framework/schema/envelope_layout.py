"""The envelope layout: the one statement that an ``EventEnvelope``'s fields are a
stored event's, in the same order, with the decoded event in front and the bytes left
out; and the fast builders that rely on it.

Replay builds one envelope per event, so the builders go by position through
``tuple.__new__`` rather than by name through the named tuple's constructor. Only
this module knows the positions: it checks them against ``EventEnvelope`` when it is
imported, so reordering a field fails at once with a message saying what to change.
The store's ``StoredEvent`` cannot be imported here (``framework.store`` and
``framework.schema`` are independent layers), so ``envelope_reader`` checks the class
of a stored event whenever it looks up a decoder, off the per-event path.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent

#: A stored event's fields, in the order its tuple holds them
#: (``framework.store.StoredEvent``).
STORED_FIELDS = (
    "event_id",
    "stream_id",
    "stream_version",
    "name",
    "version",
    "data",
    "timestamp_ms",
    "correlation_id",
    "causation_id",
    "headers",
    "stamp",
    "partition",
    "offset",
)

#: ``EventEnvelope``'s fields: the decoded event, then the stored event's fields
#: without its bytes, in their stored order.
ENVELOPE_FIELDS = ("event", *(f for f in STORED_FIELDS if f != "data"))

#: The fields that place a stored event, last in both tuples: ``envelope_at``
#: keeps the fields before them and replaces these.
POSITION = ("stamp", "partition", "offset")
_BEFORE_POSITION = len(ENVELOPE_FIELDS) - len(POSITION)


class LayoutError(TypeError):
    """A named tuple's fields are not in the order the fast builders assume."""


def _check(what: str, fields: Sequence[str], expected: Sequence[str]) -> None:
    if tuple(fields) != tuple(expected):
        raise LayoutError(
            f"{what} has the fields {tuple(fields)}, but the envelope layout "
            f"(framework.schema.envelope_layout) builds it by position as "
            f"{tuple(expected)}; keep the two orders in step, or change "
            "STORED_FIELDS there with the builders that unpack it"
        )


def check_envelope_fields(fields: Sequence[str]) -> None:
    """Raise ``LayoutError`` unless ``fields`` are ``ENVELOPE_FIELDS``, in order."""
    _check("EventEnvelope", fields, ENVELOPE_FIELDS)


def check_stored_fields(fields: Sequence[str]) -> None:
    """Raise ``LayoutError`` unless ``fields`` (``StoredEvent._fields``) are
    ``STORED_FIELDS``, in order."""
    _check("StoredEvent", fields, STORED_FIELDS)


_check("the envelope's position", ENVELOPE_FIELDS[_BEFORE_POSITION:], POSITION)
check_envelope_fields(EventEnvelope._fields)


class StoredLike(Protocol):
    """A stored event as decoding reads it: a tuple of ``STORED_FIELDS``."""

    def __iter__(self) -> Iterator[Any]: ...

    @property
    def event_id(self) -> uuid.UUID: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def stream_version(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def data(self) -> bytes: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def correlation_id(self) -> str: ...
    @property
    def causation_id(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def stamp(self) -> int: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


Envelope = EventEnvelope[DomainEvent]


def envelope_reader(
    decoders: Mapping[tuple[str, int], Callable[[bytes], DomainEvent]],
    decoder_for: Callable[[StoredLike], Callable[[bytes], DomainEvent]],
) -> Callable[[StoredLike], Envelope]:
    """A function from a stored event to its envelope, the event decoded by
    ``decoders[(name, version)]``, or by ``decoder_for(stored)`` when that has none.

    The replay path: unpacking once and building the tuple directly skips
    attribute lookups, slices and the named tuple's Python-level constructor.
    """
    new = tuple.__new__
    envelope_class = EventEnvelope
    cached = decoders.get

    def checked_decoder_for(stored: StoredLike) -> Callable[[bytes], DomainEvent]:
        # Once per (name, version) a reader meets: the fields were unpacked by
        # position already, but nothing is built from them yet.
        fields = getattr(type(stored), "_fields", None)
        if fields is not None:
            check_stored_fields(fields)
        return decoder_for(stored)

    def envelope(stored: StoredLike) -> Envelope:
        (event_id, stream, version, name, ev_version, data, ts, corr, caus, headers,
         stamp, partition, offset) = stored  # fmt: skip
        decoder = cached((name, ev_version)) or checked_decoder_for(stored)
        built: Envelope = new(
            envelope_class,
            (
                decoder(data),
                event_id,
                stream,
                version,
                name,
                ev_version,
                ts,
                corr,
                caus,
                headers,
                stamp,
                partition,
                offset,
            ),
        )
        return built

    return envelope


def envelope_at(
    envelope: Envelope, stamp: int, partition: int, offset: int
) -> Envelope:
    """``envelope`` as stored with ``stamp`` at ``offset`` in ``partition``: once
    per saved event, where ``_replace`` would cost a microsecond."""
    placed: Envelope = tuple.__new__(
        EventEnvelope, (*envelope[:_BEFORE_POSITION], stamp, partition, offset)
    )
    return placed


__all__ = [
    "ENVELOPE_FIELDS",
    "POSITION",
    "STORED_FIELDS",
    "LayoutError",
    "StoredLike",
    "check_envelope_fields",
    "check_stored_fields",
    "envelope_at",
    "envelope_reader",
]
