"""The parameters of the store's append statements, and the headers column of an
event row: the log's header encoding of the records ``framework.store.records``
lays out (the packed ``$m`` metadata, then the user headers)."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from framework.log.backends.postgres.headers import encode_user_headers
from framework.store.backends.postgres.rows import event_headers_prefix
from framework.store.events import NewEvent, least_first_stamp
from framework.store.records import meta_struct, pack_meta

_NOTHING = struct.Struct("")


def event_headers(stream_version: int, event: NewEvent, stamp: int = 0) -> bytes:
    """The headers column of ``event`` at ``stream_version``; ``ValueError``
    (before anything is written) if a field does not fit the ``$m`` header. The
    append statements write the stamp over ``stamp`` (it is decided under the
    partition's head row)."""
    meta = pack_meta(stream_version, event, stamp)
    framed = event_headers_prefix(len(meta)) + meta
    if event.headers:
        return framed + _user_headers(event.headers)
    return framed


def events_headers(
    first_version: int, events: Sequence[NewEvent], first_stamp: int = 0
) -> list[bytes]:
    """``event_headers`` of successive versions from ``first_version``, with what
    the events share (the name, the correlation and causation ids of one command)
    encoded once, as ``records.to_records`` does: a 100-event save builds a
    hundred of these."""
    out: list[bytes] = []
    add = out.append
    texts: tuple[str, str, str] | None = None
    pack = _NOTHING.pack  # replaced below before use
    prefix = b""
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
            name_length = len(name)
            correlation_length = len(correlation)
            causation_length = len(causation)
            packer = meta_struct(name_length, correlation_length, causation_length)
            pack = packer.pack
            prefix = event_headers_prefix(packer.size)
        try:
            framed = prefix + pack(
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
            )
        except struct.error:
            pack_meta(version, event, stamp)  # raises the ValueError naming the field
            raise
        add(framed + _user_headers(event.headers) if event.headers else framed)
    return out


def _user_headers(headers: Mapping[str, str]) -> bytes:
    encoded = encode_user_headers(headers)
    assert encoded is not None  # not empty
    return encoded


def head_params(
    topic_id: int, stream_id: str, expected: int | None, partition: int
) -> dict[str, Any]:
    """The parameters that lock a stream's partition head."""
    return {
        "topic": topic_id,
        "partition": partition,
        "expected": expected,
        "key": stream_id.encode(),
        "stamp": 0,
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
    and writes them over the ones packed here (from 0)."""
    params = head_params(topic_id, stream_id, expected, partition)
    first = 0 if expected is None else expected + 1
    # The least first stamp: the statement raises it above the partition's last.
    params["stamp"] = least_first_stamp(events)
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
        params["headers"] = events_headers(first, events)
        params["id"] = [e.event_id for e in events]
    return params
