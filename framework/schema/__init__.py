"""Events to bytes and back: the ``EventCodec`` port and its codecs (JSON through cattrs
and orjson; Avro arrives later, beside it in ``framework.schema.codecs``)."""

from __future__ import annotations

from framework.schema.codecs.json import JsonEventCodec, make_event_converter
from framework.schema.ports import EventCodec

__all__ = ["EventCodec", "JsonEventCodec", "make_event_converter"]
