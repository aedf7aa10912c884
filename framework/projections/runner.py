"""The projection runner: reads partitions from checkpoints, applies handlers, and
commits read-model changes with the new checkpoint in one transaction."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence

import attrs

from framework.errors import ConfigurationError, ProjectionError
from framework.projections.causal import CausalMerge
from framework.projections.errors import (
    InlineProjectionFailedError,
    ProjectionFailedError,
)
from framework.projections.ports import (
    ParkedEvent,
    ProjectionFailure,
    ReadModelStore,
    Transaction,
)
from framework.projections.positions import PositionBoard
from framework.projections.projection import Projection
from framework.retry import RetryPolicy, compute_backoff
from framework.schema.envelopes import EnvelopeDecoder
from framework.schema.ports import EventCodec
from framework.store.events import StoredEvent
from framework.store.ports import EventStore
from framework.store.position import Position

logger = logging.getLogger("framework.projections")


@attrs.frozen(kw_only=True)
class RunnerSettings:
    """``batch_size`` events per transaction; the idle poll interval grows from
    ``poll_interval`` to ``max_poll_interval`` while nothing arrives; ``retry`` bounds
    how often a failing handler is tried before the failure policy applies."""

    batch_size: int = 1000
    poll_interval: float = 0.001
    max_poll_interval: float = 0.05
    retry: RetryPolicy = attrs.field(
        factory=lambda: RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=1.0)
    )
    #: For ``order="causal"`` projections: how many events, and for how long the
    #: oldest, may wait for a partition that is not read on before the smallest
    #: is applied anyway (counted in ``ProjectionRunner.causal_out_of_order``).
    causal_window_events: int = 10_000
    causal_window_seconds: float = 5.0


class _Fenced(Exception):
    """Another member advanced the partition since this one read its checkpoint."""


class _HandlerFailed(Exception):
    def __init__(self, stored: StoredEvent, error: BaseException) -> None:
        super().__init__(str(error))
        self.stored = stored
        self.error = error


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ProjectionRunner:
    """Runs one projection over some partitions of the events topic.

    Exactly once: a batch's read-model changes and its checkpoint commit together,
    so a crash re-applies nothing and skips nothing. Order: events of a partition
    are applied in offset order, hence each stream in version order.
    """

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        projection: Projection,
        read_models: ReadModelStore,
        *,
        partitions: Iterable[int] | None = None,
        settings: RunnerSettings | None = None,
        board: PositionBoard | None = None,
        rebuilding: bool = False,
    ) -> None:
        self.store = store
        self.projection = projection
        self.read_models = read_models
        self.settings = settings or RunnerSettings()
        self.board = board
        self.rebuilding = rebuilding
        self.partitions = (
            sorted(partitions)
            if partitions is not None
            else list(range(store.partitions))
        )
        self._decoder = EnvelopeDecoder(codec, store.topic)
        self._lock = threading.Lock()
        state = read_models.ensure(
            projection.name, projection.version, projection.tables
        )
        if state.version != projection.version and not rebuilding:
            logger.warning(
                "projection %s is at version %d in its store but the code is version "
                "%d: rebuild it (python -m framework projections rebuild %s)",
                projection.name,
                state.version,
                projection.version,
                projection.name,
            )
        self._parked_streams: dict[int, set[str]] = {}
        #: Partitions this runner stopped on a failure: ``step`` leaves them
        #: alone until the failure is cleared from the store (a reset or a
        #: rebuild elsewhere) or the process starts again.
        self._stopped: dict[int, ProjectionFailure] = {}
        #: How many loops are running this runner (``run`` or an application's).
        self.running = 0
        self._causal = projection.order == "causal"
        if self._causal and self.partitions != list(range(store.partitions)):
            raise ConfigurationError(
                f"projection {projection.name!r} applies events in causal order, "
                "which needs every partition in one runner; it was given "
                f"{self.partitions} of {store.partitions}: run it outside a "
                "consumer group"
            )
        #: For causal order: the merge, the next offset to read per partition,
        #: and the generation and checkpoints it was started from.
        self._merge: CausalMerge[StoredEvent] | None = None
        self._read_from: dict[int, int] = {}
        self._merged_generation = -1
        self._merged_upto: dict[int, int] = {}

    @property
    def name(self) -> str:
        return self.projection.name

    def generation(self) -> int:
        """The generation this runner writes: the live one, or the one rebuilt."""
        state = self.read_models.state(self.name)
        if state is None:
            raise ProjectionError(f"projection {self.name!r} has no state")
        if self.rebuilding:
            if state.building is None:
                return self.read_models.begin_rebuild(self.name, self.projection.tables)
            return state.building
        return state.generation

    def checkpoints(self) -> dict[int, int]:
        return self.read_models.checkpoints(self.name, self.generation())

    def position(self) -> Position:
        return Position(self.checkpoints())

    # -- applying ----------------------------------------------------------------

    @property
    def causal_out_of_order(self) -> int:
        """For ``order="causal"``: events applied after an event with a larger
        stamp from another partition (the reordering window let them go)."""
        return self._merge.out_of_order if self._merge is not None else 0

    @property
    def stopped(self) -> dict[int, ProjectionFailure]:
        """The partitions this runner stopped on, with why."""
        return dict(self._stopped)

    def step(
        self, partitions: Sequence[int] | None = None, *, retry_stopped: bool = False
    ) -> int:
        """Apply at most one batch per partition; return how many events were read.

        A partition whose handler keeps failing (``failure="stop"``) raises
        ``ProjectionFailedError`` once; the failure is recorded in the read-model
        store, and later steps skip that partition (unless ``retry_stopped``)
        while the failure stays recorded.
        """
        with self._lock:
            generation = self.generation()
            if self._stopped:
                self._forget_cleared_failures(generation)
            checkpoints = self.read_models.checkpoints(self.name, generation)
            if self._causal:
                return self._step_causal(generation, checkpoints, retry_stopped)
            # Read only the partitions that moved: one look at the log's ends
            # (one query on PostgreSQL) instead of a read per partition, so an
            # idle poll costs the same with 64 partitions as with one.
            ends = self.store.end_position()
            total = 0
            for partition in partitions if partitions is not None else self.partitions:
                if partition in self._stopped and not retry_stopped:
                    continue
                start = checkpoints.get(partition, -1) + 1
                if ends.get(partition, -1) < start:
                    continue
                batch = self.store.read_partition(
                    partition, start, self.settings.batch_size
                )
                if batch:
                    self._apply(partition, batch, generation)
                    total += len(batch)
            return total

    def _step_causal(
        self, generation: int, checkpoints: Mapping[int, int], retry_stopped: bool
    ) -> int:
        """``step`` for ``order="causal"``: read on in every partition into the
        causal merge, and apply what it releases, a run of one partition's events
        per transaction. Returns the events read plus those applied."""
        merge = self._merge
        if (
            merge is None
            or generation != self._merged_generation
            or any(
                checkpoints.get(p, -1) != self._merged_upto.get(p, -1)
                for p in self.partitions
            )
        ):
            # First step, a rebuild, or another runner moved a checkpoint: start
            # again from the checkpoints (the buffered events are read again).
            merge = self._merge = CausalMerge(
                self.partitions,
                window_events=self.settings.causal_window_events,
                window_seconds=self.settings.causal_window_seconds,
            )
            self._merged_generation = generation
            self._merged_upto = {p: checkpoints.get(p, -1) for p in self.partitions}
            self._read_from = {p: checkpoints.get(p, -1) + 1 for p in self.partitions}
        size = self.settings.batch_size
        ends = self.store.end_position()
        read = 0
        for partition in self.partitions:
            if partition in self._stopped and not retry_stopped:
                continue
            start = self._read_from[partition]
            batch = (
                self.store.read_partition(partition, start, size)
                if ends.get(partition, -1) >= start
                else []
            )
            if batch:
                merge.offer(partition, [(e.stamp, e) for e in batch])
                self._read_from[partition] = batch[-1].offset + 1
                read += len(batch)
            if len(batch) < size:
                merge.read_to_end(partition)
        forced = merge.forced
        released = merge.release()
        if merge.forced > forced:
            logger.warning(
                "projection %s: the causal window let %d events go before every "
                "partition had moved past them (%d applied out of order so far)",
                self.name,
                merge.forced - forced,
                merge.out_of_order,
            )
        applied = 0
        try:
            size = max(1, self.settings.batch_size)
            for start in range(0, len(released), size):
                chunk = released[start : start + size]
                self._apply_merged(chunk, generation)
                for partition, stored in chunk:
                    self._merged_upto[partition] = stored.offset
                applied += len(chunk)
        except BaseException:
            self._merge = None  # read again from the checkpoints
            raise
        return read + applied

    def catch_up(self, partitions: Sequence[int] | None = None) -> int:
        """Apply everything up to the log's end (as it moves); return the count."""
        total = 0
        while True:
            applied = self.step(partitions)
            if not applied:
                return total
            total += applied

    def catch_up_to(self, position: Mapping[int, int]) -> None:
        """Apply at least up to ``position`` (inline consistency). A partition
        stopped on a failure is tried again (with the retry policy) each time."""
        partitions = [p for p in position if p in self.partitions]
        while True:
            checkpoints = self.checkpoints()
            behind = [p for p in partitions if checkpoints.get(p, -1) < position[p]]
            if not behind:
                return
            if not self.step(behind, retry_stopped=True):
                return

    def _forget_cleared_failures(self, generation: int) -> None:
        """Drop stopped partitions whose failure is no longer recorded (a reset,
        or another member moved past it)."""
        recorded = {
            f.partition: f.offset
            for f in self.read_models.failures(self.name, generation)
        }
        for partition, failure in list(self._stopped.items()):
            if recorded.get(partition) != failure.offset:
                del self._stopped[partition]

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set, backing off while idle. A partition that
        stops on a failure is logged and left alone; the others go on."""
        interval = self.settings.poll_interval
        self.running += 1
        try:
            while not stop.is_set():
                if self.step_logging_failures():
                    interval = self.settings.poll_interval
                    continue
                stop.wait(interval)
                interval = min(interval * 2, self.settings.max_poll_interval)
        finally:
            self.running -= 1

    def step_logging_failures(self, partitions: Sequence[int] | None = None) -> int:
        """``step`` for loops that keep going: a partition that stops on a
        failure is logged (its failure is recorded in the store) and counts as
        progress, so that the loop looks at the other partitions at once."""
        try:
            return self.step(partitions)
        except ProjectionFailedError as exc:
            logger.error("%s", exc)
            return 1

    def _apply(self, partition: int, batch: list[StoredEvent], generation: int) -> None:
        parked = self._parked(partition, generation)
        try:
            with self.read_models.transaction(self.name, generation) as transaction:
                self._fence(transaction, partition, batch[0].offset)
                for stored in batch:
                    self._apply_one(transaction, stored, parked)
                transaction.advance(partition, batch[-1].offset)
        except _Fenced:
            return
        except _HandlerFailed:
            # Roll back to the batch's start and go one event at a time, so that
            # everything before the failing event is kept.
            for stored in batch:
                try:
                    self._apply_alone(partition, stored, generation, parked)
                except _Fenced:
                    return
        if not self.rebuilding:
            self.publish({partition: batch[-1].offset})

    def _apply_merged(
        self, merged: list[tuple[int, StoredEvent]], generation: int
    ) -> None:
        """Apply events of several partitions, in the order given, in one
        transaction that advances each partition's checkpoint (causal order);
        on a failing handler, one event per transaction, as ``_apply`` does."""
        lasts: dict[int, int] = {}
        firsts: dict[int, int] = {}
        for partition, stored in merged:
            firsts.setdefault(partition, stored.offset)
            lasts[partition] = stored.offset
        parked = {p: self._parked(p, generation) for p in lasts}
        try:
            with self.read_models.transaction(self.name, generation) as transaction:
                for partition, first in firsts.items():
                    self._fence(transaction, partition, first)
                for partition, stored in merged:
                    self._apply_one(transaction, stored, parked[partition])
                for partition, last in lasts.items():
                    transaction.advance(partition, last)
        except _Fenced:
            return
        except _HandlerFailed:
            for partition, stored in merged:
                try:
                    self._apply_alone(partition, stored, generation, parked[partition])
                except _Fenced:
                    return
        if not self.rebuilding:
            self.publish(lasts)

    def publish(self, checkpoints: Mapping[int, int]) -> None:
        """Announce committed ``checkpoints`` on the runner's board, if it has one
        (push consistency for the queries of this process)."""
        if self.board is not None:
            self.board.publish(self.name, checkpoints)

    def apply_within(
        self,
        transaction: Transaction,
        batch: Sequence[StoredEvent],
        parked: set[str],
    ) -> None:
        """Apply ``batch`` (events of one partition that directly follow its
        checkpoint, in order) in the caller's ``transaction`` and advance the
        checkpoint there; the caller commits.

        For inline projections inside an append: nothing is retried or parked
        here. A handler that fails raises ``ProjectionError``, and the caller's
        whole transaction (the append) must then roll back.
        """
        for stored in batch:
            try:
                self._apply_one(transaction, stored, parked)
            except _HandlerFailed as failed:
                raise InlineProjectionFailedError(
                    self._failure(stored, failed.error, 1), saved=False
                ) from failed.error
        transaction.advance(batch[-1].partition, batch[-1].offset)

    def _fence(self, transaction: Transaction, partition: int, first: int) -> None:
        committed = transaction.checkpoint(partition)
        if committed != first - 1:
            # Another member applied this partition meanwhile (a rebalance moved
            # it): applying the batch again would count its events twice.
            logger.info(
                "projection %s: partition %d moved on to %d meanwhile; skipping",
                self.name,
                partition,
                committed,
            )
            raise _Fenced

    def _apply_one(
        self, transaction: Transaction, stored: StoredEvent, parked: set[str]
    ) -> None:
        handler = self.projection.handler_for(stored.name, stored.version)
        if handler is None:
            if stored.name[:1] == "$":
                return  # the framework's own (a policy runner's checkpoint)
            if self.projection.strict:
                raise ProjectionError(
                    f"projection {self.name!r} is strict and has no handler for "
                    f"{stored.name!r} version {stored.version} at "
                    f"{self.store.topic}/{stored.partition} offset {stored.offset}"
                )
            return
        if stored.stream_id in parked:
            transaction.park(self._parked_event(stored, "waits behind a parked event"))
            return
        envelope = self._decoder.envelope(stored)
        try:
            handler(self.projection, envelope, transaction)
        except Exception as exc:
            raise _HandlerFailed(stored, exc) from exc

    def _apply_alone(
        self, partition: int, stored: StoredEvent, generation: int, parked: set[str]
    ) -> None:
        policy = self.settings.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.read_models.transaction(self.name, generation) as transaction:
                    self._fence(transaction, partition, stored.offset)
                    self._apply_one(transaction, stored, parked)
                    transaction.advance(partition, stored.offset)
                return
            except _HandlerFailed as failed:
                if attempt < policy.max_attempts:
                    time.sleep(compute_backoff(attempt, policy))
                    continue
                failure = self._failure(stored, failed.error, attempt)
                if self.projection.failure == "stop":
                    # Recorded where every process sees it (queries, the status
                    # command), before the caller hears of it.
                    self.read_models.record_failure(self.name, generation, failure)
                    self._stopped[partition] = failure
                    raise ProjectionFailedError.stopped(failure) from failed.error
                logger.error(
                    "projection %s parked %s after %d tries: %r",
                    self.name,
                    failure.where,
                    attempt,
                    failed.error,
                )
                with self.read_models.transaction(self.name, generation) as transaction:
                    self._fence(transaction, partition, stored.offset)
                    transaction.park(
                        self._parked_event(stored, repr(failed.error), attempt)
                    )
                    transaction.advance(partition, stored.offset)
                parked.add(stored.stream_id)
                return

    def _failure(
        self, stored: StoredEvent, error: BaseException, attempts: int
    ) -> ProjectionFailure:
        return ProjectionFailure(
            projection=self.name,
            topic=self.store.topic,
            partition=stored.partition,
            offset=stored.offset,
            stream_id=stored.stream_id,
            stream_version=stored.stream_version,
            event_name=stored.name,
            error=repr(error),
            attempts=attempts,
            failed_at_ms=now_ms(),
        )

    def _parked_event(
        self, stored: StoredEvent, error: str, attempts: int = 0
    ) -> ParkedEvent:
        return ParkedEvent(
            partition=stored.partition,
            offset=stored.offset,
            stream_id=stored.stream_id,
            name=stored.name,
            error=error,
            attempts=attempts,
            parked_at_ms=now_ms(),
        )

    def _parked(self, partition: int, generation: int) -> set[str]:
        found = self._parked_streams.get(partition)
        if found is None:
            found = self._parked_streams[partition] = {
                p.stream_id
                for p in self.read_models.parked(self.name, generation)
                if p.partition == partition
            }
        return found

    # -- dead letters ------------------------------------------------------------

    def retry_parked(self) -> tuple[int, int]:
        """Apply parked events again, in order; return (applied, still parked).

        A stream's later parked events are tried only once its earlier ones apply.
        """
        with self._lock:
            generation = self.generation()
            applied = 0
            blocked: set[str] = set()
            remaining = 0
            for parked in self.read_models.parked(self.name, generation):
                if parked.stream_id in blocked:
                    remaining += 1
                    continue
                (stored,) = self.store.read_partition(
                    parked.partition, parked.offset, 1
                )
                try:
                    with self.read_models.transaction(
                        self.name, generation
                    ) as transaction:
                        self._apply_one(transaction, stored, set())
                        transaction.unpark(parked.partition, parked.offset)
                except _HandlerFailed as failed:
                    blocked.add(parked.stream_id)
                    remaining += 1
                    self.read_models.park(
                        self.name,
                        generation,
                        self._parked_event(
                            stored, repr(failed.error), parked.attempts + 1
                        ),
                    )
                    continue
                applied += 1
            self._parked_streams.clear()
            return applied, remaining
