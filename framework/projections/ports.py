"""What a projection writes to and queries read from (read-model stores), and what
its runners need to share partitions (consumer groups)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import attrs
import orjson

from framework.store.events import StoredEvent

#: A document: anything orjson writes (dicts, lists, str, int, float, bool, None).
Document = Any


class Documents(Protocol):
    """Read access to one document table of a projection."""

    def get(self, key: str) -> Document | None: ...

    def items(self) -> Iterator[tuple[str, Document]]:
        """Every (key, document), in key order."""
        ...

    def count(self) -> int: ...


class WritableDocuments(Documents, Protocol):
    """A table inside a projection's transaction: reads see the writes before them."""

    def put(self, key: str, document: Document) -> None: ...

    def delete(self, key: str) -> None: ...


@attrs.frozen(kw_only=True)
class ParkedEvent:
    """An event whose handler kept failing, set aside with its error (dead letter)."""

    partition: int
    offset: int
    stream_id: str
    name: str
    error: str
    attempts: int
    parked_at_ms: int

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ParkedEvent:
        """From a row of (partition, offset, stream id, name, error, attempts,
        parked at), the column order every store selects them in."""
        return cls(
            partition=row[0],
            offset=row[1],
            stream_id=row[2],
            name=row[3],
            error=row[4],
            attempts=row[5],
            parked_at_ms=row[6],
        )

    def row(self) -> tuple[int, int, str, str, str, int, int]:
        """The row ``from_row`` reads."""
        return (
            self.partition,
            self.offset,
            self.stream_id,
            self.name,
            self.error,
            self.attempts,
            self.parked_at_ms,
        )


@attrs.frozen(kw_only=True)
class ProjectionFailure:
    """Why a projection stopped on a partition: the event its handler kept failing
    on, and the handler's error. Stored with the partition's checkpoint, so every
    process sees it; cleared when the partition next moves on (the event applied,
    after a fix), and by a reset or a rebuild."""

    projection: str
    topic: str
    partition: int
    offset: int
    stream_id: str
    stream_version: int
    event_name: str
    #: The handler's error, as ``repr`` shows it.
    error: str
    attempts: int
    failed_at_ms: int

    @property
    def where(self) -> str:
        """``events/0 offset 4 (stream 'a' version 2, ledger.FundsDeposited)``."""
        return (
            f"{self.topic}/{self.partition} offset {self.offset} (stream "
            f"{self.stream_id!r} version {self.stream_version}, {self.event_name})"
        )

    @property
    def failed_at(self) -> str:
        """When, in UTC, to the second (ISO 8601)."""
        moment = datetime.datetime.fromtimestamp(
            self.failed_at_ms / 1000, tz=datetime.UTC
        )
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def to_json(self) -> bytes:
        return orjson.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, data: bytes | str) -> ProjectionFailure:
        return cls(**orjson.loads(data))


class Transaction(Protocol):
    """One atomic change of a read model and its checkpoint."""

    def table(self, name: str) -> WritableDocuments: ...

    def checkpoint(self, partition: int) -> int:
        """The committed checkpoint of ``partition`` as this transaction sees it
        (-1: nothing applied). Runners compare it with what they read before, so
        that two members never both apply a batch."""
        ...

    def advance(self, partition: int, offset: int) -> None:
        """Record that the projection has applied ``offset`` of ``partition``."""
        ...

    def park(self, parked: ParkedEvent) -> None:
        """Set an event aside as a dead letter, atomically with the rest."""
        ...

    def unpark(self, partition: int, offset: int) -> None:
        """Remove a dead letter (it was applied), atomically with the rest."""
        ...


@attrs.frozen(kw_only=True)
class ProjectionState:
    """A projection's row in its read-model store."""

    name: str
    version: int
    #: The generation queries read.
    generation: int
    #: A generation being rebuilt beside it, or ``None``.
    building: int | None


