"""Reading a projection with the consistency the caller asks for: pull (wait until
it covers a position), or hybrid (answer now and say how far behind it is)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

import attrs

from framework.errors import ProjectionError
from framework.projections.errors import (
    ProjectionFailedError,
    UnknownProjectionError,
    UnknownTableError,
)
from framework.projections.ports import (
    AnnouncingReadModelStore,
    Documents,
    ProjectionFailure,
    ReadModelStore,
)
from framework.projections.positions import PositionBoard
from framework.store.ports import EventStore
from framework.store.position import Position

OnTimeout = Literal["raise", "stale"]


class NotCaughtUpError(ProjectionError, TimeoutError):
    """A pull query's projection did not reach the asked position in time."""

    retriable = True

    def __init__(
        self, projection: str, wanted: Position, reached: Position, timeout: float
    ) -> None:
        self.projection = projection
        self.wanted = wanted
        self.reached = reached
        super().__init__(
            f"projection {projection!r} reached {reached} but not {wanted} within "
            f"{timeout} s; is its runner running? Ask again, or accept a stale "
            "answer with on_timeout='stale'"
        )


@attrs.frozen(kw_only=True)
class Lag:
    """How far a read model is behind the log when it answers: ``events`` not yet
    applied, the age in ``seconds`` of the oldest of them, whether a runner is
    ``catching_up``, and the ``failures`` it stopped on (one per partition; the
    model will not move past them until the handler is fixed and it runs
    again)."""

    events: int
    seconds: float
    catching_up: bool
    failures: tuple[ProjectionFailure, ...] = ()

    @property
    def current(self) -> bool:
        return self.events == 0

    @property
    def stopped(self) -> bool:
        """Whether the projection stopped on a failure somewhere."""
        return bool(self.failures)


@attrs.frozen(kw_only=True)
class Answer:
    """A value with the read model's lag at the time it was read (hybrid)."""

    value: Any
    lag: Lag
    #: For pull queries that timed out with ``on_timeout="stale"``.
    stale: bool = False


