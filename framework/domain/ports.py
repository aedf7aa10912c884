"""What a command handler may ask of the application: load and add aggregates."""

from __future__ import annotations

from typing import Protocol, TypeVar

from framework.domain.aggregate import Aggregate

A = TypeVar("A", bound=Aggregate)


class UnitOfWork(Protocol):
    """One attempt at handling a command. Every aggregate it loads or adds is saved
    when the handler returns; on a ``ConcurrencyError`` the handler runs again with a
    new unit of work (``attempt`` counts from 1)."""

    @property
    def attempt(self) -> int: ...

    def load(self, cls: type[A], aggregate_id: str, version: int | None = None) -> A:
        """The aggregate as stored; ``AggregateNotFoundError`` if it has no events."""
        ...

    def add(self, *aggregates: Aggregate) -> None:
        """Save these new aggregates with the others when the handler returns."""
        ...
