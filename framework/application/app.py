"""``Application``: one store URL in; save, load, handle commands, read events."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, Self, TypeVar

import attrs

from framework.application.settings import (
    AppSettings,
    events_config,
    open_read_models,
    open_store,
    resolve_url,
)
from framework.domain.aggregate import Aggregate
from framework.domain.commands import CommandRouter
from framework.domain.context import MessageContext, current_context, message_context
from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent, EventRegistry
from framework.errors import (
    AggregateNotFoundError,
    ConcurrencyError,
    ConfigurationError,
    ProjectionError,
    StoreInputError,
    UnknownEventError,
)
from framework.log.ports import Log
from framework.projections.errors import (
    InlineProjectionFailedError,
    ProjectionFailedError,
    UnknownProjectionError,
)
from framework.projections.ports import InlineReadModelStore, ReadModelStore
from framework.projections.positions import PositionBoard
from framework.projections.projection import Projection
from framework.projections.query import ReadModel
from framework.projections.runner import ProjectionRunner, RunnerSettings
from framework.retry import compute_backoff
from framework.schema.codecs.json import JsonEventCodec
from framework.schema.envelope_layout import envelope_at
from framework.schema.envelopes import EnvelopeDecoder
from framework.schema.ports import EventCodec
from framework.store.event_store import LogEventStore
from framework.store.events import Appended, NewEvent
from framework.store.ports import EventStore, StreamAppend
from framework.store.position import Position

logger = logging.getLogger("framework.application")

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

Envelope = EventEnvelope[DomainEvent]


@attrs.frozen(kw_only=True)
class CommandResult(Generic[R]):
    """What handling a command did: the handler's return ``value``, the ``position``
    of everything saved (policies' follow-up commands included), the number of
    ``attempts`` and the events this command itself saved."""

    value: R
    position: Position
    attempts: int
    events: tuple[Envelope, ...]


class Application:
    """The entry point: opened from a store URL, it saves and loads aggregates.

    ``Application("memory://")``; ``file:`` and ``postgresql://`` come with their
    backends. Without a URL, ``FRAMEWORK_STORE_URL`` is read. Thread-safe.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        router: CommandRouter | None = None,
        settings: AppSettings | None = None,
        registry: EventRegistry | None = None,
        log: Log | None = None,
        store: EventStore | None = None,
        read_models: ReadModelStore | None = None,
    ) -> None:
        """Open the store ``url`` (else ``settings.store_url``, else the environment
        variable ``FRAMEWORK_STORE_URL``) names, or use a given ``log`` or ``store``."""
        self.settings = settings or AppSettings()
        #: The store URL, when the store was opened from one.
        self.url: str | None = None
        if store is not None:
            self.store = store
        elif log is not None:
            self.store = LogEventStore(
                log,
                topic=self.settings.events_topic,
                config=events_config(self.settings),
            )
        else:
            self.url = resolve_url(url, self.settings)
            self.store = open_store(self.url, self.settings)
        self.codec: EventCodec = JsonEventCodec(registry)
        self.router = router or CommandRouter()
        self._read_models = read_models
        #: Registered projections by name.
        self.projections: dict[str, ProjectionRunner] = {}
        self._inline: list[ProjectionRunner] = []
        #: Inline runners that ``save`` applies after the append (the store runs
        #: the others inside the append's transaction).
        self._after_append: list[ProjectionRunner] = []
        #: Positions announced by the runners of this process (push consistency).
        self.board = PositionBoard(strict=True)
        #: Stops the background runners ``start_projections`` started.
        self._halts: list[Callable[[], None]] = []
        self._closed = False
        self._close_lock = threading.Lock()
        _open_applications.add(self)

    # -- writing ---------------------------------------------------------------

    def save(self, *aggregates: Aggregate) -> Position:
        """Append every aggregate's pending events, atomically per aggregate.

        All events are encoded before anything is written. Returns the position of
        what was written (a read-your-writes token). Raises ``ConcurrencyError`` if
        an aggregate changed since it was loaded: the aggregates before it in the
        argument list are saved, it and those after it keep their pending events.
        """
        if len(aggregates) == 1 and not self._after_append:
            return self._save_one(aggregates[0])
        position, _ = self._save(aggregates, [], envelopes=False)
        return position

    def _save_one(self, aggregate: Aggregate) -> Position:
        """``_save`` of one aggregate, the usual save: the same steps and failure
        rules without the lists that keep several aggregates apart (one stream's
        append is atomic in every store)."""
        # Encoded before the events are taken, as in ``_save``.
        encoded = [self._encode(e) for e in aggregate.pending_events]
        if not encoded:
            return Position()
        pending = aggregate.collect_events()
        try:
            appended = self.store.append(
                aggregate.id, encoded, aggregate.version - len(pending)
            )
        except BaseException:
            aggregate._restore_pending(pending)
            raise
        return Position({appended.partition: appended.last_offset})

    def _save(
        self,
        aggregates: Iterable[Aggregate],
        written: list[str],
        *,
        envelopes: bool = True,
    ) -> tuple[Position, list[Envelope]]:
        """Save in order; ``written`` collects the stream ids appended so far, so a
        caller can tell whether a failure left part of the work stored."""
        # Encode everything before taking any pending event, so that an encoding
        # error leaves every aggregate as it was and writes nothing.
        batches = [
            (aggregate, pending, [self._encode(e) for e in pending])
            for aggregate in aggregates
            for pending in (list(aggregate.pending_events),)
        ]
        for aggregate, _, _ in batches:
            aggregate.collect_events()
        offsets: dict[int, int] = {}
        saved: list[Envelope] = []
        todo = [(a, pending, encoded) for a, pending, encoded in batches if pending]
        results: list[Appended] = []
        try:
            if self.store.atomic_multi_stream:
                results = self.store.append_streams(
                    [
                        StreamAppend(
                            stream_id=aggregate.id,
                            events=encoded,
                            expected_version=aggregate.version - len(pending),
                        )
                        for aggregate, pending, encoded in todo
                    ]
                )
            else:
                # One stream at a time, so that a failure tells exactly which
                # aggregates were written before it.
                for aggregate, pending, encoded in todo:
                    results.append(
                        self.store.append(
                            aggregate.id, encoded, aggregate.version - len(pending)
                        )
                    )
        except BaseException:
            for aggregate, pending, _ in todo[len(results) :]:
                aggregate._restore_pending(pending)
            written.extend(a.id for a, _, _ in todo[: len(results)])
            raise
        written.extend(a.id for a, _, _ in todo)
        for (_, pending, _), appended in zip(todo, results, strict=True):
            offsets[appended.partition] = appended.last_offset
            if envelopes:
                partition = appended.partition
                saved.extend(
                    # The stored copy: the same fields with partition and offset.
                    envelope_at(e, partition, offset)
                    for e, offset in zip(
                        pending,
                        range(appended.first_offset, appended.last_offset + 1),
                        strict=True,
                    )
                )
        position = Position(offsets)
        for runner in self._after_append:
            try:
                runner.catch_up_to(position)
            except ProjectionFailedError as exc:
                # In the message, not a note: a caller that logs str(error) and
                # retries must learn that saving again would save twice.
                raise InlineProjectionFailedError(
                    exc.failure, saved=True, position=position
                ) from exc
            except ProjectionError as exc:
                exc.add_note(
                    f"the events WERE saved (position {position}); the inline "
                    f"projection {runner.name!r} did not apply them: do not save "
                    "them again"
                )
                raise
        return position, saved

    def _encode(self, envelope: Envelope) -> NewEvent:
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
        )

    # -- reading ---------------------------------------------------------------

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
        for stream_version, (name, event_version, data) in enumerate(rows, 1):
            decode = decoders.get((name, event_version))
            if decode is None:
                decode = decoders[name, event_version] = self._stream_decoder(
                    aggregate_id, stream_version, name, event_version
                )
            events.append(decode(data))
        return cls._replay(aggregate_id, events)

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

    def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[Envelope]:
        """A stream's events, decoded, with their metadata and positions."""
        decoder = EnvelopeDecoder(self.codec, self.store.topic)
        return [
            decoder.envelope(s)
            for s in self.store.read_stream(
                stream_id, from_version=from_version, to_version=to_version
            )
        ]

    def iter_events(self, partition: int, from_offset: int = 0) -> Iterator[Envelope]:
        """Replay one partition from ``from_offset`` to its current end, decoded."""
        envelope = EnvelopeDecoder(self.codec, self.store.topic).envelope
        # The store's own iterator: PostgreSQL streams a page's rows in while the
        # first are decoded (measured: 1.4x the replay rate of page-by-page reads),
        # and ``map`` keeps the per-event step in C.
        yield from map(envelope, self.store.iter_partition(partition, from_offset))

    def iter_all_events(self) -> Iterator[Envelope]:
        """Every partition in turn (order holds within a partition, not across)."""
        for partition in range(self.store.partitions):
            yield from self.iter_events(partition)

    def end_position(self) -> Position:
        return self.store.end_position()

    # -- commands --------------------------------------------------------------

    def handle(
        self,
        command: object,
        *,
        caused_by: EventEnvelope[Any] | None = None,
        correlation_id: str | None = None,
    ) -> CommandResult[Any]:
        """Run the command's handler and save what it changed.

        The handler gets a unit of work; every aggregate it loads or adds is saved
        when it returns. On ``ConcurrencyError`` before anything was written, the
        handler runs again on freshly loaded aggregates, up to
        ``settings.command_retry.max_attempts`` tries with jittered backoff. Then the
        policies reacting to the saved events run, and the commands they return are
        handled with ``caused_by`` set to that event.

        Events recorded here carry the correlation id of the conversation and, as
        causation id, the event that caused the command (``caused_by``) or else the
        command's own id.
        """
        handler = self.router.handler_for(command)
        context = self._context_for(caused_by, correlation_id)
        policy = self.settings.command_retry
        attempt = 0
        while True:
            attempt += 1
            work = _UnitOfWork(self, attempt)
            with message_context(context):
                try:
                    value = handler(command, work)
                    position, saved = self._save(work.aggregates, work.written)
                except ConcurrencyError as exc:
                    if work.written:
                        # Running the handler again would apply its effect twice to
                        # the aggregates already saved; only the caller can decide.
                        exc.add_note(
                            f"{type(command).__qualname__} was not retried because "
                            f"{', '.join(map(repr, work.written))} had been saved; a "
                            "command that changes one aggregate is always retried"
                        )
                        raise
                    if attempt >= policy.max_attempts:
                        exc.add_note(
                            f"{type(command).__qualname__} gave up after "
                            f"{attempt} tries"
                        )
                        raise
                    delay = compute_backoff(attempt, policy)
                    logger.info(
                        "%s conflicted on try %d of %d (%s); retrying in %.1f ms",
                        type(command).__qualname__,
                        attempt,
                        policy.max_attempts,
                        exc,
                        delay * 1000,
                    )
                    time.sleep(delay)
                    continue
            break
        if self.router.has_policies:
            for envelope in saved:
                for policy_fn in self.router.policies_for(type(envelope.event)):
                    for follow_up in _as_commands(policy_fn(envelope)):
                        result = self.handle(follow_up, caused_by=envelope)
                        position = position.merge(result.position)
        return CommandResult(
            value=value, position=position, attempts=attempt, events=tuple(saved)
        )

    def _context_for(
        self, caused_by: EventEnvelope[Any] | None, correlation_id: str | None
    ) -> MessageContext:
        if caused_by is not None:
            return MessageContext(
                correlation_id=caused_by.correlation_id,
                causation_id=str(caused_by.event_id),
            )
        parent = current_context()
        if parent is not None and correlation_id is None:
            return parent
        command_id = str(uuid.uuid4())
        return MessageContext(
            correlation_id=correlation_id or command_id, causation_id=command_id
        )

    # -- projections -----------------------------------------------------------

    @property
    def read_models(self) -> ReadModelStore:
        """Where projections keep their read models: given, or chosen by the store
        URL (memory for ``memory://``, SQLite beside the files for ``file:``)."""
        if self._read_models is None:
            self._read_models = open_read_models(self.url, self.settings, self.store)
        return self._read_models

    def project(
        self,
        projection: Projection,
        *,
        inline: bool = False,
        settings: RunnerSettings | None = None,
    ) -> ReadModel:
        """Register a projection and return its queries.

        ``inline=True`` applies it before ``save`` returns (after catching up with
        anything saved while the process was down); otherwise ``run_projections``
        or the ``projections run`` command keeps it up to date. On PostgreSQL with
        its read models there, inline runs inside the append's transaction: the
        events and the read model commit together, and a failing handler fails
        the save (nothing is written). Elsewhere it runs right after the append.
        """
        if projection.name in self.projections:
            raise ConfigurationError(
                f"a projection named {projection.name!r} is registered already"
            )
        runner = ProjectionRunner(
            self.store,
            self.codec,
            projection,
            self.read_models,
            settings=settings,
            board=self.board,
        )
        self.projections[projection.name] = runner
        self.board.declare(projection.name)
        if inline:
            try:
                runner.catch_up()
            except ProjectionFailedError as exc:
                # Recorded in the store (queries and `projections status` show
                # it); saves retry it, so the application can still start.
                logger.error("%s", exc)
            self._inline.append(runner)
            if not self._attach_inline(runner):
                self._after_append.append(runner)
        return self.read_model(projection.name)

    def _attach_inline(self, runner: ProjectionRunner) -> bool:
        """Let the read-model store run ``runner`` inside the store's appends, if
        the two can share a transaction (PostgreSQL); whether they do."""
        read_models = self.read_models
        return isinstance(
            read_models, InlineReadModelStore
        ) and read_models.attach_inline(self.store, runner)

    def read_model(self, name: str) -> ReadModel:
        """Queries of a projection, with pull and hybrid consistency: one
        registered here, or one that another process keeps in the read-model
        store. Raises ``UnknownProjectionError`` (a ``LookupError``) naming the
        known projections for any other name."""
        runner = self.projections.get(name)
        if runner is None:
            if self.read_models.state(name) is None:
                raise UnknownProjectionError(
                    name, [*self.projections, *self.read_models.projection_names()]
                )
            return ReadModel(name, self.read_models, self.store)
        return ReadModel(
            name,
            self.read_models,
            self.store,
            board=self.board,
            liveness=lambda: runner.running > 0,
            tables=runner.projection.tables,
        )

    def run_projections(
        self, stop: threading.Event, names: Iterable[str] | None = None
    ) -> None:
        """Keep the (non-inline) projections up to date until ``stop`` is set."""
        runners = [
            r
            for n, r in self.projections.items()
            if (names is None or n in names) and r not in self._inline
        ]
        defaults = RunnerSettings()
        interval = defaults.poll_interval
        for runner in runners:
            runner.running += 1
        try:
            while not stop.is_set():
                if sum(r.step_logging_failures() for r in runners):
                    interval = defaults.poll_interval
                    continue
                stop.wait(interval)
                interval = min(interval * 2, defaults.max_poll_interval)
        finally:
            for runner in runners:
                runner.running -= 1

    def start_projections(self) -> Callable[[], None]:
        """Run the projections in a background thread; returns a function that
        stops it and waits for it (``close`` does too)."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run_projections, args=(stop,), name="projections", daemon=True
        )
        thread.start()

        def halt() -> None:
            stop.set()
            if thread is not threading.current_thread():
                thread.join()
            with self._close_lock:
                if halt in self._halts:
                    self._halts.remove(halt)

        with self._close_lock:
            self._halts.append(halt)
        return halt

    # -- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Stop the background runners of ``start_projections``, then close the
        read models and the store (in that order: read models may use the
        store's connections). Idempotent. An application left open is closed
        this way when the interpreter exits."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            halts = list(self._halts)
        for halt in halts:
            halt()
        _open_applications.discard(self)
        if self._read_models is not None:
            self._read_models.close()
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: Applications not closed yet; weakly held, so that an application nobody
#: holds is not kept alive for this.
_open_applications: weakref.WeakSet[Application] = weakref.WeakSet()


@atexit.register
def _close_open_applications() -> None:
    """Close what the program left open before the interpreter tears modules
    down: otherwise pools and connections are collected in any order and warn
    (or fail) from their finalizers, and background runners die mid-batch."""
    for app in list(_open_applications):
        try:
            app.close()
        except Exception:
            logger.exception("closing an application at exit failed")


def _as_commands(returned: object) -> Iterable[object]:
    if returned is None:
        return ()
    if isinstance(returned, list | tuple):
        return returned
    return (returned,)


class _UnitOfWork:
    """One try at a command: an identity map of the aggregates it touches."""

    def __init__(self, app: Application, attempt: int) -> None:
        self._app = app
        self._attempt = attempt
        self._loaded: dict[tuple[type, str], Aggregate] = {}
        self.aggregates: list[Aggregate] = []
        self.written: list[str] = []

    @property
    def attempt(self) -> int:
        return self._attempt

    def load(self, cls: type[A], aggregate_id: str, version: int | None = None) -> A:
        key = (cls, aggregate_id)
        found = self._loaded.get(key)
        if found is None or version is not None:
            found = self._app.load(cls, aggregate_id, version)
            if version is None:
                self._loaded[key] = found
                self.aggregates.append(found)
        return found  # type: ignore[return-value]

    def add(self, *aggregates: Aggregate) -> None:
        for aggregate in aggregates:
            key = (type(aggregate), aggregate.id)
            if key not in self._loaded:
                self._loaded[key] = aggregate
                self.aggregates.append(aggregate)
