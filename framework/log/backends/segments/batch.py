"""The batch: one append's records as bytes on disk, its header, checksum and codec.

Layout (big-endian; ``docs/segments.md`` has the table)::

    length u32 | magic u8 | base_offset i64 | crc u32 | attributes u16
    | last_offset_delta i32 | record_count i32 | first_timestamp i64
    | max_timestamp i64 | producer_id i64 | producer_sequence i32 | records...

The CRC covers every byte after its own field. ``length``, ``magic`` and
``base_offset`` sit before it so that an offset can be assigned under the partition
lock without checksumming again (as Kafka does); they are checked structurally
instead: the length against the file, the magic by value, the base offset against
the offsets before it.

A record is ``offset_delta i32 | timestamp_delta i64 | key_length i32 (-1: no key)
| value_length i32 | header_count u16 | names_length u16``, then the key, the value,
the header names (each ``u16`` length + UTF-8), the header value lengths
(``header_count`` x ``i32``) and the header values. Lengths come before the bytes they
measure so that decoding (``decode.py``) needs no per-field parsing.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

from framework.log.records import Headers

#: Format version written in every batch.
MAGIC = 1
#: length, magic, base_offset, crc: the part a writer fills in under the lock.
PREFIX = struct.Struct(">IBqI")
#: The whole header; the CRC covers everything from ``attributes`` on.
HEADER = struct.Struct(">IBqIHiiqqqi")
HEADER_SIZE = HEADER.size
#: Where the checksummed bytes start, and the bytes ``length`` does not count.
CRC_START = PREFIX.size
LENGTH_SIZE = 4
_TAIL = struct.Struct(">Hiiqqqi")
RECORD = struct.Struct(">iqiiHH")
#: ``_TAIL`` and then ``RECORD``: the fixed fields of a batch of one record.
_TAIL_AND_RECORD = struct.Struct(">HiiqqqiiqiiHH")
_NAME_LENGTH = struct.Struct(">H")

#: ``attributes`` bits.
COMPRESSION_MASK = 0x03
COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1
COMPRESSION_LZ4 = 2
#: Rewritten by compaction: offsets may have gaps before and inside the batch.
COMPACTED = 0x04
#: Part of an atomic multi-partition append; ``producer_id`` is its transaction
#: id (``transactions``), and readers see it only once that transaction commits.
TRANSACTIONAL = 0x08

#: Bounds the codec's caches so that unusual data cannot grow them without limit.
_CACHE_LIMIT = 4096


class BatchHeader(NamedTuple):
    """The fixed fields at the start of every batch."""

    length: int
    magic: int
    base_offset: int
    crc: int
    attributes: int
    last_offset_delta: int
    record_count: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_sequence: int

    @property
    def size(self) -> int:
        """Bytes of the whole batch on disk."""
        return LENGTH_SIZE + self.length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta


def parse_header(buf: bytes, pos: int) -> BatchHeader:
    return BatchHeader._make(HEADER.unpack_from(buf, pos))


def structure_problem(header: BatchHeader) -> str | None:
    """What is wrong with a header's fields on their own, or ``None``."""
    if header.magic != MAGIC:
        return f"unknown batch format {header.magic} (expected magic {MAGIC})"
    if header.length < HEADER_SIZE - LENGTH_SIZE:
        return f"batch length {header.length} is shorter than a batch header"
    # Only compaction writes a batch without records (see ``encode_batch``).
    empty_ok = (
        header.record_count == 0
        and header.attributes & COMPACTED
        and header.last_offset_delta >= 0
    )
    if not (0 <= header.record_count - 1 <= header.last_offset_delta or empty_ok):
        return (
            f"batch says {header.record_count} records over "
            f"{header.last_offset_delta + 1} offsets"
        )
    if header.base_offset < 0:
        return f"negative base offset {header.base_offset}"
    return None


def crc_matches(view: memoryview, pos: int, header: BatchHeader) -> bool:
    """Whether the checksummed bytes of the batch at ``pos`` match its CRC."""
    end = pos + LENGTH_SIZE + header.length
    return zlib.crc32(view[pos + CRC_START : end]) == header.crc


