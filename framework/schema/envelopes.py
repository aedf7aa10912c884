"""Stored events (bytes and metadata) to ``EventEnvelope``s holding domain events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent
from framework.schema.ports import Decoder, EventCodec

_new_tuple = tuple.__new__


class StoredLike(Protocol):
    """The fields of ``framework.store.StoredEvent`` that decoding reads; like it, a
    tuple whose fields are ``EventEnvelope``'s without ``event``, with ``data``
    after ``version`` (a test holds the two orders together)."""

    def __iter__(self) -> Iterator[Any]: ...

    @property
    def event_id(self) -> uuid.UUID: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def stream_version(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def data(self) -> bytes: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def correlation_id(self) -> str: ...
    @property
    def causation_id(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class EnvelopeDecoder:
    """Decodes stored events, caching one decoder per (name, version).

    Not thread-safe (the cache is a plain dict): make one per reading thread.
    ``UnknownEventError`` names the topic, partition, offset, stream and version.
    """

    def __init__(self, codec: EventCodec, topic: str) -> None:
        self._codec = codec
        self._topic = topic
        self._cache: dict[tuple[str, int], Decoder] = {}

    def decoder_for(self, stored: StoredLike) -> Decoder:
        decoder = self._cache.get((stored.name, stored.version))
        if decoder is None:
            decoder = self._cache[(stored.name, stored.version)] = self._codec.decoder(
                stored.name,
                stored.version,
                where=(
                    f"{self._topic}/{stored.partition} offset {stored.offset} "
                    f"(stream {stored.stream_id!r} version "
                    f"{stored.stream_version})"
                ),
            )
        return decoder

    def event(self, stored: StoredLike) -> DomainEvent:
        return self.decoder_for(stored)(stored.data)

    def envelope(self, stored: StoredLike) -> EventEnvelope[DomainEvent]:
        # EventEnvelope's fields are the stored event's with the decoded event in
        # front and the bytes left out. Unpacking once and building the tuple
        # directly skips attribute lookups, slices and the named tuple's
        # Python-level constructor: this runs once per replayed event.
        (event_id, stream, version, name, ev_version, data, ts, corr, caus, headers,
         partition, offset) = stored  # fmt: skip
        decoder = self._cache.get((name, ev_version))
        if decoder is None:
            decoder = self.decoder_for(stored)
        return _new_tuple(
            EventEnvelope,
            (
                decoder(data),
                event_id,
                stream,
                version,
                name,
                ev_version,
                ts,
                corr,
                caus,
                headers,
                partition,
                offset,
            ),
        )
