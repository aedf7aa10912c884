"""The event store natively on PostgreSQL: ``PostgresEventStore`` on the log's
tables, its statements, its rows as events, and its migrations."""

from __future__ import annotations

from framework.store.backends.postgres.hook import AppendHook
from framework.store.backends.postgres.opener import (
    StoreSettings,
    open_postgres_store,
)
from framework.store.backends.postgres.store import (
    COPY_FROM,
    DEFAULT_PARTITIONS,
    PostgresEventStore,
)

__all__ = [
    "COPY_FROM",
    "DEFAULT_PARTITIONS",
    "AppendHook",
    "PostgresEventStore",
    "StoreSettings",
    "open_postgres_store",
]
