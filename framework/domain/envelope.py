"""An event with what travels beside it: identity, stream, time, causation."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Generic, NamedTuple, TypeVar

from framework.domain.events import DomainEvent

E_co = TypeVar("E_co", bound=DomainEvent, covariant=True)

_EMPTY: Mapping[str, str] = {}


def ms_to_datetime(ms: int) -> dt.datetime:
    """UTC milliseconds to an aware datetime, exactly (no float rounding)."""
    seconds, millis = divmod(ms, 1000)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=millis * 1000)


class EventEnvelope(NamedTuple, Generic[E_co]):
    """A domain event and its metadata.

    ``stream_version`` counts from 1 per stream. ``partition`` and ``offset`` are
    ``None`` until the event is stored. Timestamps are UTC with millisecond precision.
    A named tuple rather than a frozen attrs class: replay builds one per event, and
    a tuple is built in half the time. Use ``_replace`` to derive a changed copy.
    The field order is the stored event's (``framework.schema.envelope_layout``
    builds envelopes by position and checks the order on import).
    """

    event: E_co
    event_id: uuid.UUID
    stream_id: str
    stream_version: int
    name: str
    version: int
    timestamp_ms: int
    correlation_id: str
    causation_id: str
    headers: Mapping[str, str] = _EMPTY
    #: The Lamport stamp (``StoredEvent.stamp``); 0 until the event is stored.
    stamp: int = 0
    partition: int | None = None
    offset: int | None = None

    @property
    def timestamp(self) -> dt.datetime:
        return ms_to_datetime(self.timestamp_ms)
