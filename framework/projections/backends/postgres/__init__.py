"""Projections on PostgreSQL: read models beside the events, inline projections
inside appends, consumer groups and push through LISTEN/NOTIFY."""

from __future__ import annotations

from framework.projections.backends.postgres.announcements import Announcements
from framework.projections.backends.postgres.append_signal import (
    PostgresAppendSignal,
)
from framework.projections.backends.postgres.group import PostgresGroup, group_key
from framework.projections.backends.postgres.inline import InlineProjection
from framework.projections.backends.postgres.read_models import (
    PostgresReadModelStore,
    open_postgres_read_models,
)
from framework.projections.backends.postgres.statements import lock_key, table_name
from framework.projections.backends.postgres.transaction import PostgresTransaction

__all__ = [
    "Announcements",
    "InlineProjection",
    "PostgresAppendSignal",
    "PostgresGroup",
    "PostgresReadModelStore",
    "PostgresTransaction",
    "group_key",
    "lock_key",
    "open_postgres_read_models",
    "table_name",
]
