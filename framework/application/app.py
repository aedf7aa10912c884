"""``Application``, the one object users hold: one store URL in; it saves and loads
through its repository, handles commands, reads events and runs projections."""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from framework.application.commands import CommandHandler, CommandResult
from framework.application.policies import PolicyRunner
from framework.application.repository import Repository
from framework.application.settings import AppSettings, resolve_url
from framework.application.wiring import (
    GroupMember,
    GroupSettings,
    group_member,
    open_read_models,
    open_store,
    store_on_log,
)
from framework.domain.aggregate import Aggregate
from framework.domain.commands import CommandRouter
from framework.domain.envelope import EventEnvelope
from framework.domain.events import DomainEvent, EventRegistry
from framework.errors import ConfigurationError, ProjectionError
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
from framework.projections.rebuild import Progress, rebuild
from framework.projections.runner import ProjectionRunner, RunnerSettings
from framework.schema.codecs.json import JsonEventCodec
from framework.schema.envelopes import EnvelopeDecoder
from framework.schema.ports import EventCodec
from framework.store.events import StoredEvent
from framework.store.ports import EventStore
from framework.store.position import Position

logger = logging.getLogger("framework.application")

A = TypeVar("A", bound=Aggregate)

Envelope = EventEnvelope[DomainEvent]


def _internal(stored: StoredEvent) -> bool:
    """Whether ``stored`` is one of the framework's own events (``$`` names)."""
    return stored.name[:1] == "$"


class Application:
    """The entry point: opened from a store URL, it saves and loads aggregates.

    ``Application("memory://")``; ``file:`` and ``postgresql://`` come with their
    backends. Without a URL, ``FRAMEWORK_STORE_URL`` is read. Thread-safe.

    It composes the parts: the wiring opens the backends the URL names, the
    ``repository`` loads and saves aggregates, a command handler runs commands,
    and the application keeps the projections and everyone's lifetime.
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
            self.store = store_on_log(log, self.settings)
        else:
            self.url = resolve_url(url, self.settings)
            self.store = open_store(self.url, self.settings)
        self.codec: EventCodec = JsonEventCodec(registry)
        self.router = router or CommandRouter()
        #: Loads and saves aggregates (snapshots plug in there).
        self.repository = Repository(self.store, self.codec)
        self._commands = CommandHandler(
            self.router,
            self.settings.command_retry,
            self.load,
            self._save_recorded,
            inline_policies=self.settings.policies == "inline",
        )
        self._policies: PolicyRunner | None = None
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
        position = self.repository.save(aggregates)
        if self._after_append:
            self._apply_after_append(position)
        return position

    def _save_recorded(
        self, aggregates: Sequence[Aggregate], written: list[str]
    ) -> tuple[Position, list[Envelope]]:
        """``Repository.save_all``, then the inline projections that run after
        the append: the save of a command's unit of work."""
        position, saved = self.repository.save_all(aggregates, written)
        if self._after_append:
            self._apply_after_append(position)
        return position, saved

    def _apply_after_append(self, position: Position) -> None:
        """Bring the inline runners the store does not run inside its appends up
        to ``position``; a failure says that the events were saved all the same.

        Here and not in the repository: registering projections, choosing which
        run inside the store's appends and what a failure means for a caller
        are the application's, and a repository that knows no projections is
        the one snapshots can plug into alone."""
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

    # -- reading ---------------------------------------------------------------

    def load(self, cls: type[A], aggregate_id: str, version: int | None = None) -> A:
        """The aggregate replayed from its events, up to ``version`` if given (time
        travel). Raises ``AggregateNotFoundError`` (a ``LookupError``) if it has no
        events, or fewer than ``version``; ``UnknownEventError`` if an event's class
        is not registered; ``StoreInputError`` (a ``ValueError``) for a version
        below 1."""
        return self.repository.load(cls, aggregate_id, version)

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
        events = self.store.iter_partition(partition, from_offset)
        if self.settings.policies == "log":
            # Policy checkpoints are the framework's own: passed by.
            events = itertools.filterfalse(_internal, events)
        yield from map(envelope, events)

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
        return self._commands.handle(
            command, caused_by=caused_by, correlation_id=correlation_id
        )

    @property
    def policies(self) -> PolicyRunner:
        """The runner that handles the router's policies from the store, exactly
        once per event (``AppSettings(policies="log")``): ``catch_up()``,
        ``step()`` or ``run(stop)`` it in the process that should."""
        if self.settings.policies != "log":
            raise ConfigurationError(
                "this application runs policies inline, right after each command; "
                'open it with AppSettings(policies="log") to run them from the store'
            )
        if self._policies is None:
            self._policies = PolicyRunner(
                store=self.store,
                codec=self.codec,
                router=self.router,
                repository=self.repository,
                load=self.load,
                retry=self.settings.command_retry,
            )
        return self._policies

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

    def runner(self, name: str) -> ProjectionRunner:
        """The runner of the projection registered as ``name``. Raises
        ``UnknownProjectionError`` (a ``LookupError``) naming the registered
        ones for any other name."""
        try:
            return self.projections[name]
        except KeyError:
            raise UnknownProjectionError(name, self.projections) from None

    def group_member(
        self,
        name: str,
        *,
        group_dir: Path | None = None,
        member_id: str | None = None,
        settings: GroupSettings | None = None,
    ) -> GroupMember:
        """A consumer-group member that runs the projection ``name``: its group is
        coordinated through the database on PostgreSQL, through a folder of file
        locks otherwise (``group_dir``, else the file store's own folder).
        Raises ``UnknownProjectionError`` for a name not registered here."""
        return group_member(
            self.runner(name),
            self.store,
            self.read_models,
            url=self.url,
            group_dir=group_dir,
            member_id=member_id,
            settings=settings,
        )

    def rebuild(
        self, name: str, *, progress: Callable[[Progress], None] | None = None
    ) -> int:
        """Replay the log into a fresh copy of projection ``name``'s read model and
        swap it in once it has caught up; returns the new generation. Queries use
        the old copy meanwhile; an interrupted rebuild resumes where it stopped."""
        runner = self.runner(name)
        return rebuild(
            self.store,
            self.codec,
            runner.projection,
            self.read_models,
            progress=progress,
            settings=runner.settings,
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
