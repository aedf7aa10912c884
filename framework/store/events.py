"""Events as the store sees them: bytes and metadata, never domain objects."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
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

    @property
    def position(self) -> Position:
        return Position({self.partition: self.last_offset})
