"""The ``EventStore`` port: versioned streams over a partitioned log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import attrs

from framework.store.events import Appended, NewEvent, StoredEvent
from framework.store.position import Position


@attrs.frozen(kw_only=True)
class StreamAppend:
    """One stream's part of a multi-stream append."""

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int | None


class Sequencer(Protocol):
    """An external source of increasing numbers (a PostgreSQL sequence, say): an
    event store stamps events above the number it hands out, so that the stamps
    order all events, in every partition, as the sequencer handed them out."""

    def next_stamp(self) -> int:
        """A number larger than every number handed out before."""
        ...

    def close(self) -> None: ...


class EventStore(Protocol):
    """Streams of versioned events; a stream lives in the partition of its id.

    Implemented over any ``Log`` by ``LogEventStore`` and natively by backends that
    can do better (PostgreSQL checks expected versions inside its insert). Every
    implementation passes ``framework.testing.store_contract``.
    """

    @property
    def topic(self) -> str: ...

    @property
    def partitions(self) -> int: ...

    @property
    def atomic_multi_stream(self) -> bool:
        """Whether ``append_streams`` writes all streams or none (one transaction)."""
        ...

    def partition_of(self, stream_id: str) -> int: ...

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> Appended:
        """Append atomically as versions ``expected_version + 1 ...``.

        ``ConcurrencyError`` (nothing written) if the stream is at another version;
        a retry of events already stored there is a no-op returning the originals.
        """
        ...

    def append_streams(self, appends: Sequence[StreamAppend]) -> list[Appended]:
        """Append to several streams: each atomically, and all together where
        ``atomic_multi_stream``; otherwise in order, stopping at the first error."""
        ...

    def stream_version(self, stream_id: str) -> int: ...

    def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredEvent]: ...

    def read_stream_data(
        self, stream_id: str, *, to_version: int | None = None
    ) -> list[tuple[str, int, bytes, int]]:
        """What replaying an aggregate needs and no more: each event's (name,
        schema version, data, stamp) for versions ``1..to_version``, in order."""
        ...

    def read_partition(
        self, partition: int, from_offset: int = 0, max_events: int = 1000
    ) -> list[StoredEvent]: ...

    def iter_partition(
        self, partition: int, from_offset: int = 0, chunk: int = 5000
    ) -> Iterator[StoredEvent]: ...

    def end_position(self) -> Position: ...

    def close(self) -> None: ...
