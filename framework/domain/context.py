"""The message being handled right now, so that the events it causes say so."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import attrs


@attrs.frozen(kw_only=True, slots=True)
class MessageContext:
    """``correlation_id`` names the whole conversation; ``causation_id`` the message
    (command or event) that directly caused what is recorded now, and ``stamp``
    that event's Lamport stamp (0 for a command), which what it causes exceeds."""

    correlation_id: str
    causation_id: str
    stamp: int = 0


_current: ContextVar[MessageContext | None] = ContextVar(
    "framework_message_context", default=None
)


def current_context() -> MessageContext | None:
    return _current.get()


@contextlib.contextmanager
def message_context(context: MessageContext) -> Iterator[MessageContext]:
    """Make ``context`` current for events recorded inside the block (thread-local)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
