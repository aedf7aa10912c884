"""How an event sits in a log record: key = stream id, value = the encoded payload,
and the metadata packed into one ``$m`` header (user headers follow it).

One packed header rather than one header per field: replay decodes a header tuple
and its name per header, and this halves the store's cost per event. Records in the
older layouts are read too: the ``$e`` header (the same without the Lamport stamp,
which reads as 0) and one ``$``-header per field.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from framework.errors import CorruptLogError
from framework.log.records import Headers, LogRecord, Record, is_void
from framework.store.events import NewEvent, StoredEvent

#: The packed metadata header: stream version (u32), schema version (u16), Lamport
#: stamp (u64), event id (16 bytes), then name, correlation id and causation id,
#: each a u16 length and UTF-8 bytes. Big-endian, as PostgreSQL's ``int4send`` and
#: ``int8send`` write numbers: its append statements write the stream version and
#: the stamp into the header, which they learn only under the partition's lock.
META = "$m"
_FIXED = struct.Struct(">IHQ16s")
#: The same without the stamp, as events were written before stamps.
META_UNSTAMPED = "$e"
_FIXED_UNSTAMPED = struct.Struct("<IH16s")
#: Where the stamp and the event id sit in a ``$m`` value.
STAMP_AT = 6
_STAMP = struct.Struct(">Q")
_ID_AT = 14
_LENGTH = struct.Struct(">H")
_LENGTH_UNSTAMPED = struct.Struct("<H")
_MAX_TEXT = 0xFFFF
#: Packers of the whole ``$m`` header by the lengths of its three texts, and how many
#: are kept before starting over.
_meta_packers: dict[tuple[int, int, int], struct.Struct] = {}
_PACKERS_KEPT = 1024
#: Builds a named tuple from its fields given in the class's order, without the
#: Python frame of the class's generated ``__new__``: about 105 ns against 220 for
#: a ``Record`` (once per saved event) and 210 against 380 for a ``StoredEvent``
#: (once per replayed event). The three builds below are the only ones here.
_new_tuple = tuple.__new__

# The per-field layout, still read.
VERSION = "$v"
EVENT_ID = "$id"
NAME = "$type"
SCHEMA_VERSION = "$tv"
CORRELATION = "$corr"
CAUSATION = "$caus"


def pack_meta(stream_version: int, event: NewEvent, stamp: int) -> bytes:
    """The ``$m`` header's value; ``ValueError`` (before anything is written) if a
    field does not fit."""
    name = event.name.encode()
    correlation = event.correlation_id.encode()
    causation = event.causation_id.encode()
    lengths = (len(name), len(correlation), len(causation))
    try:
        packer = _meta_packers.get(lengths) or _meta_packer(lengths)
        return packer.pack(
            stream_version,
            event.version,
            stamp,
            event.event_id.bytes,
            lengths[0],
            name,
            lengths[1],
            correlation,
            lengths[2],
            causation,
        )
    except struct.error:
        for what, raw in (
            ("name", name),
            ("correlation id", correlation),
            ("causation id", causation),
        ):
            if len(raw) > _MAX_TEXT:
                raise ValueError(
                    f"an event's {what} is at most {_MAX_TEXT} bytes of UTF-8, "
                    f"got {len(raw)}"
                ) from None
        raise ValueError(
            f"an event's version must fit 16 bits, its stream version 32 bits and "
            f"its stamp 64 bits; got {event.version}, {stream_version} and {stamp}"
        ) from None


def _meta_packer(lengths: tuple[int, int, int]) -> struct.Struct:
    # One pack for the whole header: names and ids come in few lengths.
    if len(_meta_packers) >= _PACKERS_KEPT:
        _meta_packers.clear()
    name, correlation, causation = lengths
    packer = _meta_packers[lengths] = struct.Struct(
        f">IHQ16sH{name}sH{correlation}sH{causation}s"
    )
    return packer


def to_record(
    stream_key: bytes, stream_version: int, event: NewEvent, stamp: int
) -> Record:
    meta = (META, pack_meta(stream_version, event, stamp))
    user = event.headers
    # In Record's field order (_new_tuple).
    return _new_tuple(
        Record,
        (
            event.data,
            stream_key,
            (meta, *[(n, v.encode()) for n, v in user.items()]) if user else (meta,),
            event.timestamp_ms,
        ),
    )


def to_records(
    stream_key: bytes, first_version: int, events: Sequence[NewEvent], first_stamp: int
) -> list[Record]:
    """``to_record`` for successive events of one stream, stamped ``first_stamp``
    on: what they share (the name, the correlation and causation ids of one
    command) is encoded once."""
    records: list[Record] = []
    add = records.append
    texts: tuple[str, str, str] | None = None
    pack = _FIXED.pack  # replaced below before use
    name = correlation = causation = b""
    name_length = correlation_length = causation_length = 0
    stamp = first_stamp - 1
    for version, event in enumerate(events, first_version):
        stamp += 1
        event_texts = (event.name, event.correlation_id, event.causation_id)
        if event_texts != texts:
            texts = event_texts
            name = event.name.encode()
            correlation = event.correlation_id.encode()
            causation = event.causation_id.encode()
            lengths = (len(name), len(correlation), len(causation))
            name_length, correlation_length, causation_length = lengths
            pack = (_meta_packers.get(lengths) or _meta_packer(lengths)).pack
        try:
            meta = (
                META,
                pack(
                    version,
                    event.version,
                    stamp,
                    event.event_id.bytes,
                    name_length,
                    name,
                    correlation_length,
                    correlation,
                    causation_length,
                    causation,
                ),
            )
        except struct.error:
            pack_meta(version, event, stamp)  # raises the ValueError naming the field
            raise
        user = event.headers
        add(
            # In Record's field order (_new_tuple).
            _new_tuple(
                Record,
                (
                    event.data,
                    stream_key,
                    (meta, *[(n, v.encode()) for n, v in user.items()])
                    if user
                    else (meta,),
                    event.timestamp_ms,
                ),
            )
        )
    return records


def _corrupt(record: LogRecord, why: str) -> CorruptLogError:
    return CorruptLogError(
        f"record {record.topic}/{record.partition} offset {record.offset} is not an "
        f"event-store record ({why}); only the event store may write to its topic"
    )


def stream_version_of(record: LogRecord) -> tuple[str, int]:
    """The (stream id, stream version) of a record, reading as little as possible."""
    headers: Headers = record.headers
    if record.key is None or not headers:
        raise _corrupt(record, "no stream key or metadata header")
    name, value = headers[0]
    if name == META:
        return record.key.decode(), _FIXED.unpack_from(value)[0]
    if name == META_UNSTAMPED:
        return record.key.decode(), _FIXED_UNSTAMPED.unpack_from(value)[0]
    if name == VERSION:
        return record.key.decode(), int(value)
    raise _corrupt(record, "no metadata header first")


def stamp_of(record: LogRecord) -> int:
    """The Lamport stamp of an event-store record: 0 for one written before
    stamps (or a void record)."""
    headers = record.headers
    if headers and headers[0][0] == META:
        try:
            return int(_STAMP.unpack_from(headers[0][1], STAMP_AT)[0])
        except struct.error:
            raise _corrupt(record, "its metadata header is too short") from None
    return 0


_unpack_length = _LENGTH.unpack_from
_unpack_length_unstamped = _LENGTH_UNSTAMPED.unpack_from
#: Shared by every event without user headers, so it must not be changeable.
_NONE: Mapping[str, str] = MappingProxyType({})

_new_object = object.__new__
_UNKNOWN = uuid.SafeUUID.unknown
# UUID's two slots, set through their descriptors: a third faster than
# ``object.__setattr__``, which looks the name up first.
_set_int = uuid.UUID.__dict__["int"].__set__
_set_is_safe = uuid.UUID.__dict__["is_safe"].__set__

#: Unpacks a whole ``$m`` value of one length, with the text lengths it was made
#: for: ids and names come in few lengths, so one ``unpack`` reads a header.
_MetaParser = tuple[Callable[[bytes], tuple[Any, ...]], int, int, int]
_meta_parsers: dict[int, _MetaParser] = {}
_unstamped_parsers: dict[int, _MetaParser] = {}


def uuid_from_bytes(raw: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=raw)`` without its argument parsing: a quarter of the cost on
    the replay path. Relies on UUID's two slots, unchanged since Python 3.8."""
    if len(raw) != 16:
        raise ValueError(f"an event id is 16 bytes, got {len(raw)}")
    value = _new_object(uuid.UUID)
    _set_int(value, int.from_bytes(raw, "big"))
    _set_is_safe(value, _UNKNOWN)
    return value


