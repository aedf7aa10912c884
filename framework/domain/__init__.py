"""Domain building blocks: events, aggregates, envelopes, command routing. No I/O."""

from __future__ import annotations

from framework.domain.aggregate import Aggregate, when
from framework.domain.commands import CommandRouter
from framework.domain.context import MessageContext, current_context, message_context
from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent, EventRegistry, event, registry
from framework.domain.json_value import JSON, JSONObject
from framework.domain.ports import UnitOfWork

__all__ = [
    "JSON",
    "Aggregate",
    "CommandRouter",
    "DomainEvent",
    "EventEnvelope",
    "EventRegistry",
    "JSONObject",
    "MessageContext",
    "UnitOfWork",
    "current_context",
    "event",
    "message_context",
    "registry",
    "when",
]
