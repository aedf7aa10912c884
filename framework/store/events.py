"""Events as the store sees them: bytes and metadata, never domain objects."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from framework.store.position import Position

_EMPTY: Mapping[str, str] = {}


class NewEvent(NamedTuple):
    """An encoded event to append. The store assigns its stream version and offset.

    A named tuple, as ``StoredEvent``: every save builds one per event.
    """

    event_id: uuid.UUID
    name: str
    version: int
    data: bytes
    timestamp_ms: int
    correlation_id: str
    causation_id: str
    headers: Mapping[str, str] = _EMPTY
    #: The least Lamport stamp it may get: one more than the stamps of the events
    #: its command loaded or was caused by. The store raises it above the last
    #: stamp in the event's partition.
    stamp: int = 0


def least_first_stamp(events: Sequence[NewEvent]) -> int:
    """The least stamp the first of ``events`` may get so that each gets at least
    its own ``stamp`` (a batch's events are stamped one after another)."""
    if len(events) == 1:
        return events[0].stamp
    return max(e.stamp - i for i, e in enumerate(events))


class StoredEvent(NamedTuple):
    """An event as stored, at ``offset`` in ``partition`` of the events topic.

    A named tuple for the speed of replay (see ``LogRecord``).
    """

    event_id: uuid.UUID
    stream_id: str
    stream_version: int
    name: str
    version: int
    data: bytes
    timestamp_ms: int
    correlation_id: str
    causation_id: str
    headers: Mapping[str, str]
    #: The Lamport stamp: above every event it depends on and above the event
    #: before it in its partition (0 for events stored before stamps).
    stamp: int
    partition: int
    offset: int


class Appended(NamedTuple):
    """The outcome of one stream append: versions ``first..last_version`` stored at
    offsets ``first..last_offset``. ``already_stored`` is true when the events were
    found stored by an earlier try, so this call wrote nothing.

    A named tuple, as the other per-append values: every save builds one.
    """

    stream_id: str
    partition: int
    first_offset: int
    last_offset: int
    first_version: int
    last_version: int
    already_stored: bool = False
    #: The Lamport stamp of the first event (the others follow one by one).
    first_stamp: int = 0

    @property
    def position(self) -> Position:
        return Position({self.partition: self.last_offset})