def event_id_of(record: LogRecord) -> uuid.UUID:
    for name, value in record.headers:
        if name == META:
            return uuid_from_bytes(value[_ID_AT : _ID_AT + 16])
        if name == META_UNSTAMPED:
            return uuid_from_bytes(value[6:22])
        if name == EVENT_ID:
            return uuid_from_bytes(value)
    raise _corrupt(record, "no event id header")


def _meta_parser(meta: bytes) -> _MetaParser:
    """The parser for ``$m`` values laid out as ``meta`` is, read field by field;
    ``struct.error`` if its texts do not fill it exactly."""
    texts, at = _texts(meta, _FIXED.size, _unpack_length)
    # The packer's format is the parser's: one cache serves writes and reads.
    packer = _meta_packers.get(texts) or _meta_packer(texts)
    if len(_meta_parsers) >= _PACKERS_KEPT:
        _meta_parsers.clear()
    parser = _meta_parsers[at] = (packer.unpack, *texts)
    return parser


def _unstamped_parser(meta: bytes) -> _MetaParser:
    """``_meta_parser`` for ``$e`` values (no stamp)."""
    texts, at = _texts(meta, _FIXED_UNSTAMPED.size, _unpack_length_unstamped)
    name, correlation, causation = texts
    if len(_unstamped_parsers) >= _PACKERS_KEPT:
        _unstamped_parsers.clear()
    unpack = struct.Struct(f"<IH16sH{name}sH{correlation}sH{causation}s").unpack
    parser = _unstamped_parsers[at] = (unpack, *texts)
    return parser