class EncodedBatch(NamedTuple):
    """A batch without its base offset: the checksummed ``body`` and its summary.

    A named tuple, as ``Record``: every append builds one.
    """

    body: bytes
    crc: int
    record_count: int
    last_offset_delta: int
    max_timestamp: int
    last_timestamp: int
    #: Bytes of the whole batch on disk; stored, as appending reads it several times.
    size: int

    def header(self, base_offset: int) -> BatchHeader:
        """The header this batch gets when written at ``base_offset``."""
        attributes, last_delta, count, first_ts, max_ts, producer, sequence = (
            _TAIL.unpack_from(self.body, 0)
        )
        return BatchHeader(
            self.size - LENGTH_SIZE,
            MAGIC,
            base_offset,
            self.crc,
            attributes,
            last_delta,
            count,
            first_ts,
            max_ts,
            producer,
            sequence,
        )

    def framed(self, base_offset: int) -> list[bytes]:
        """The bytes to write for this batch at ``base_offset``, in two parts."""
        length = self.size - LENGTH_SIZE
        return [PREFIX.pack(length, MAGIC, base_offset, self.crc), self.body]


#: Where ``attributes`` and ``producer_id`` sit in a batch body.
_ATTRIBUTES = struct.Struct(">H")
_PRODUCER_AT = 2 + 4 + 4 + 8 + 8
_PRODUCER = struct.Struct(">q")


def transactional(encoded: EncodedBatch, txn_id: int) -> EncodedBatch:
    """``encoded`` marked as part of transaction ``txn_id`` (its checksum again)."""
    (attributes,) = _ATTRIBUTES.unpack_from(encoded.body, 0)
    body = bytearray(encoded.body)
    _ATTRIBUTES.pack_into(body, 0, attributes | TRANSACTIONAL)
    _PRODUCER.pack_into(body, _PRODUCER_AT, txn_id)
    raw = bytes(body)
    return encoded._replace(body=raw, crc=zlib.crc32(raw))


#: (offset delta, timestamp, key, value, headers) of one record to encode.
Entry = tuple[int, int, bytes | None, bytes, Headers]

_names_blocks: dict[tuple[str, ...], bytes] = {}
#: ``_names_blocks`` of records with one header, by that header's name.
_one_names: dict[str, bytes] = {}
_ONE_LENGTH = struct.Struct(">i")
_lengths_structs: dict[int, struct.Struct] = {}
#: Builds a named tuple from its fields given in the class's order, without the
#: Python frame of the class's generated ``__new__``: about 140 ns against 380 for
#: the ``EncodedBatch`` of a one-record append, its one use here.
_new_tuple = tuple.__new__


def _names_block(names: tuple[str, ...]) -> bytes:
    block = _names_blocks.get(names)
    if block is None:
        parts = []
        for name in names:
            raw = name.encode()
            parts.append(_NAME_LENGTH.pack(len(raw)))
            parts.append(raw)
        block = b"".join(parts)
        if len(block) > 0xFFFF:
            raise ValueError(
                f"header names take {len(block)} bytes; a record allows 65535"
            )
        if len(_names_blocks) >= _CACHE_LIMIT:
            _names_blocks.clear()
        _names_blocks[names] = block
    return block


def _one_names_block(name: str) -> bytes:
    block = _names_block((name,))
    if len(_one_names) >= _CACHE_LIMIT:
        _one_names.clear()
    _one_names[name] = block
    return block


def _lengths_struct(count: int) -> struct.Struct:
    packer = _lengths_structs.get(count)
    if packer is None:
        packer = _lengths_structs[count] = struct.Struct(f">{count}i")
    return packer


