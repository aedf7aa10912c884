"""The event store over a partitioned log: streams, expected versions, positions."""

from __future__ import annotations

from framework.store.event_store import EVENTS_TOPIC, EventStore
from framework.store.events import Appended, NewEvent, StoredEvent
from framework.store.position import Position

__all__ = [
    "EVENTS_TOPIC",
    "Appended",
    "EventStore",
    "NewEvent",
    "Position",
    "StoredEvent",
]