def _texts(
    meta: bytes, at: int, unpack_length: Callable[[bytes, int], tuple[int]]
) -> tuple[tuple[int, int, int], int]:
    """The lengths of the three texts after the fixed fields, and where they end
    (the value's length, else ``struct.error``)."""
    lengths = []
    for _ in range(3):
        (length,) = unpack_length(meta, at)
        lengths.append(length)
        at += 2 + length
    if at != len(meta):
        raise struct.error(f"the texts end at byte {at} of {len(meta)}")
    return (lengths[0], lengths[1], lengths[2]), at


def to_stored(record: LogRecord) -> StoredEvent:
    """The stored event a record holds; ``CorruptLogError`` if it holds none."""
    return to_stored_all((record,))[0]


def to_stored_all(records: Sequence[LogRecord]) -> list[StoredEvent]:
    """``[to_stored(r) for r in records]``, in one call: the replay path. Void
    records (offsets of transactions that never committed) are left out.

    Raises ``CorruptLogError`` for the first record that holds no stored event.
    """
    out: list[StoredEvent] = []
    add = out.append
    parsers_get = _meta_parsers.get
    new_uuid = _new_object
    uuid_class = uuid.UUID
    set_int = _set_int
    set_is_safe = _set_is_safe
    unknown = _UNKNOWN
    from_bytes = int.from_bytes
    new = _new_tuple
    none = _NONE
    # A save of several events is one run of records with one key: decoded once.
    last_key = None
    stream = ""
    # Everything of an event without user headers is read inline, with local names:
    # a call per event costs as much as a field.
    for record in records:
        _, partition, offset, timestamp, key, value, headers = record
        if key is None or not headers:
            if not is_void(record):  # else an offset of an aborted transaction
                add(_to_stored_other(record))
            continue
        first, meta = headers[0]
        try:
            if first == META:
                unpack, name_length, correlation_length, causation_length = parsers_get(
                    len(meta)
                ) or _meta_parser(meta)
                (version, schema_version, stamp, raw_id, n, name, c, correlation,
                 k, causation) = unpack(meta)  # fmt: skip
                # Another layout of the same length: the lengths read tell.
                if n != name_length or c != correlation_length or k != causation_length:
                    unpack, *_ = _meta_parser(meta)
                    (version, schema_version, stamp, raw_id, n, name, c,
                     correlation, k, causation) = unpack(meta)  # fmt: skip
            elif first == META_UNSTAMPED:
                unpack, *_ = _unstamped_parsers.get(len(meta)) or _unstamped_parser(
                    meta
                )
                (version, schema_version, raw_id, n, name, c, correlation, k,
                 causation) = unpack(meta)  # fmt: skip
                if len(name) != n or len(correlation) != c or len(causation) != k:
                    unpack, *_ = _unstamped_parser(meta)
                    (version, schema_version, raw_id, n, name, c, correlation, k,
                     causation) = unpack(meta)  # fmt: skip
                stamp = 0
            else:
                add(_to_stored_other(record))
                continue
            event_id = new_uuid(uuid_class)
            set_int(event_id, from_bytes(raw_id, "big"))
            set_is_safe(event_id, unknown)
            if key != last_key:
                stream = key.decode()
                last_key = key
            # In StoredEvent's field order (_new_tuple).
            add(
                new(
                    StoredEvent,
                    (
                        event_id,
                        stream,
                        version,
                        name.decode(),
                        schema_version,
                        value,
                        timestamp,
                        correlation.decode(),
                        causation.decode(),
                        none if len(headers) == 1 else _user_headers(headers),
                        stamp,
                        partition,
                        offset,
                    ),
                )
            )
        except (struct.error, UnicodeDecodeError) as exc:
            raise _corrupt(record, f"unreadable metadata or headers: {exc}") from None
    return out


