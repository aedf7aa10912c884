"""How a ``postgresql://`` store URL opens a ``PostgresEventStore``."""

from __future__ import annotations

from typing import Protocol

from framework.log.config import TopicConfig
from framework.store.backends.postgres.store import PostgresEventStore


class StoreSettings(Protocol):
    """What the opener reads of ``AppSettings`` (the store may not import the
    application layer)."""

    @property
    def events_topic(self) -> str: ...

    @property
    def partitions(self) -> int | None: ...


def open_postgres_store(url: str, settings: StoreSettings) -> PostgresEventStore:
    """The ``STORE_OPENERS`` entry: a native store for ``postgresql://`` URLs.

    ``settings`` is the application's ``AppSettings`` (topic name and partitions
    on creation; an existing topic keeps its count).
    """
    return PostgresEventStore(
        url,
        topic=settings.events_topic,
        config=None
        if settings.partitions is None
        else TopicConfig(partitions=settings.partitions),
    )
