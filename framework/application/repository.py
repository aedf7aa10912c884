"""``Repository``: loads aggregates from their event streams and saves their
pending events, the one place aggregates meet the event store."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from framework.domain.aggregate import Aggregate
from framework.domain.context import current_context
from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent
from framework.errors import AggregateNotFoundError, StoreInputError, UnknownEventError
from framework.schema.envelope_layout import envelope_at
from framework.schema.envelopes import EnvelopeDecoder
from framework.schema.ports import EventCodec
from framework.store.events import Appended, NewEvent
from framework.store.ports import EventStore, StreamAppend
from framework.store.position import Position

A = TypeVar("A", bound=Aggregate)

Envelope = EventEnvelope[DomainEvent]

#: An aggregate, the pending events a save takes from it, and their encoding.
_Batch = tuple[Aggregate, list[Envelope], list[NewEvent]]


class Repository:
    """Loads aggregates by replaying their streams and saves their pending events
    with the version each was loaded at as the expected version.

    It knows the event store and the codec, nothing of projections: what runs
    after an append is the application's. Snapshots plug in here: ``load`` will
    start from the latest snapshot at or below the version asked for and replay
    only the events after it, and ``save`` take one when a policy says so.
    """

    def __init__(self, store: EventStore, codec: EventCodec) -> None:
        self.store = store
        self.codec = codec

    # -- loading ---------------------------------------------------------------

    def load(self, cls: type[A], aggregate_id: str, version: int | None = None) -> A:
        """The aggregate replayed from its events, up to ``version`` if given (time
        travel). Raises ``AggregateNotFoundError`` (a ``LookupError``) if it has no
        events, or fewer than ``version``; ``UnknownEventError`` if an event's class
        is not registered; ``StoreInputError`` (a ``ValueError``) for a version
        below 1."""
        if version is not None and (type(version) is not int or version < 1):
            raise StoreInputError(
                "version",
                f"got {version!r}; an aggregate's versions count from 1 (None loads "
                "the latest)",
                stream_id=aggregate_id,
                appending=False,
            )
        rows = self.store.read_stream_data(aggregate_id, to_version=version)
        if not rows:
            raise AggregateNotFoundError(cls.__qualname__, aggregate_id)
        if version is not None and len(rows) < version:
            raise AggregateNotFoundError(
                cls.__qualname__,
                aggregate_id,
                f" at version {version} (it has {len(rows)} events)",
            )
        decoders: dict[tuple[str, int], Callable[[bytes], DomainEvent]] = {}
        events = []
        for stream_version, (name, event_version, data, _) in enumerate(rows, 1):
            decode = decoders.get((name, event_version))
            if decode is None:
                decode = decoders[name, event_version] = self._stream_decoder(
                    aggregate_id, stream_version, name, event_version
                )
            events.append(decode(data))
        aggregate = cls._replay(aggregate_id, events)
        # A stream's stamps grow with its versions: the last is the largest.
        aggregate._stamp = rows[-1][3]
        return aggregate

    def _stream_decoder(
        self, stream_id: str, stream_version: int, name: str, event_version: int
    ) -> Callable[[bytes], DomainEvent]:
        try:
            return self.codec.decoder(
                name,
                event_version,
                where=f"stream {stream_id!r} version {stream_version}",
            )
        except UnknownEventError:
            # Rare: read the event in full, so the error names where it is stored.
            stored = self.store.read_stream(
                stream_id, from_version=stream_version, to_version=stream_version
            )
            EnvelopeDecoder(self.codec, self.store.topic).decoder_for(stored[0])
            raise

    # -- saving ----------------------------------------------------------------

    def save(self, aggregates: Sequence[Aggregate]) -> Position:
        """Append every aggregate's pending events, atomically per aggregate.

        All events are encoded before anything is written. Returns the position of
        what was written (a read-your-writes token). Raises ``ConcurrencyError`` if
        an aggregate changed since it was loaded: the aggregates before it are
        saved, it and those after it keep their pending events.
        """
        if len(aggregates) != 1:
            return self.save_all(aggregates, [], envelopes=False)[0]
        # The usual save, one aggregate. One stream's append is atomic in every
        # store, so the lists ``save_all`` keeps to tell several aggregates apart
        # have nothing to do; skipping them is about a fifth of an in-memory
        # ``save_1``. The steps are the same helpers'.
        aggregate, pending, encoded = self._batch(aggregates[0], _floor(aggregates))
        if not encoded:
            return Position()
        aggregate.collect_events()
        try:
            appended = self.store.append(
                aggregate.id, encoded, _expected_version(aggregate, pending)
            )
        except BaseException:
            _restore([(aggregate, pending, encoded)])
            raise
        return Position({appended.partition: appended.last_offset})

    def save_all(
        self,
        aggregates: Sequence[Aggregate],
        written: list[str],
        *,
        envelopes: bool = True,
        also: Sequence[StreamAppend] = (),
    ) -> tuple[Position, list[Envelope]]:
        """``save`` in order; ``written`` collects the stream ids appended so far,
        so that a caller can tell whether a failure left part of the work stored.
        With ``envelopes``, also the saved events as stored (with their partition
        and offset). ``also`` are appended in the same atomic append (a policy
        runner's checkpoint); their results are not returned."""
        # Encode everything before taking any pending event, so that an encoding
        # error leaves every aggregate as it was and writes nothing.
        floor = _floor(aggregates)
        batches = [self._batch(aggregate, floor) for aggregate in aggregates]
        for aggregate, _, _ in batches:
            aggregate.collect_events()
        offsets: dict[int, int] = {}
        saved: list[Envelope] = []
        todo = [batch for batch in batches if batch[1]]
        results: list[Appended] = []
        try:
            # One call, all or nothing: every store writes the streams of a save
            # together (``EventStore.append_streams``).
            appends = [
                StreamAppend(
                    stream_id=aggregate.id,
                    events=encoded,
                    expected_version=_expected_version(aggregate, pending),
                )
                for aggregate, pending, encoded in todo
            ]
            if appends or also:
                results = self.store.append_streams([*appends, *also])[: len(todo)]
        except BaseException:
            _restore(todo[len(results) :])
            written.extend(a.id for a, _, _ in todo[: len(results)])
            raise
        written.extend(a.id for a, _, _ in todo)
        for (_, pending, _), appended in zip(todo, results, strict=True):
            offsets[appended.partition] = appended.last_offset
            if envelopes:
                partition = appended.partition
                stamp = appended.first_stamp
                first = appended.first_offset
                saved.extend(
                    # The stored copy: the same fields with stamp, partition and
                    # offset (a stream's events are stamped one after another).
                    envelope_at(e, stamp + i, partition, first + i)
                    for i, e in enumerate(pending)
                )
        return Position(offsets), saved

    def _batch(self, aggregate: Aggregate, floor: int) -> _Batch:
        """The aggregate's pending events, encoded, each to be stamped above
        ``floor``; they stay pending until the caller takes them, so that an
        encoding error changes nothing."""
        pending = list(aggregate.pending_events)
        return aggregate, pending, [self._encode(e, floor + 1) for e in pending]

    def _encode(self, envelope: Envelope, stamp: int) -> NewEvent:
        # Positional, in NewEvent's field order: once per saved event.
        return NewEvent(
            envelope.event_id,
            envelope.name,
            envelope.version,
            self.codec.encode(envelope.event),
            envelope.timestamp_ms,
            envelope.correlation_id,
            envelope.causation_id,
            envelope.headers,
            stamp,
        )


def _floor(aggregates: Sequence[Aggregate]) -> int:
    """The largest Lamport stamp the events about to be saved depend on: those
    of the aggregates saved together (one command loaded them all) and of the
    event that caused the command, if any."""
    context = current_context()
    floor = 0 if context is None else context.stamp
    for aggregate in aggregates:
        floor = max(floor, aggregate._stamp)
    return floor


def _expected_version(aggregate: Aggregate, pending: list[Envelope]) -> int:
    """The version the stream had when the aggregate was loaded: its version
    before the events it is about to save."""
    return aggregate.version - len(pending)


def _restore(batches: Sequence[_Batch]) -> None:
    """Give the aggregates of batches that were not written their events back."""
    for aggregate, pending, _ in batches:
        aggregate._restore_pending(pending)