class ReadModelStore(Protocol):
    """Where projections keep documents and checkpoints, changed together atomically.

    Implemented by ``SQLiteReadModelStore`` (embedded), ``MemoryReadModelStore``
    (tests) and, with the PostgreSQL store, tables there.
    """

    def ensure(
        self, name: str, version: int, tables: tuple[str, ...]
    ) -> ProjectionState:
        """Create the projection's tables if missing; return its state."""
        ...

    def state(self, name: str) -> ProjectionState | None: ...

    def checkpoints(self, name: str, generation: int) -> dict[int, int]:
        """Partition -> offset of the last applied event (absent: nothing applied)."""
        ...

    def transaction(
        self, name: str, generation: int
    ) -> AbstractContextManager[Transaction]:
        """Documents and checkpoints written in the block commit together, or not at
        all if the block raises."""
        ...

    def table(self, name: str, table: str) -> Documents:
        """Read access to the generation that queries see."""
        ...

    def begin_rebuild(self, name: str, tables: tuple[str, ...]) -> int:
        """Start (or resume) a rebuild into a fresh generation; return it."""
        ...

    def finish_rebuild(self, name: str, generation: int, version: int) -> None:
        """Swap queries to ``generation`` atomically and drop the old one."""
        ...

    def reset(self, name: str, tables: tuple[str, ...], version: int) -> None:
        """Empty the read model and its checkpoints (it will replay from the start)."""
        ...

    def park(self, name: str, generation: int, parked: ParkedEvent) -> None: ...

    def parked(self, name: str, generation: int) -> list[ParkedEvent]: ...

    def record_failure(
        self, name: str, generation: int, failure: ProjectionFailure
    ) -> None:
        """Record that the projection stopped on ``failure.partition`` (replacing
        what was recorded there). The checkpoint does not move; the next
        transaction that advances the partition clears the failure, as do
        ``reset`` and the swap of a rebuild (which drops the generation)."""
        ...

    def failures(self, name: str, generation: int) -> list[ProjectionFailure]:
        """The recorded failures of a generation, by partition: those still
        ahead of their partition's checkpoint (one recorded by a member that
        lost a race to another, which applied the event, is not a failure)."""
        ...

    def projection_names(self) -> list[str]:
        """Every projection with a read model here, sorted."""
        ...

    def unpark(
        self, name: str, generation: int, partition: int, offset: int
    ) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class AnnouncingReadModelStore(Protocol):
    """A read-model store that hears committed checkpoints from every process
    (PostgreSQL: LISTEN/NOTIFY), so that pull queries wait instead of polling."""

    def wait_for_checkpoints(
        self, name: str, generation: int, position: Mapping[int, int], timeout: float
    ) -> bool:
        """Block until checkpoints announced for ``name``'s ``generation`` cover
        ``position``; ``False`` after ``timeout``. A hint: check the store."""
        ...


class BatchSettings(Protocol):
    """The part of a runner's settings an inline read-model store reads."""

    @property
    def batch_size(self) -> int: ...


class InlineRunner(Protocol):
    """What an inline read-model store needs of the runner whose projection it
    applies inside appends (``ProjectionRunner``), so that stores need not import
    the runner."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> BatchSettings: ...

    def apply_within(
        self, transaction: Transaction, batch: Sequence[StoredEvent], parked: set[str]
    ) -> None:
        """Apply ``batch`` in ``transaction`` and advance its checkpoint there."""
        ...

    def publish(self, checkpoints: Mapping[int, int]) -> None:
        """Announce committed checkpoints to the runner's in-process waiters."""
        ...


@runtime_checkable
class InlineReadModelStore(Protocol):
    """A read-model store that can apply a projection inside an event store's
    appends (PostgreSQL, when both are in one database)."""

    def attach_inline(self, store: object, runner: InlineRunner) -> bool:
        """Run ``runner``'s projection inside every append of ``store`` from now
        on, if the two can share a transaction; whether they can."""
        ...


class ConsumerGroup(Protocol):
    """One member's view of a consumer group (``FileGroup``, ``PostgresGroup``)."""

    member_id: str

    def join(self) -> None: ...

    @property
    def owned(self) -> list[int]: ...

    def rebalance(self) -> tuple[list[int], list[int]]: ...

    def leave(self) -> None: ...


class AppendSignal(Protocol):
    """Tells an idle member that partitions may have new events (PostgreSQL:
    LISTEN on the store's channel), so that it need not poll."""

    def wait(self, timeout: float) -> list[int]:
        """Partitions that got events, as soon as any does; ``[]`` on timeout."""
        ...

    def close(self) -> None: ...
