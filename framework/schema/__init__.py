"""Events to bytes and back: JSON through cattrs and orjson (Avro arrives later)."""

from __future__ import annotations

from framework.schema.json import JsonEventCodec, make_event_converter

__all__ = ["JsonEventCodec", "make_event_converter"]