def _user_headers(headers: Headers) -> dict[str, str]:
    return {name: value.decode() for name, value in headers[1:]}


def _to_stored_other(record: LogRecord) -> StoredEvent:
    """A record in the older layout, or not the store's."""
    key = record.key
    if key is None:
        raise _corrupt(record, "no stream key")
    return _to_stored_any_order(record, key)


def _to_stored_any_order(record: LogRecord, key: bytes) -> StoredEvent:
    meta: dict[str, bytes] = {}
    user: dict[str, str] = {}
    try:
        for name, value in record.headers:
            if name[:1] == "$":
                meta[name] = value
            else:
                user[name] = value.decode()
        return StoredEvent(
            event_id=uuid_from_bytes(meta[EVENT_ID]),
            stream_id=key.decode(),
            stream_version=int(meta[VERSION]),
            name=meta[NAME].decode(),
            version=int(meta[SCHEMA_VERSION]),
            data=record.value,
            timestamp_ms=record.timestamp,
            correlation_id=meta[CORRELATION].decode(),
            causation_id=meta[CAUSATION].decode(),
            headers=user,
            stamp=0,
            partition=record.partition,
            offset=record.offset,
        )
    except KeyError as exc:
        raise _corrupt(record, f"missing header {exc.args[0]}") from None
    except ValueError as exc:
        raise _corrupt(record, f"unreadable header: {exc}") from None


def meta_struct(
    name_length: int, correlation_length: int, causation_length: int
) -> struct.Struct:
    """The struct that packs and unpacks a whole ``$m`` value whose name,
    correlation and causation ids have these UTF-8 lengths: the one ``pack_meta``
    uses, for writers and readers that pack or unpack it in place (``pack_into``,
    ``unpack_from``)."""
    lengths = (name_length, correlation_length, causation_length)
    return _meta_packers.get(lengths) or _meta_packer(lengths)
