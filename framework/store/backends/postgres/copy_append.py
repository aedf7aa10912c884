"""A long append: the head lock, then the rows by COPY, in the caller's
transaction (from ``COPY_FROM`` events, where it beats one INSERT)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from framework.postgres.database import Cursor, fetchone_on
from framework.store.backends.postgres.params import events_headers
from framework.store.backends.postgres.statements import COPY_TYPES, StoreStatements
from framework.store.events import Appended, NewEvent
from framework.store.ports import StreamAppend


def copy_append(
    cur: Cursor,
    append: StreamAppend,
    params: dict[str, Any],
    *,
    statements: StoreStatements,
    topic_id: int,
    kind: str,
) -> Appended | None:
    """Lock the head and take the offsets (checking the expected version as the
    one-statement append does), then COPY the rows in; ``None`` when the expected
    version is missing. The unique indexes check every row as the INSERT would;
    the head stays locked to the commit."""
    events = append.events
    params["n"] = len(events)
    row = fetchone_on(cur.connection, statements.take[kind], params)
    if row is None:
        return None
    first_offset, first_version, first_stamp = int(row[0]), int(row[1]), int(row[2])
    partition = params["partition"]
    with cur.copy(statements.copy) as copy:
        copy.set_types(COPY_TYPES)
        write_row = copy.write_row
        for values in copy_rows(
            events,
            topic_id=topic_id,
            partition=partition,
            stream_id=append.stream_id,
            first_offset=first_offset,
            first_version=first_version,
            first_stamp=first_stamp,
        ):
            write_row(values)
    n = len(events)
    return Appended(
        append.stream_id,
        partition,
        first_offset,
        first_offset + n - 1,
        first_version,
        first_version + n - 1,
        False,
        first_stamp,
    )


def copy_rows(
    events: Sequence[NewEvent],
    *,
    topic_id: int,
    partition: int,
    stream_id: str,
    first_offset: int,
    first_version: int,
    first_stamp: int,
) -> Iterator[tuple[Any, ...]]:
    """The rows of a COPY append of ``events`` from the offset, version and stamp
    taken."""
    key = stream_id.encode()
    headers = events_headers(first_version, events, first_stamp)
    for i, event in enumerate(events):
        yield (
            topic_id,
            partition,
            first_offset + i,
            event.timestamp_ms,
            key,
            event.data,
            headers[i],
            first_version + i,
            event.event_id,
        )
