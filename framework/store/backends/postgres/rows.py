"""The store's rows as values: a read row as a ``StoredEvent``, a replay row as
(name, schema version, data), an append statement's row as the ``Appended`` it
reports, and the columns a read row holds.

A row is a log record (``framework.store.records`` lays the event out in it): the
key is the stream id, the headers (the log's encoding,
``framework.log.backends.postgres.headers``) hold the packed ``$e`` metadata
first, then the user headers.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from framework.errors import CorruptLogError
from framework.log.backends.postgres.headers import decode_user_headers
from framework.store.events import Appended, NewEvent, StoredEvent
from framework.store.records import META, meta_head

#: The columns of a full read: a log record's, in ``LogRecord``'s order after the
#: topic, so that a row plus the topic is one.
READ_COLUMNS = ("partition", '"offset"', "timestamp_ms", "key", "value", "headers")

#: How the headers column starts on every event row: the ``$e`` header's name
#: length and name (the value's length follows, big-endian u32).
META_PREFIX = struct.pack(">H", len(META.encode())) + META.encode()
#: After the prefix and the value's length: where the ``$e`` value starts.
META_VALUE_AT = len(META_PREFIX) + 4
#: Inside the ``$e`` value (``records.pack_meta``): the schema version (u16 LE)
#: after the stream version, and the name's length (u16 LE) after the event id.
_SCHEMA_VERSION_AT = META_VALUE_AT + 4
_NAME_LENGTH_AT = META_VALUE_AT + 4 + 2 + 16
_NAME_AT = _NAME_LENGTH_AT + 2
_new_tuple = tuple.__new__
#: Stands for "no headers" in every event read without any (read-only by type).
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def event_headers_prefix(meta_length: int) -> bytes:
    """The bytes the headers column holds before a ``$e`` value this long."""
    return META_PREFIX + meta_length.to_bytes(4, "big")


def _not_an_event(topic: str, partition: int, offset: int, why: str) -> CorruptLogError:
    return CorruptLogError(
        f"record {topic}/{partition} offset {offset} was not written by the event "
        f"store ({why}); only the event store may write to its topic"
    )


#: Per first eight bytes of an event row's headers (the ``$e`` prefix and its
#: value's length): where the value ends. Kept per length, as few as there are
#: lengths of names and ids.
_ends: dict[bytes, int] = {}
#: Per packed texts of a ``$e`` value (name, correlation and causation ids, each a
#: u16 length and UTF-8): the three as ``str``. One command's events share them.
_texts: dict[bytes, tuple[str, str, str]] = {}
_KEPT = 1024
_head = meta_head()
_TEXTS_AT = META_VALUE_AT + _head.size
_unpack_length = struct.Struct("<H").unpack_from
_new_object = object.__new__
# UUID's two slots, set through their descriptors (as ``records.uuid_from_bytes``
# does): an event id costs a quarter of ``uuid.UUID(bytes=...)``.
_set_int = uuid.UUID.__dict__["int"].__set__
_set_is_safe = uuid.UUID.__dict__["is_safe"].__set__
_UNKNOWN = uuid.SafeUUID.unknown


def _end(headers: bytes) -> int:
    """Where the ``$e`` value of ``headers`` ends; ``ValueError`` unless they
    start with a whole ``$e`` header."""
    if headers[:4] != META_PREFIX:
        raise ValueError("no $e header first")
    end = META_VALUE_AT + int.from_bytes(headers[4:META_VALUE_AT], "big")
    if end > len(headers) or end < _TEXTS_AT:
        raise ValueError(f"the $e value ends at byte {end} of {len(headers)}")
    if len(_ends) >= _KEPT:
        _ends.clear()
    _ends[headers[:META_VALUE_AT]] = end
    return end


def _decoded(texts: bytes) -> tuple[str, str, str]:
    """The name, correlation and causation ids packed in ``texts``; ``ValueError``
    unless the three fill it exactly."""
    at = 0
    out = []
    for _ in range(3):
        (length,) = _unpack_length(texts, at)
        at += 2
        out.append(texts[at : at + length].decode())
        at += length
    if at != len(texts):
        raise ValueError(f"the $e texts end at byte {at} of {len(texts)}")
    if len(_texts) >= _KEPT:
        _texts.clear()
    decoded = _texts[texts] = (out[0], out[1], out[2])
    return decoded


def stored_events(topic: str, rows: Iterable[tuple[Any, ...]]) -> list[StoredEvent]:
    """Read rows (``READ_COLUMNS``) as the events they hold; ``CorruptLogError``
    for a row that holds none.

    Replay and projections read every event through here, so it reads in place,
    inline: the fixed fields of the ``$e`` value with ``records.meta_head``, and
    its texts, which one command's events share, decoded once per run of them
    (a call or a decode per field would cost as much as the field)."""
    out: list[StoredEvent] = []
    add = out.append
    ends_get = _ends.get
    texts_get = _texts.get
    unpack_head = _head.unpack_from
    new = _new_tuple
    new_uuid = _new_object
    uuid_class = uuid.UUID
    set_int = _set_int
    set_is_safe = _set_is_safe
    unknown = _UNKNOWN
    from_bytes = int.from_bytes
    none = _NO_HEADERS
    value_at = META_VALUE_AT
    texts_at = _TEXTS_AT
    # A save of several events is one run of rows with one key and, from one
    # command, one name and pair of ids: each decoded once.
    last_key = last_texts = None
    stream = name = correlation = causation = ""
    for row in rows:
        partition, offset, timestamp, key, value, headers = row
        try:
            end = ends_get(headers[:value_at]) or _end(headers)
            version, schema_version, raw_id = unpack_head(headers, value_at)
            texts = headers[texts_at:end]
            if texts != last_texts:
                name, correlation, causation = texts_get(texts) or _decoded(texts)
                last_texts = texts
            if key != last_key:
                stream = key.decode()
                last_key = key
            event_id = new_uuid(uuid_class)
            set_int(event_id, from_bytes(raw_id, "big"))
            set_is_safe(event_id, unknown)
            # In StoredEvent's field order (tuple.__new__: about 210 ns against
            # 380 for StoredEvent(...), once for every event read).
            add(
                new(
                    StoredEvent,
                    (
                        event_id,
                        stream,
                        version,
                        name,
                        schema_version,
                        value,
                        timestamp,
                        correlation,
                        causation,
                        none
                        if len(headers) == end
                        else decode_user_headers(headers[end:]),
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
) -> list[tuple[str, int, bytes]]:
    """Replay rows (headers, value) as (name, schema version, data): the two
    fields are read where ``records.pack_meta`` puts them, nothing else is."""
    out: list[tuple[str, int, bytes]] = []
    add = out.append
    name_at = _NAME_AT
    try:
        for headers, value in rows:
            if headers[:4] != META_PREFIX:
                raise ValueError("no $e header first")
            name_end = name_at + (
                headers[_NAME_LENGTH_AT] | headers[_NAME_LENGTH_AT + 1] << 8
            )
            if name_end > len(headers):
                raise ValueError("the $e header ends inside the event name")
            add(
                (
                    headers[name_at:name_end].decode(),
                    headers[_SCHEMA_VERSION_AT] | headers[_SCHEMA_VERSION_AT + 1] << 8,
                    value,
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
    """What an append statement's ``row`` says it wrote: its first offset, and its
    first version when no version was expected (else the one after it)."""
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
    )
