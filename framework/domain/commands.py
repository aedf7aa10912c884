"""Routing commands to their handlers and events to the policies that react to them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent
from framework.domain.ports import UnitOfWork
from framework.errors import CommandError

C = TypeVar("C")
R = TypeVar("R")
Ev = TypeVar("Ev", bound=DomainEvent)

Handler = Callable[[Any, UnitOfWork], Any]
#: A policy turns a stored event into the commands it causes (or none).
Policy = Callable[[EventEnvelope[Any]], Iterable[object] | object | None]


class CommandRouter:
    """Command class to handler, and event class to the policies reacting to it.

    ``@router.handles(Deposit)`` registers ``fn(command, uow) -> result``;
    ``@router.reacts_to(TransferSent)`` registers ``fn(envelope) -> command(s)``.
    """

    def __init__(self) -> None:
        self._handlers: dict[type, Handler] = {}
        self._policies: dict[type, list[Policy]] = {}

    def handles(
        self, command_type: type[C]
    ) -> Callable[[Callable[[C, UnitOfWork], R]], Callable[[C, UnitOfWork], R]]:
        def register(
            handler: Callable[[C, UnitOfWork], R],
        ) -> Callable[[C, UnitOfWork], R]:
            existing = self._handlers.get(command_type)
            if existing is not None and existing is not handler:
                raise CommandError(
                    f"{command_type.__qualname__} already has the handler "
                    f"{existing.__qualname__}; a command has exactly one handler"
                )
            self._handlers[command_type] = handler
            return handler

        return register

    def reacts_to(
        self, event_type: type[Ev]
    ) -> Callable[[Callable[[EventEnvelope[Ev]], R]], Callable[[EventEnvelope[Ev]], R]]:
        def register(
            policy: Callable[[EventEnvelope[Ev]], R],
        ) -> Callable[[EventEnvelope[Ev]], R]:
            self._policies.setdefault(event_type, []).append(policy)
            return policy

        return register

    def include(self, other: CommandRouter) -> None:
        """Take over another router's handlers and policies."""
        for command_type, handler in other._handlers.items():
            self.handles(command_type)(handler)
        for event_type, policies in other._policies.items():
            self._policies.setdefault(event_type, []).extend(policies)

    def handler_for(self, command: object) -> Handler:
        try:
            return self._handlers[type(command)]
        except KeyError:
            known = ", ".join(sorted(t.__qualname__ for t in self._handlers)) or "none"
            raise CommandError(
                f"no handler is registered for {type(command).__qualname__} "
                f"(handled: {known}); register one with @router.handles("
                f"{type(command).__qualname__})"
            ) from None

    def policies_for(self, event_type: type) -> list[Policy]:
        return self._policies.get(event_type, [])

    @property
    def has_policies(self) -> bool:
        return bool(self._policies)

    def policy_event_types(self) -> list[type]:
        """The event classes some policy reacts to."""
        return [t for t, policies in self._policies.items() if policies]
