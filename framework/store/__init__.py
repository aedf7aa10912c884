"""The event store over a partitioned log: streams, expected versions, positions."""

from __future__ import annotations

from framework.store.event_store import EVENTS_TOPIC, LogEventStore
from framework.store.events import Appended, NewEvent, StoredEvent
from framework.store.ports import EventStore, StreamAppend
from framework.store.position import Position

__all__ = [
    "EVENTS_TOPIC",
    "Appended",
    "EventStore",
    "LogEventStore",
    "NewEvent",
    "Position",
    "StoredEvent",
    "StreamAppend",
]
