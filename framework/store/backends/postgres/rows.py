"""The store's rows as values: a read row as a ``StoredEvent``, an append
statement's row as the ``Appended`` it reports, and the columns a read row holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from framework.errors import CorruptLogError
from framework.log.backends.postgres.headers import decode_user_headers
from framework.store.events import Appended, NewEvent, StoredEvent

#: Stands for "no headers" in every event read without any (read-only by type).
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})
_new_tuple = tuple.__new__

#: The column each ``StoredEvent`` field is read from, in the field order: the
#: read statements select these (``statements.EVENT_COLUMNS``), so that a read
#: row is a ``StoredEvent``'s fields in order and ``stored_event`` can build one
#: positionally.
COLUMN_OF_FIELD: Mapping[str, str] = MappingProxyType(
    {
        "event_id": "event_id",
        "stream_id": "stream_id",
        "stream_version": "stream_version",
        "name": "event_name",
        "version": "event_version",
        "data": "value",
        "timestamp_ms": "timestamp_ms",
        "correlation_id": "correlation_id",
        "causation_id": "causation_id",
        "headers": "headers",
        "partition": "partition",
        "offset": '"offset"',
    }
)
if tuple(COLUMN_OF_FIELD) != StoredEvent._fields:
    raise ImportError(
        "the columns read for a StoredEvent are given for the fields "
        f"{tuple(COLUMN_OF_FIELD)}, but StoredEvent's fields are "
        f"{StoredEvent._fields}: list them in StoredEvent's order in "
        f"{__name__}.COLUMN_OF_FIELD (and unpack them so in stored_event)"
    )


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


def stored_events(topic: str, rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
    return [stored_event(topic, row) for row in rows]


def stored_event(topic: str, row: tuple[Any, ...]) -> StoredEvent:
    """A row of the read statements (``StoredEvent``'s field order, as
    ``COLUMN_OF_FIELD`` lists the columns) as the event."""
    (
        event_id,
        stream,
        version,
        name,
        ev_version,
        data,
        ts,
        corr,
        caus,
        headers,
        p,
        o,
    ) = row
    if stream is None:
        raise CorruptLogError(
            f"record {topic}/{p} offset {o} was not written by the event store; "
            "only the event store may write to its topic"
        )
    # Positional, through tuple.__new__ rather than StoredEvent(...): about 210 ns
    # a StoredEvent against 380, once for every event a load or replay reads.
    return _new_tuple(
        StoredEvent,
        (
            event_id,
            stream,
            version,
            name,
            ev_version,
            data,
            ts,
            corr,
            caus,
            _NO_HEADERS if headers is None else decode_user_headers(headers),
            p,
            o,
        ),
    )
