"""How record headers sit in the ``headers`` bytea column: length-prefixed pairs.

Kafka-style headers are ordered and a name may repeat, which neither jsonb nor
hstore keeps, so they are stored as ``(u16 name length, name, u32 value length,
value)*``. ``NULL`` stands for no headers, the common case, and costs nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from framework.errors import CorruptLogError
from framework.log.records import Headers

_NAME = struct.Struct(">H")
_VALUE = struct.Struct(">I")


def encode_headers(headers: Headers) -> bytes | None:
    if not headers:
        return None
    out = bytearray()
    for name, value in headers:
        raw = name.encode()
        out += _NAME.pack(len(raw))
        out += raw
        out += _VALUE.pack(len(value))
        out += value
    return bytes(out)


def decode_headers(raw: bytes | None) -> Headers:
    if not raw:
        return ()
    out: list[tuple[str, bytes]] = []
    at = 0
    try:
        while at < len(raw):
            (size,) = _NAME.unpack_from(raw, at)
            at += 2
            name = raw[at : at + size].decode()
            at += size
            (size,) = _VALUE.unpack_from(raw, at)
            at += 4
            out.append((name, raw[at : at + size]))
            at += size
        if at != len(raw):
            # A slice past the end is silently short: a cut value shows here.
            raise struct.error(f"the last value ends at byte {at} of {len(raw)}")
    except (struct.error, UnicodeDecodeError) as exc:
        raise CorruptLogError(
            f"a stored headers value is malformed at byte {at} ({exc}); it was not "
            "written by this framework"
        ) from None
    return tuple(out)


def encode_user_headers(headers: Mapping[str, str]) -> bytes | None:
    """An event's string headers, in the same layout."""
    if not headers:
        return None
    return encode_headers(tuple((k, v.encode()) for k, v in headers.items()))


def decode_user_headers(raw: bytes | None) -> dict[str, str]:
    return {name: value.decode() for name, value in decode_headers(raw)}
