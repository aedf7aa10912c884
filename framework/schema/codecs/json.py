"""The JSON codec: events to JSON bytes and back, through a cattrs converter of our own
(orjson).

Which types and values an event may hold is checked when it is declared and recorded
(``framework.domain.payload``, whose limits are JSON's); this module decides how each
of those types is written as JSON and read back.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import cattrs
import orjson
from cattrs.preconf.orjson import make_converter

from framework.domain.events import DomainEvent, EventRegistry, event_name
from framework.domain.events import registry as default_registry
from framework.domain.json_value import JSON
from framework.errors import SchemaError, UnknownEventError, UnserializableEventError
from framework.schema.ports import Decoder, EventCodec


def make_event_converter() -> cattrs.Converter:
    """The converter for event payloads: every type ``framework.domain.payload``
    admits round-trips through it unchanged."""
    converter = make_converter()
    # orjson cannot write Decimal; a string keeps every digit (a float would not).
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, lambda value, _: Decimal(value))
    converter.register_unstructure_hook(uuid.UUID, str)
    converter.register_structure_hook(uuid.UUID, lambda value, _: uuid.UUID(value))
    # A JSON value is written as it is (recording checked it) and read as orjson
    # gives it; the decoder then freezes it as recording did.
    converter.register_unstructure_hook(JSON, _same)
    converter.register_structure_hook(JSON, lambda value, _: value)
    return converter


def _same(value: Any) -> Any:
    return value


class JsonEventCodec:
    """Encodes registered events as JSON and decodes them by (name, version).

    Thread-safe. Decoders are built once per event class and cached.
    """

    content_type = "application/json"

    def __init__(self, registry: EventRegistry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry
        self._converter = make_event_converter()
        self._decoders: dict[tuple[str, int], Decoder] = {}
        # Hooks per class, fetched once: the converter's dispatch costs more than
        # the hook itself for small events. A dict is safe to share across threads
        # here: a race only fetches the same hook twice.
        self._unstructurers: dict[type, Callable[[Any], Any]] = {}
        self._lock = threading.Lock()

    def encode(self, event: DomainEvent) -> bytes:
        """JSON bytes of the event's payload; ``UnserializableEventError`` if it has a
        value JSON cannot hold."""
        unstructure = self._unstructurers.get(type(event))
        if unstructure is None:
            unstructure = self._unstructurers[type(event)] = (
                self._converter.get_unstructure_hook(type(event))
            )
        try:
            return orjson.dumps(unstructure(event))
        except (TypeError, orjson.JSONEncodeError) as exc:
            name, _ = event_name(type(event))
            raise UnserializableEventError(
                f"event {name!r} ({type(event).__qualname__}) cannot be encoded as "
                f"JSON: {exc}; nothing was written"
            ) from exc

    def decoder(self, name: str, version: int, *, where: str) -> Decoder:
        """The decoder for events stored as (name, version); raises
        ``UnknownEventError`` naming ``where`` if no class is registered for it."""
        key = (name, version)
        decoder = self._decoders.get(key)
        if decoder is None:
            with self._lock:
                decoder = self._decoders.get(key)
                if decoder is None:
                    decoder = self._decoders[key] = self._build(name, version, where)
        return decoder

    def decode(
        self, name: str, version: int, data: bytes, *, where: str = "?"
    ) -> DomainEvent:
        return self.decoder(name, version, where=where)(data)

    def _build(self, name: str, version: int, where: str) -> Decoder:
        cls = self.registry.lookup(name, version)
        if cls is None:
            known = self.registry.versions_of(name)
            hint = ""
            if known:
                hint = (
                    f"{name!r} is registered at version(s) "
                    f"{', '.join(map(str, known))}; register an upcaster from "
                    f"version {version}, or declare that version"
                )
            raise UnknownEventError(
                name, version, where=where, registered=self.registry.names(), hint=hint
            )
        structure = self._converter.get_structure_hook(cls)
        loads = orjson.loads

        def decode(data: bytes) -> DomainEvent:
            try:
                event: DomainEvent = structure(loads(data), cls)
            except (orjson.JSONDecodeError, cattrs.BaseValidationError) as exc:
                raise SchemaError(
                    f"stored event {name!r} version {version} does not match "
                    f"{cls.__qualname__}: {exc}; declare a new version with an "
                    "upcaster rather than changing a stored event's shape"
                ) from exc
            return event

        freeze = cls.__event_freeze__
        if freeze is None:
            return decode

        # Only events with JSON fields pay for this step.
        def decode_and_freeze(data: bytes) -> DomainEvent:
            event: DomainEvent = freeze(decode(data))
            return event

        return decode_and_freeze

    def forget(self, name: str, version: int) -> None:
        """Drop a cached decoder (after registering a class late)."""
        with self._lock:
            self._decoders.pop((name, version), None)


if TYPE_CHECKING:
    # mypy checks here that the JSON codec fills the port.
    def _fills_the_port(codec: JsonEventCodec) -> EventCodec:
        return codec


__all__ = ["JsonEventCodec", "make_event_converter"]
