"""Command handling: a command's handler runs in a unit of work, whose aggregates
are saved together, retried on conflicts, and followed by the policies it
triggers."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs

from framework.domain.aggregate import Aggregate
from framework.domain.commands import CommandRouter
from framework.domain.context import MessageContext, current_context, message_context
from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent
from framework.errors import ConcurrencyError
from framework.retry import RetryPolicy, compute_backoff
from framework.store.position import Position

logger = logging.getLogger("framework.application")

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

Envelope = EventEnvelope[DomainEvent]


@attrs.frozen(kw_only=True)
class CommandResult(Generic[R]):
    """What handling a command did: the handler's return ``value``, the ``position``
    of everything saved (policies' follow-up commands included), the number of
    ``attempts`` and the events this command itself saved."""

    value: R
    position: Position
    attempts: int
    events: tuple[Envelope, ...]


class _Load(Protocol):
    def __call__(
        self, cls: type[A], aggregate_id: str, version: int | None = None
    ) -> A: ...


#: Saves aggregates in order, collecting the ids of the streams written into the
#: list given; returns the position and the saved events as stored.
_Save = Callable[[Sequence[Aggregate], list[str]], tuple[Position, list[Envelope]]]


class CommandHandler:
    """Handles commands with the handlers and policies of ``router``, loading and
    saving through the application's ``load`` and ``save``."""

    def __init__(
        self,
        router: CommandRouter,
        retry: RetryPolicy,
        load: _Load,
        save: _Save,
        *,
        inline_policies: bool = True,
    ) -> None:
        self.router = router
        self._retry = retry
        self._load = load
        self._save = save
        #: Run policies right after a command; else a ``PolicyRunner`` runs them.
        self._inline_policies = inline_policies

    def handle(
        self,
        command: object,
        *,
        caused_by: EventEnvelope[Any] | None = None,
        correlation_id: str | None = None,
    ) -> CommandResult[Any]:
        """Run the command's handler and save what it changed (see
        ``Application.handle``)."""
        handler = self.router.handler_for(command)
        context = _context_for(caused_by, correlation_id)
        policy = self._retry
        attempt = 0
        while True:
            attempt += 1
            work = _UnitOfWork(self._load, attempt)
            with message_context(context):
                try:
                    value = handler(command, work)
                    position, saved = self._save(work.aggregates, work.written)
                except ConcurrencyError as exc:
                    if work.written:
                        # Running the handler again would apply its effect twice to
                        # the aggregates already saved; only the caller can decide.
                        exc.add_note(
                            f"{type(command).__qualname__} was not retried because "
                            f"{', '.join(map(repr, work.written))} had been saved; a "
                            "command that changes one aggregate is always retried"
                        )
                        raise
                    if attempt >= policy.max_attempts:
                        exc.add_note(
                            f"{type(command).__qualname__} gave up after "
                            f"{attempt} tries"
                        )
                        raise
                    delay = compute_backoff(attempt, policy)
                    logger.info(
                        "%s conflicted on try %d of %d (%s); retrying in %.1f ms",
                        type(command).__qualname__,
                        attempt,
                        policy.max_attempts,
                        exc,
                        delay * 1000,
                    )
                    time.sleep(delay)
                    continue
            break
        if self._inline_policies and self.router.has_policies:
            for envelope in saved:
                for policy_fn in self.router.policies_for(type(envelope.event)):
                    for follow_up in _as_commands(policy_fn(envelope)):
                        result = self.handle(follow_up, caused_by=envelope)
                        position = position.merge(result.position)
        return CommandResult(
            value=value, position=position, attempts=attempt, events=tuple(saved)
        )


def _context_for(
    caused_by: EventEnvelope[Any] | None, correlation_id: str | None
) -> MessageContext:
    if caused_by is not None:
        return MessageContext(
            correlation_id=caused_by.correlation_id,
            causation_id=str(caused_by.event_id),
            stamp=caused_by.stamp,
        )
    parent = current_context()
    if parent is not None and correlation_id is None:
        return parent
    command_id = str(uuid.uuid4())
    return MessageContext(
        correlation_id=correlation_id or command_id, causation_id=command_id
    )


def _as_commands(returned: object) -> Iterable[object]:
    if returned is None:
        return ()
    if isinstance(returned, list | tuple):
        return returned
    return (returned,)


class _UnitOfWork:
    """One try at a command: an identity map of the aggregates it touches."""

    def __init__(self, load: _Load, attempt: int) -> None:
        self._load = load
        self._attempt = attempt
        self._loaded: dict[tuple[type, str], Aggregate] = {}
        self.aggregates: list[Aggregate] = []
        self.written: list[str] = []

    @property
    def attempt(self) -> int:
        return self._attempt

    def load(self, cls: type[A], aggregate_id: str, version: int | None = None) -> A:
        key = (cls, aggregate_id)
        found = self._loaded.get(key)
        if found is None or version is not None:
            found = self._load(cls, aggregate_id, version)
            if version is None:
                self._loaded[key] = found
                self.aggregates.append(found)
        return found  # type: ignore[return-value]

    def add(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            key = (type(aggregate), aggregate.id)
            if key not in self._loaded:
                self._loaded[key] = aggregate
                self.aggregates.append(aggregate)
