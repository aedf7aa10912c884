"""The store's rows as values: a read row as a ``StoredEvent``, a replay row as
(name, schema version, data), an append statement's row as the ``Appended`` it
reports, and the columns a read row holds.

A row is a log record (``framework.store.records`` lays the event out in it): the
key is the stream id, the headers (the log's encoding,
``framework.log.backends.postgres.headers``) hold the packed ``$m`` metadata
first, then the user headers.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from framework.errors import CorruptLogError
from framework.log.backends.postgres.headers import decode_user_headers
from framework.store.events import Appended, NewEvent, StoredEvent
from framework.store.records import META, meta_struct

#: The columns of a full read: a log record's, in ``LogRecord``'s order after the
#: topic, so that a row plus the topic is one.
READ_COLUMNS = ("partition", '"offset"', "timestamp_ms", "key", "value", "headers")

#: How the headers column starts on every event row: the ``$m`` header's name
#: length and name (the value's length follows, big-endian u32).
META_PREFIX = struct.pack(">H", len(META.encode())) + META.encode()
#: After the prefix and the value's length: where the ``$m`` value starts.
META_VALUE_AT = len(META_PREFIX) + 4
#: Inside the ``$m`` value (``records.pack_meta``, big-endian): the schema version
#: (u16) after the stream version, the stamp (u64) after it, and the name's length
#: (u16) after the event id.
_SCHEMA_VERSION_AT = META_VALUE_AT + 4
_STAMP_AT = META_VALUE_AT + 4 + 2
#: Where a row's stamp starts in its headers (counted from 0).
STAMP_AT = _STAMP_AT
_NAME_LENGTH_AT = META_VALUE_AT + 4 + 2 + 8 + 16
_NAME_AT = _NAME_LENGTH_AT + 2
_new_tuple = tuple.__new__
#: Stands for "no headers" in every event read without any (read-only by type).
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def event_headers_prefix(meta_length: int) -> bytes:
    """The bytes the headers column holds before a ``$m`` value this long."""
    return META_PREFIX + meta_length.to_bytes(4, "big")


def _not_an_event(topic: str, partition: int, offset: int, why: str) -> CorruptLogError:
    return CorruptLogError(
        f"record {topic}/{partition} offset {offset} was not written by the event "
        f"store ({why}); only the event store may write to its topic"
    )


#: Per first eight bytes of an event row's headers (the ``$m`` prefix and its
#: value's length): the unpacker of the whole ``$m`` value (``records.meta_struct``)
#: with the text lengths it was made for, and where the value ends. Ids and names
#: come in few lengths, so one ``unpack_from`` reads a row's metadata in place.
_Parser = tuple[Callable[[bytes, int], tuple[Any, ...]], int, int, int, int]
_parsers: dict[bytes, _Parser] = {}
_PARSERS_KEPT = 1024
_unpack_u16 = struct.Struct(">H").unpack_from
_new_object = object.__new__
# UUID's two slots, set through their descriptors (as ``records.uuid_from_bytes``
# does): an event id costs a quarter of ``uuid.UUID(bytes=...)``.
_set_int = uuid.UUID.__dict__["int"].__set__
_set_is_safe = uuid.UUID.__dict__["is_safe"].__set__
_UNKNOWN = uuid.SafeUUID.unknown


def _parser(headers: bytes) -> _Parser:
    """The parser for rows whose headers start as ``headers`` does, read field by
    field; ``ValueError`` if they do not start with a whole ``$m`` header."""
    if headers[:4] != META_PREFIX:
        raise ValueError("no $m header first")
    end = META_VALUE_AT + int.from_bytes(headers[4:META_VALUE_AT], "big")
    at = _NAME_LENGTH_AT
    lengths = []
    for _ in range(3):
        (length,) = _unpack_u16(headers, at)
        lengths.append(length)
        at += 2 + length
    if at != end or end > len(headers):
        raise ValueError(f"the $m header's texts end at byte {at}, its value at {end}")
    unpack = meta_struct(lengths[0], lengths[1], lengths[2]).unpack_from
    if len(_parsers) >= _PARSERS_KEPT:
        _parsers.clear()
    parser = _parsers[headers[:META_VALUE_AT]] = (unpack, *lengths, end)
    return parser


def stored_events(topic: str, rows: Iterable[tuple[Any, ...]]) -> list[StoredEvent]:
    """Read rows (``READ_COLUMNS``) as the events they hold; ``CorruptLogError``
    for a row that holds none.

    The ``$m`` value is unpacked in place by the struct ``records.pack_meta``
    packs it with, the rest of the row read inline: replay and projections read
    every event through here, and a call per field would cost as much as the
    field."""
    out: list[StoredEvent] = []
    add = out.append
    get = _parsers.get
    new = _new_tuple
    new_uuid = _new_object
    uuid_class = uuid.UUID
    set_int = _set_int
    set_is_safe = _set_is_safe
    unknown = _UNKNOWN
    from_bytes = int.from_bytes
    none = _NO_HEADERS
    value_at = META_VALUE_AT
    # A save of several events is one run of rows with one key, and the events
    # of one command share a name, correlation and causation id: each decoded
    # once per run (events saved outside a command have ids of their own).
    last_key = last_name = last_correlation = last_causation = None
    stream = name_text = correlation_text = causation_text = ""
    for row in rows:
        partition, offset, timestamp, key, value, headers = row
        try:
            unpack, name_length, correlation_length, causation_length, end = get(
                headers[:value_at]
            ) or _parser(headers)
            (version, schema_version, stamp, raw_id, n, name, c, correlation, k,
             causation) = unpack(headers, value_at)  # fmt: skip
            # Another layout of the same length: the lengths read tell.
            if n != name_length or c != correlation_length or k != causation_length:
                unpack, *_, end = _parser(headers)
                (version, schema_version, stamp, raw_id, n, name, c, correlation,
                 k, causation) = unpack(headers, value_at)  # fmt: skip
            event_id = new_uuid(uuid_class)
            set_int(event_id, from_bytes(raw_id, "big"))
            set_is_safe(event_id, unknown)
            if key != last_key:
                stream = key.decode()
                last_key = key
            if name != last_name:
                name_text = name.decode()
                last_name = name
            if correlation != last_correlation:
                correlation_text = correlation.decode()
                last_correlation = correlation
            if causation != last_causation:
                causation_text = causation.decode()
                last_causation = causation
            # In StoredEvent's field order (tuple.__new__: about 210 ns against
            # 380 for StoredEvent(...), once for every event read).
            add(
                new(
                    StoredEvent,
                    (
                        event_id,
                        stream,
                        version,
                        name_text,
                        schema_version,
                        value,
                        timestamp,
                        correlation_text,
                        causation_text,
                        none
                        if len(headers) == end
                        else decode_user_headers(headers[end:]),
                        stamp,
                        partition,
                        offset,
                    ),
                )
            )
        except (
            CorruptLogError,  # user headers that do not parse
            TypeError,
            ValueError,
            AttributeError,
            struct.error,
        ) as exc:
            raise _not_an_event(topic, partition, offset, str(exc)) from None
    return out


def stored_event(topic: str, row: tuple[Any, ...]) -> StoredEvent:
    """One read row (``READ_COLUMNS``) as the event it holds."""
    return stored_events(topic, (row,))[0]


def stream_data(
    stream_id: str, rows: Sequence[tuple[Any, ...]]
) -> list[tuple[str, int, bytes, int]]:
    """Replay rows (headers, value) as (name, schema version, data, stamp): the
    fields are read where ``records.pack_meta`` puts them, nothing else is."""
    out: list[tuple[str, int, bytes, int]] = []
    add = out.append
    name_at = _NAME_AT
    stamp_at = _STAMP_AT
    from_bytes = int.from_bytes
    try:
        for headers, value in rows:
            if headers[:4] != META_PREFIX:
                raise ValueError("no $m header first")
            name_end = name_at + (
                headers[_NAME_LENGTH_AT] << 8 | headers[_NAME_LENGTH_AT + 1]
            )
            if name_end > len(headers):
                raise ValueError("the $m header ends inside the event name")
            add(
                (
                    headers[name_at:name_end].decode(),
                    headers[_SCHEMA_VERSION_AT] << 8 | headers[_SCHEMA_VERSION_AT + 1],
                    value,
                    from_bytes(headers[stamp_at : stamp_at + 8], "big"),
                )
            )
    except (TypeError, IndexError, ValueError) as exc:
        raise CorruptLogError(
            f"stream {stream_id!r} has a row the event store did not write "
            f"(version {len(out) + 1}: {exc}); only the event store may write to "
            "its topic"
        ) from None
    return out


def appended_by(
    stream_id: str,
    events: Sequence[NewEvent],
    expected: int | None,
    partition: int,
    row: Sequence[Any],
) -> Appended:
    """What an append statement's ``row`` says it wrote: its first offset, its
    first version when no version was expected (else the one after it), and its
    first stamp (last)."""
    n = len(events)
    first_offset = int(row[0])
    first_version = int(row[1]) if expected is None else expected + 1
    # Positional: a named tuple built by keyword costs a save 2 µs more.
    return Appended(
        stream_id,
        partition,
        first_offset,
        first_offset + n - 1,
        first_version,
        first_version + n - 1,
        False,
        int(row[-1]),
    )
