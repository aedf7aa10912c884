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
from collections.abc import Sequence
from typing import Any

from framework.errors import CorruptLogError
from framework.log.backends.postgres.headers import decode_headers
from framework.log.records import LogRecord
from framework.store.events import Appended, NewEvent, StoredEvent
from framework.store.records import META, to_stored_all

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


def event_headers_prefix(meta_length: int) -> bytes:
    """The bytes the headers column holds before a ``$e`` value this long."""
    return META_PREFIX + meta_length.to_bytes(4, "big")


def _not_an_event(topic: str, partition: int, offset: int, why: str) -> CorruptLogError:
    return CorruptLogError(
        f"record {topic}/{partition} offset {offset} was not written by the event "
        f"store ({why}); only the event store may write to its topic"
    )


def stored_events(topic: str, rows: Sequence[tuple[Any, ...]]) -> list[StoredEvent]:
    """Read rows (``READ_COLUMNS``) as the events they hold, through the store's
    own record parser (``records.to_stored_all``); ``CorruptLogError`` for a row
    that holds none."""
    records: list[LogRecord] = []
    add = records.append
    for row in rows:
        partition, offset, timestamp, key, value, headers = row
        if headers is None or headers[:4] != META_PREFIX:
            raise _not_an_event(topic, partition, offset, "no $e header first")
        end = META_VALUE_AT + int.from_bytes(headers[4:META_VALUE_AT], "big")
        meta = (META, headers[META_VALUE_AT:end])
        # In LogRecord's field order (tuple.__new__: once per event read).
        add(
            _new_tuple(
                LogRecord,
                (
                    topic,
                    partition,
                    offset,
                    timestamp,
                    key,
                    value,
                    (meta, *decode_headers(headers[end:]))
                    if len(headers) > end
                    else (meta,),
                ),
            )
        )
    return to_stored_all(records)


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
