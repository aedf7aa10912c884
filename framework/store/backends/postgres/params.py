"""The parameters of the store's append statements, and the headers column of an
event row: the log's header encoding of the records ``framework.store.records``
lays out (the packed ``$e`` metadata, then the user headers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from framework.log.backends.postgres.headers import encode_user_headers
from framework.store.backends.postgres.rows import event_headers_prefix
from framework.store.events import NewEvent
from framework.store.records import pack_meta


def event_headers(stream_version: int, event: NewEvent) -> bytes:
    """The headers column of ``event`` at ``stream_version``; ``ValueError``
    (before anything is written) if a field does not fit the ``$e`` header."""
    meta = pack_meta(stream_version, event)
    framed = event_headers_prefix(len(meta)) + meta
    if event.headers:
        user = encode_user_headers(event.headers)
        assert user is not None
        return framed + user
    return framed


def events_headers(first_version: int, events: Sequence[NewEvent]) -> list[bytes]:
    """``event_headers`` of successive versions from ``first_version``."""
    return [
        event_headers(version, event)
        for version, event in enumerate(events, first_version)
    ]


def head_params(
    topic_id: int, stream_id: str, expected: int | None, partition: int
) -> dict[str, Any]:
    """The parameters that lock a stream's partition head."""
    return {
        "topic": topic_id,
        "partition": partition,
        "expected": expected,
        "key": stream_id.encode(),
    }


def append_params(
    topic_id: int,
    stream_id: str,
    events: Sequence[NewEvent],
    expected: int | None,
    partition: int,
) -> dict[str, Any]:
    """The parameters of an append statement (below ``COPY_FROM`` events).

    Without an expected version the statement learns the versions on the server
    and writes them into the headers, so they are packed as 0 here."""
    params = head_params(topic_id, stream_id, expected, partition)
    first = 0 if expected is None else expected + 1
    if len(events) == 1:
        # Scalars, not arrays: dumping one-element arrays costs more than the
        # insert on the fast path of single-event saves.
        event = events[0]
        params["ts"] = event.timestamp_ms
        params["data"] = event.data
        params["headers"] = event_headers(first, event)
        params["id"] = event.event_id
    else:
        params["n"] = len(events)
        params["ts"] = [e.timestamp_ms for e in events]
        params["data"] = [e.data for e in events]
        params["headers"] = (
            [event_headers(0, e) for e in events]
            if expected is None
            else events_headers(first, events)
        )
        params["id"] = [e.event_id for e in events]
    return params
