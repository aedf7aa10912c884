"""Decoding batches into ``LogRecord``s: the hot path of every replay.

``decode_batches`` checks and decodes a run of batches in one call, with the record
loop inline, so that a replay of one-record batches pays little per batch. Header
names and value lengths repeat from record to record (the event store writes the
same six headers every time), so each distinct header table is parsed once into a
generated reader that slices all values with one ``unpack`` and builds the pairs in
straight-line code.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from framework.log.backends.segments.batch import (
    COMPACTED,
    COMPRESSION_MASK,
    CRC_START,
    HEADER_SIZE,
    LENGTH_SIZE,
    MAGIC,
    RECORD,
)
from framework.log.records import Headers, LogRecord

#: Bounds the reader cache so that unusual data cannot grow it without limit.
_CACHE_LIMIT = 4096
_NAME_LENGTH = struct.Struct(">H")
_MIN_LENGTH = HEADER_SIZE - LENGTH_SIZE
#: The header fields decoding needs; the pad bytes skip the rest without building
#: objects for them.
_DECODE_HEADER = struct.Struct(">IBqIHiiq20x")

# ``LogRecord`` is a named tuple; ``tuple.__new__`` builds one without the Python
# frame of its generated ``__new__`` (about 130 ns against 305, a third of the
# per-record cost). Should the class change shape, the two record loops below build
# plain tuples in ``_FIELDS`` order and the caller rebuilds them through the
# constructor (``_rebuilt``).
_FIELDS = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")
FAST = issubclass(LogRecord, tuple) and getattr(LogRecord, "_fields", ()) == _FIELDS
#: What the record loops build, by position in ``_FIELDS`` order, and with what.
_RECORD_CLASS: type[tuple[object, ...]] = LogRecord if FAST else tuple
_new_record = tuple.__new__

#: Reads a record's header values at a position and pairs them with their names.
HeaderReader = Callable[[bytes, int], Headers]
#: The bytes of a record's header names and value lengths -> (reader, value bytes,
#: the name if it is the only header, else ``None``). A lone header (the event
#: store's) is sliced inline, without the reader's call.
Shape = tuple[HeaderReader, int, str | None]
_shapes: dict[bytes, Shape] = {}
_lengths_structs: dict[int, struct.Struct] = {}


def _shape(table: bytes, count: int) -> Shape:
    """Parse a header table (names block + value lengths) the slow way and cache a
    reader for it: records of one kind share the table, so this runs rarely."""
    names: list[str] = []
    pos = 0
    names_end = len(table) - 4 * count
    while pos < names_end:
        (length,) = _NAME_LENGTH.unpack_from(table, pos)
        pos += 2
        names.append(table[pos : pos + length].decode())
        pos += length
    if pos != names_end or len(names) != count:
        raise ValueError("header names do not fill their block")
    lengths_struct = _lengths_structs.get(count)
    if lengths_struct is None:
        lengths_struct = _lengths_structs[count] = struct.Struct(f">{count}i")
    lengths = lengths_struct.unpack_from(table, pos)
    if min(lengths) < 0:
        raise ValueError(f"negative header value length in {lengths}")
    shape = (
        _header_reader(tuple(names), lengths),
        sum(lengths),
        names[0] if count == 1 else None,
    )
    if len(_shapes) >= _CACHE_LIMIT:
        _shapes.clear()
    _shapes[table] = shape
    return shape


def _header_reader(names: tuple[str, ...], lengths: tuple[int, ...]) -> HeaderReader:
    """A function building the headers tuple in straight-line code: half the time of
    ``tuple(zip(names, values))``, which matters at six headers per event.

    The names reach the generated code as bound variables, never as source text.
    """
    count = len(names)
    values = ", ".join(f"v{i}" for i in range(count))
    pairs = ", ".join(f"(n{i}, v{i})" for i in range(count))
    source = (
        "def read(data, pos):\n"
        f"    {values}, = unpack_from(data, pos)\n"
        f"    return ({pairs},)\n"
    )
    namespace: dict[str, object] = {f"n{i}": name for i, name in enumerate(names)}
    namespace["unpack_from"] = struct.Struct(
        "".join(f"{n}s" for n in lengths)
    ).unpack_from
    exec(source, namespace)  # noqa: S102 - generated from counts only, see docstring
    reader: HeaderReader = namespace["read"]  # type: ignore[assignment]
    return reader


def decode_records(
    data: bytes,
    pos: int,
    end: int,
    *,
    count: int,
    base_offset: int,
    first_timestamp: int,
    topic: str,
    partition: int,
) -> list[LogRecord]:
    """The ``count`` records encoded in ``data[pos:end]``.

    Raises ``ValueError`` or ``struct.error`` if the bytes do not parse exactly;
    callers turn that into a ``CorruptSegmentError`` naming the file.
    """
    out: list[LogRecord] = []
    pos = _decode_into(
        out, data, pos, count, base_offset, first_timestamp, topic, partition, -1
    )
    if pos != end:
        raise ValueError(f"records end at byte {pos}, the batch at {end}")
    return out if FAST else [_rebuilt(r) for r in out]


def _rebuilt(record: tuple[object, ...]) -> LogRecord:
    return LogRecord(**dict(zip(_FIELDS, record, strict=True)))  # type: ignore[arg-type]


def _decode_into(  # noqa: PLR0917 - the hot loop takes plain positional arguments
    out: list[LogRecord],
    data: bytes,
    pos: int,
    count: int,
    base_offset: int,
    first_timestamp: int,
    topic: str,
    partition: int,
    min_offset: int,
) -> int:
    """Append the records at ``data[pos:]`` with offsets from ``min_offset`` on to
    ``out``; return the position after the last record."""
    # Typed loosely: without FAST these are plain tuples, rebuilt by the caller.
    add: Callable[[object], None] = out.append  # type: ignore[assignment]
    unpack = RECORD.unpack_from
    shapes_get = _shapes.get
    new, cls = _new_record, _RECORD_CLASS
    headers: Headers
    for _ in range(count):
        delta, ts_delta, key_length, value_length, header_count, names_length = unpack(
            data, pos
        )
        pos += 24
        if key_length >= 0:
            stop = pos + key_length
            key = data[pos:stop]
            pos = stop
        else:
            key = None
        stop = pos + value_length
        value = data[pos:stop]
        pos = stop
        if header_count:
            stop = pos + names_length + 4 * header_count
            table = data[pos:stop]
            read_headers, size, only = shapes_get(table) or _shape(table, header_count)
            pos = stop + size
            headers = (
                ((only, data[stop:pos]),)
                if only is not None
                else read_headers(data, stop)
            )
        else:
            headers = ()
        offset = base_offset + delta
        if offset >= min_offset:
            add(
                new(
                    cls,
                    (
                        topic,
                        partition,
                        offset,
                        first_timestamp + ts_delta,
                        key,
                        value,
                        headers,
                    ),
                )
            )
    return pos


#: What ``decode_batches`` stopped at: ``None`` (end of the bytes, or enough records),
#: else why the batch at the returned position cannot be used.
Stop = str | None


def batch_problem(  # noqa: PLR0917 - mirrors the header fields it checks
    view: memoryview,
    pos: int,
    length: int,
    magic: int,
    crc: int,
    attributes: int,
    last_delta: int,
    count: int,
) -> Stop:
    """Why the batch at ``pos`` is unusable on its own, or ``None``."""
    if magic != MAGIC:
        return f"unknown batch format {magic} (expected magic {MAGIC})"
    empty_ok = count == 0 and attributes & COMPACTED and last_delta >= 0
    if length < _MIN_LENGTH or not (0 <= count - 1 <= last_delta or empty_ok):
        return "the batch header is inconsistent"
    if zlib.crc32(view[pos + CRC_START : pos + LENGTH_SIZE + length]) != crc:
        return "the batch fails its CRC check"
    return None


# One function on purpose: every call or helper in this loop costs per batch.
def decode_batches(  # noqa: PLR0911, PLR0912, PLR0915, PLR0917
    buf: bytes,
    pos: int,
    expected: int,
    min_offset: int,
    want: int,
    out: list[LogRecord],
    topic: str,
    partition: int,
    decompress: Callable[[int, int], Callable[[bytes], bytes]],
    end: int,
) -> tuple[int, int, Stop]:
    """Check and decode the whole batches in ``buf[pos:end]`` whose offsets reach
    ``min_offset``, appending their records to ``out`` until it holds ``want``.

    ``expected`` is the offset the first batch must start at (a compacted batch may
    start later). Returns (position reached, next expected offset, problem): the
    position is that of the first batch not decoded, whole or not.
    """
    view = memoryview(buf)
    unpack_header = _DECODE_HEADER.unpack_from
    crc32 = zlib.crc32
    unpack = RECORD.unpack_from
    shapes_get = _shapes.get
    new, cls = _new_record, _RECORD_CLASS
    add: Callable[[object], None] = out.append  # type: ignore[assignment]
    headers: Headers
    while pos + HEADER_SIZE <= end and len(out) < want:
        length, magic, base, crc, attributes, last_delta, count, first_ts = (
            unpack_header(buf, pos)
        )
        stop = pos + LENGTH_SIZE + length
        if stop > end:
            if magic == MAGIC and length >= _MIN_LENGTH:
                break  # the caller reads more
            return pos, expected, "the batch header is inconsistent"
        if (
            magic != MAGIC
            or length < _MIN_LENGTH
            or not 0 <= count - 1 <= last_delta
            or crc32(view[pos + CRC_START : stop]) != crc
        ):
            problem = batch_problem(
                view, pos, length, magic, crc, attributes, last_delta, count
            )
            if problem is not None:
                return pos, expected, problem
        if base != expected and not (attributes & COMPACTED and base > expected):
            return (
                pos,
                expected,
                f"the batch starts at offset {base} where {expected} was expected",
            )
        last = base + last_delta
        if last < min_offset:
            expected = last + 1
            pos = stop
            continue
        try:
            if attributes & COMPRESSION_MASK:
                data = decompress(attributes & COMPRESSION_MASK, pos)(
                    buf[pos + HEADER_SIZE : stop]
                )
                at = _decode_into(
                    out, data, 0, count, base, first_ts, topic, partition, min_offset
                )
                if at != len(data):
                    return pos, expected, "the records do not fill their batch"
                expected = last + 1
                pos = stop
                continue
            # The record loop of _decode_into, inline: a call per batch would cost
            # as much as decoding a small record.
            at = pos + HEADER_SIZE
            for _ in range(count):
                delta, ts_delta, key_length, value_length, header_count, names = unpack(
                    buf, at
                )
                at += 24
                if key_length >= 0:
                    key = buf[at : at + key_length]
                    at += key_length
                else:
                    key = None
                value = buf[at : at + value_length]
                at += value_length
                if header_count:
                    table_end = at + names + 4 * header_count
                    table = buf[at:table_end]
                    read_headers, size, only = shapes_get(table) or _shape(
                        table, header_count
                    )
                    at = table_end + size
                    # A value running past the batch is caught below, as
                    # the records not filling it.
                    headers = (
                        ((only, buf[table_end:at]),)
                        if only is not None
                        else read_headers(buf, table_end)
                    )
                else:
                    headers = ()
                offset = base + delta
                if offset >= min_offset:
                    add(
                        new(
                            cls,
                            (
                                topic,
                                partition,
                                offset,
                                first_ts + ts_delta,
                                key,
                                value,
                                headers,
                            ),
                        )
                    )
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            return pos, expected, f"the records do not parse ({exc})"
        if at != stop:
            return pos, expected, "the records do not fill their batch"
        expected = last + 1
        pos = stop
    if not FAST:
        out[:] = [r if isinstance(r, LogRecord) else _rebuilt(r) for r in out]
    return pos, expected, None
