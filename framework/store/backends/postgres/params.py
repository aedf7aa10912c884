"""The parameters of the store's append statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from framework.log.backends.postgres.headers import encode_user_headers
from framework.store.events import NewEvent


def head_params(
    topic_id: int, stream_id: str, expected: int | None, partition: int
) -> dict[str, Any]:
    """The parameters that lock a stream's partition head."""
    return {
        "topic": topic_id,
        "partition": partition,
        "expected": expected,
        "stream": stream_id,
    }


def append_params(
    topic_id: int,
    stream_id: str,
    events: Sequence[NewEvent],
    expected: int | None,
    partition: int,
) -> dict[str, Any]:
    """The parameters of an append statement (below ``COPY_FROM`` events)."""
    params = head_params(topic_id, stream_id, expected, partition)
    if len(events) == 1:
        # Scalars, not arrays: dumping eight one-element arrays costs more
        # than the insert on the fast path of single-event saves.
        event = events[0]
        params["ts"] = event.timestamp_ms
        params["data"] = event.data
        params["headers"] = encode_user_headers(event.headers)
        params["id"] = event.event_id
        params["name"] = event.name
        params["version"] = event.version
        params["corr"] = event.correlation_id
        params["caus"] = event.causation_id
    else:
        params["n"] = len(events)
        params["ts"] = [e.timestamp_ms for e in events]
        params["data"] = [e.data for e in events]
        params["headers"] = [encode_user_headers(e.headers) for e in events]
        params["id"] = [e.event_id for e in events]
        params["name"] = [e.name for e in events]
        params["version"] = [e.version for e in events]
        params["corr"] = [e.correlation_id for e in events]
        params["caus"] = [e.causation_id for e in events]
    return params
