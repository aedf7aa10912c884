"""The codec port: what the application, the projection runner and rebuild need of a
format that turns events into bytes and back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from framework.domain.events import DomainEvent, EventRegistry

#: Turns one stored payload back into its event; raises ``SchemaError`` if the bytes
#: do not match the class.
Decoder = Callable[[bytes], DomainEvent]


class EventCodec(Protocol):
    """Encodes events as bytes and decodes them by the (name, version) stored beside
    the bytes. An event's name and version come from its class's registration
    (``@event``); the codec decodes by looking them up in ``registry``.

    Implementations are thread-safe; ``decoder`` may be called once per event, so it
    should cache what it builds.
    """

    @property
    def content_type(self) -> str:
        """The media type of the bytes (``application/json``)."""
        ...

    @property
    def registry(self) -> EventRegistry:
        """The event classes by (name, version) that ``decoder`` looks up."""
        ...

    def encode(self, event: DomainEvent) -> bytes:
        """The event's payload as bytes; ``UnserializableEventError`` if a value
        cannot be written (nothing is written then)."""
        ...

    def decoder(self, name: str, version: int, *, where: str) -> Decoder:
        """The decoder for payloads stored as (name, version); ``UnknownEventError``
        naming ``where`` (a position, for the message) if no class is registered."""
        ...


__all__ = ["Decoder", "EventCodec"]
