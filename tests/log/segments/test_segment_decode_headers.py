"""A record's lone header (the event store's) is sliced without the generated reader;
a value length that does not fit its batch is still caught, compressed or not."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from framework.log.backends.segments.batch import (
    COMPRESSION_ZSTD,
    CRC_START,
    HEADER_SIZE,
    RECORD,
    Entry,
    encode_batch,
)
from framework.log.backends.segments.decode import decode_batches
from framework.log.records import LogRecord

#: Stands in for zstd: the compressed path decodes the same, whatever the codec.
_COMPRESSION = COMPRESSION_ZSTD


def _same(data: bytes) -> bytes:
    return data


def _identity_codec(code: int, rel: int) -> Callable[[bytes], bytes]:
    return _same


def batch(entries: list[Entry], *, compressed: bool = False) -> bytes:
    encoded = encode_batch(
        entries,
        last_offset_delta=len(entries) - 1,
        compression=_COMPRESSION if compressed else 0,
        compress=_same if compressed else None,
    )
    return b"".join(encoded.framed(0))


def decode(buf: bytes) -> tuple[list[LogRecord], str | None]:
    out: list[LogRecord] = []
    _, _, problem = decode_batches(
        buf, 0, 0, 0, 1 << 30, out, "t", 0, _identity_codec, len(buf)
    )
    return out, problem


def test_lone_and_several_headers_decode_alike_compressed_or_not() -> None:
    entries: list[Entry] = [
        (0, 1, b"k", b"v", (("$e", b"meta"),)),
        (1, 1, b"k", b"w", (("$e", b"other meta"),)),
        (2, 1, None, b"x", (("$e", b"m"), ("tenant", b"acme"))),
        (3, 1, None, b"y", ()),
        (4, 1, None, b"z", (("", b""),)),
    ]
    for compressed in (False, True):
        records, problem = decode(batch(entries, compressed=compressed))
        assert problem is None
        assert [(r.offset, r.key, r.value, r.headers) for r in records] == [
            (delta, key, value, headers) for delta, _, key, value, headers in entries
        ]


def with_header_value_length(buf: bytes, length: int) -> bytes:
    """``buf`` (one record, no key, a one-byte value, one header named ``$e``) with its
    header value length changed, and its CRC made right again."""
    at = HEADER_SIZE + RECORD.size + 1 + 4
    damaged = bytearray(buf)
    struct.pack_into(">i", damaged, at, length)
    struct.pack_into(">I", damaged, CRC_START - 4, zlib.crc32(damaged[CRC_START:]))
    return bytes(damaged)


def test_a_lone_header_value_longer_or_shorter_than_its_batch_is_refused() -> None:
    for compressed in (False, True):
        whole = batch([(0, 1, None, b"v", (("$e", b"abc"),))], compressed=compressed)
        assert decode(whole)[1] is None
        following = batch([(0, 1, None, b"v", ())])
        for length in (2, 5):
            _, problem = decode(with_header_value_length(whole, length) + following)
            assert problem == "the records do not fill their batch"
