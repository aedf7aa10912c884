"""The store's rows as values: a read row as a ``StoredEvent``, an append
statement's row as the ``Appended`` it reports."""

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
    """A row of the read statements (``StoredEvent``'s field order) as the event."""
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
    # Positional, through tuple.__new__: this runs once per replayed event.
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