class ReadModel:
    """Queries of one projection's documents, with a consistency per call.

    ``get(table, key)`` answers at once (eventual); with ``after=position`` it first
    waits until the projection covers that position (pull). ``answer(table, key)``
    answers at once with the lag (hybrid). ``liveness`` tells whether some runner of
    the projection is alive (consumer groups supply it); by default a runner is taken
    to be alive if it announced a position on ``board`` in the last 2 seconds.
    """

    def __init__(
        self,
        name: str,
        read_models: ReadModelStore,
        store: EventStore,
        *,
        board: PositionBoard | None = None,
        liveness: Callable[[], bool] | None = None,
        poll_interval: float = 0.001,
        tables: Collection[str] | None = None,
    ) -> None:
        """``tables``: the projection's document tables, if known here, so that a
        misspelt one is refused before any read (else the store refuses it)."""
        self.name = name
        self.tables = None if tables is None else frozenset(tables)
        self.read_models = read_models
        self.store = store
        self.board = board
        self._liveness = liveness
        self._poll_interval = poll_interval
        self._last_move = 0.0
        self._announcing = (
            read_models if isinstance(read_models, AnnouncingReadModelStore) else None
        )
        if board is not None:
            board.subscribe(self._moved)

    def _moved(self, projection: str, position: Position) -> None:
        if projection == self.name:
            self._last_move = time.monotonic()

    def position(self) -> Position:
        """What the live read model covers (from its store: exact across processes)."""
        state = self.read_models.state(self.name)
        if state is None:
            return Position()
        return Position(self.read_models.checkpoints(self.name, state.generation))

    def wait_for(self, position: Mapping[int, int], timeout: float) -> bool:
        """Block until the read model covers ``position``; ``False`` on timeout.

        With a store that announces commits (PostgreSQL) the caller wakes when
        any process commits the position. Otherwise a runner in this process wakes
        it through the board at once, and one in another process is noticed by
        polling the store's checkpoints.
        """
        deadline = time.monotonic() + timeout
        announced = False
        waited = False
        while True:
            state = self.read_models.state(self.name)
            if state is None:
                raise UnknownProjectionError(
                    self.name, self.read_models.projection_names()
                )
            checkpoints = self.read_models.checkpoints(self.name, state.generation)
            if Position(checkpoints).covers(position):
                return True
            if waited:
                # Not on the first miss: a save followed by a pull query
                # usually waits once for a running projection, and a stopped
                # one is found one wait later.
                self._raise_if_blocked(state.generation, checkpoints, position)
            waited = True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._announcing is not None:
                if announced:
                    # Announced but not in the store: announcements of an
                    # older model (before a reset); do not spin on them.
                    time.sleep(min(left, self._poll_interval))
                # Bounded, so that a lost notification costs a poll at most.
                announced = self._announcing.wait_for_checkpoints(
                    self.name, state.generation, position, min(left, 0.05)
                )
            elif self.board is not None:
                self.board.wait_for(self.name, position, min(left, self._poll_interval))
            else:
                time.sleep(min(left, self._poll_interval))

    def _raise_if_blocked(
        self, generation: int, checkpoints: Mapping[int, int], wanted: Mapping[int, int]
    ) -> None:
        """Raise ``ProjectionFailedError`` if a recorded failure stands between
        ``checkpoints`` and ``wanted``."""
        for failure in self.read_models.failures(self.name, generation):
            partition = failure.partition
            if checkpoints.get(partition, -1) < wanted.get(partition, -1):
                raise ProjectionFailedError.blocking(failure, wanted)

    def table(
        self,
        table: str,
        *,
        after: Mapping[int, int] | None = None,
        timeout: float = 5.0,
        on_timeout: OnTimeout = "raise",
    ) -> Documents:
        """The table, once the read model covers ``after`` (if given).

        Raises ``UnknownTableError`` for a table the projection does not
        declare, ``ProjectionFailedError`` at once if the projection stopped on
        a failure before ``after`` (whatever ``on_timeout`` says: it would never
        get there), ``NotCaughtUpError`` on timeout unless ``on_timeout="stale"``.
        """
        if self.tables is not None and table not in self.tables:
            raise UnknownTableError(self.name, table, self.tables)
        if (
            after is not None
            and not self.wait_for(after, timeout)
            and on_timeout == "raise"
        ):
            raise NotCaughtUpError(self.name, Position(after), self.position(), timeout)
        return self.read_models.table(self.name, table)

    def get(
        self,
        table: str,
        key: str,
        *,
        after: Mapping[int, int] | None = None,
        timeout: float = 5.0,
        on_timeout: OnTimeout = "raise",
    ) -> Any:
        """One document (``None`` if absent); pull-consistent given ``after``."""
        return self.table(
            table, after=after, timeout=timeout, on_timeout=on_timeout
        ).get(key)

    def answer(self, table: str, key: str) -> Answer:
        """Hybrid: the document now, with how far behind the read model is (and,
        in ``lag.failures``, what it stopped on, if it did)."""
        if self.tables is not None and table not in self.tables:
            raise UnknownTableError(self.name, table, self.tables)
        lag = self.lag()
        return Answer(value=self.read_models.table(self.name, table).get(key), lag=lag)

    def lag(self) -> Lag:
        """Events not yet applied, the age of the oldest of them, whether a
        runner is catching up, and the failures it stopped on."""
        state = self.read_models.state(self.name)
        if state is None:
            raise UnknownProjectionError(self.name, self.read_models.projection_names())
        checkpoints = self.read_models.checkpoints(self.name, state.generation)
        ends = self.store.end_position()
        behind = 0
        oldest: int | None = None
        lagging: list[int] = []
        for partition, last in ends.items():
            applied = checkpoints.get(partition, -1)
            if last > applied:
                behind += last - applied
                lagging.append(partition)
                first = self.store.read_partition(partition, applied + 1, 1)
                if first and (oldest is None or first[0].timestamp_ms < oldest):
                    oldest = first[0].timestamp_ms
        seconds = 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)
        # Only a model that is behind can have stopped: no query otherwise.
        failures = (
            tuple(
                f
                for f in self.read_models.failures(self.name, state.generation)
                if f.partition in lagging
            )
            if lagging
            else ()
        )
        stopped = {f.partition for f in failures}
        return Lag(
            events=behind,
            seconds=seconds,
            catching_up=any(p not in stopped for p in lagging) and self._alive(),
            failures=failures,
        )

    def _alive(self) -> bool:
        if self._liveness is not None:
            return self._liveness()
        return time.monotonic() - self._last_move < 2.0