def encode_batch(
    entries: Sequence[Entry],
    *,
    last_offset_delta: int,
    compression: int = COMPRESSION_NONE,
    compacted: bool = False,
    compress: Callable[[bytes], bytes] | None = None,
    empty_timestamp: int | None = None,
) -> EncodedBatch:
    """Encode records as a batch body. ``compress`` is needed for zstd only.

    Only compaction writes a batch without records (to keep a segment's end offset);
    it then carries ``empty_timestamp`` as its first and max timestamp.
    """
    if entries:
        first_ts = entries[0][1]
    elif empty_timestamp is not None and compacted:
        first_ts = empty_timestamp
    else:
        raise ValueError("a batch needs at least one record")
    try:
        records, max_ts = _records(entries, first_ts)
    except (TypeError, struct.error) as exc:
        raise _bad_record(exc) from exc
    attributes = compression | (COMPACTED if compacted else 0)
    if compression != COMPRESSION_NONE:
        if compress is None:
            raise ValueError("a compressed batch needs a compress function")
        records = compress(records)
    body = (
        _TAIL.pack(
            attributes, last_offset_delta, len(entries), first_ts, max_ts, -1, -1
        )
        + records
    )
    return EncodedBatch(
        body=body,
        crc=zlib.crc32(body),
        record_count=len(entries),
        last_offset_delta=last_offset_delta,
        max_timestamp=max_ts,
        last_timestamp=entries[-1][1] if entries else first_ts,
        size=CRC_START + len(body),
    )


def _records(entries: Sequence[Entry], first_ts: int) -> tuple[bytes, int]:
    """The records of a batch, back to back, and their largest timestamp."""
    max_ts = first_ts
    parts: list[bytes] = []
    add = parts.append
    pack = RECORD.pack
    for delta, ts, key, value, headers in entries:
        max_ts = max(max_ts, ts)
        count = len(headers)
        if count == 1:
            # One header, as every event-store record has: no tuple of names and
            # no per-record lengths packer (a third of a long batch's cost).
            ((name, header_value),) = headers
            names = _one_names.get(name) or _one_names_block(name)
            add(
                pack(
                    delta,
                    ts - first_ts,
                    -1 if key is None else len(key),
                    len(value),
                    1,
                    len(names),
                )
            )
            if key is not None:
                add(key)
            add(value)
            add(names)
            add(_ONE_LENGTH.pack(len(header_value)))
            add(header_value)
        elif count:
            names = _names_block(tuple(name for name, _ in headers))
            values = [v for _, v in headers]
            add(
                pack(
                    delta,
                    ts - first_ts,
                    _key_length(key),
                    len(value),
                    count,
                    len(names),
                )
            )
            if key is not None:
                add(key)
            add(value)
            add(names)
            add(_lengths_struct(count).pack(*map(len, values)))
            parts.extend(values)
        else:
            add(pack(delta, ts - first_ts, _key_length(key), len(value), 0, 0))
            if key is not None:
                add(key)
            add(value)
    return b"".join(parts), max_ts


def encode_record(
    timestamp: int, key: bytes | None, value: bytes, headers: Headers
) -> EncodedBatch:
    """``encode_batch`` of one uncompressed record, the usual append: the same bytes
    in fewer steps (one ``pack`` for the batch's and the record's fixed fields)."""
    count = len(headers)
    try:
        if count:
            header_names, values = zip(*headers, strict=True)
            names = _names_block(header_names)
            lengths = _lengths_struct(count).pack(*map(len, values))
        else:
            names = lengths = b""
            values = ()
        fixed = _TAIL_AND_RECORD.pack(
            COMPRESSION_NONE,
            0,
            1,
            timestamp,
            timestamp,
            -1,
            -1,
            0,
            0,
            -1 if key is None else len(key),
            len(value),
            count,
            len(names),
        )
        if key is None:
            body = b"".join([fixed, value, names, lengths, *values])
        else:
            body = b"".join([fixed, key, value, names, lengths, *values])
    except (TypeError, struct.error) as exc:
        raise _bad_record(exc) from exc
    # In EncodedBatch's field order (_new_tuple).
    return _new_tuple(
        EncodedBatch,
        (body, zlib.crc32(body), 1, 0, timestamp, timestamp, CRC_START + len(body)),
    )


def _bad_record(exc: Exception) -> TypeError:
    return TypeError(
        "a record's key, value and header values must be bytes, its header "
        f"names str, and there may be at most 65535 headers ({exc})"
    )


def _key_length(key: bytes | None) -> int:
    return -1 if key is None else len(key)
