"""Stored events (bytes and metadata) to ``EventEnvelope``s holding domain events."""

from __future__ import annotations

from collections.abc import Callable

from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent
from framework.schema.envelope_layout import StoredLike, envelope_reader
from framework.schema.ports import Decoder, EventCodec

__all__ = ["EnvelopeDecoder", "StoredLike"]


class EnvelopeDecoder:
    """Decodes stored events, caching one decoder per (name, version).

    Not thread-safe (the cache is a plain dict): make one per reading thread.
    ``UnknownEventError`` names the topic, partition, offset, stream and version.
    ``envelope(stored)`` gives the stored event's ``EventEnvelope``.
    """

    envelope: Callable[[StoredLike], EventEnvelope[DomainEvent]]

    def __init__(self, codec: EventCodec, topic: str) -> None:
        self._codec = codec
        self._topic = topic
        self._cache: dict[tuple[str, int], Decoder] = {}
        # A closure rather than a method: it runs once per replayed event, and
        # the layout module is the one place that builds envelopes by position.
        self.envelope = envelope_reader(self._cache, self.decoder_for)

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
