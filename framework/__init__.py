"""Event sourcing and CQRS on a partitioned log.

The names most applications need are here; everything else is reachable from its
subpackage (``framework.log``, ``framework.store``, ``framework.schema``, ...).
"""

from __future__ import annotations

from framework.application import Application, AppSettings, CommandResult
from framework.domain import (
    Aggregate,
    CommandRouter,
    DomainEvent,
    EventEnvelope,
    UnitOfWork,
    event,
    when,
)
from framework.errors import (
    AggregateNotFoundError,
    ConcurrencyError,
    ConfigurationError,
    DomainError,
    FrameworkError,
    SchemaError,
    StoreError,
    UnknownEventError,
    UnserializableEventError,
)
from framework.log import TopicConfig
from framework.retry import RetryPolicy
from framework.store import Position

__all__ = [
    "Aggregate",
    "AggregateNotFoundError",
    "AppSettings",
    "Application",
    "CommandResult",
    "CommandRouter",
    "ConcurrencyError",
    "ConfigurationError",
    "DomainError",
    "DomainEvent",
    "EventEnvelope",
    "FrameworkError",
    "Position",
    "RetryPolicy",
    "SchemaError",
    "StoreError",
    "TopicConfig",
    "UnitOfWork",
    "UnknownEventError",
    "UnserializableEventError",
    "event",
    "when",
]
