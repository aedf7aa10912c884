"""Event codecs, one module per format: JSON today; Avro and upcasting slot in beside
it, each an ``EventCodec`` (``framework.schema.ports``)."""

from __future__ import annotations

from framework.schema.codecs.json import JsonEventCodec, make_event_converter

__all__ = ["JsonEventCodec", "make_event_converter"]
