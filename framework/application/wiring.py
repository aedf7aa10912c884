"""The wiring: from one store URL (and ``AppSettings``) to the backends behind it:
the log, the event store, the read-model store and a projection's consumer-group
member. Transports and the schema registry will be opened here too."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import attrs

from framework.application.settings import (
    AppSettings,
    StoreNotFoundError,
    file_root,
    may_create_stores,
    url_scheme,
)
from framework.errors import ConfigurationError
from framework.log.backends.memory import MemoryLog
from framework.log.config import TopicConfig
from framework.log.ports import Log
from framework.projections.backends.file_group import FileGroup, running_members
from framework.projections.backends.memory import MemoryReadModelStore
from framework.projections.backends.sqlite import SQLiteReadModelStore
from framework.projections.member import GroupMember, GroupSettings
from framework.projections.ports import ReadModelStore
from framework.projections.runner import ProjectionRunner
from framework.store.event_store import LogEventStore
from framework.store.ports import EventStore, Sequencer
from framework.store.repartition import current_events_topic

if TYPE_CHECKING:
    from framework.store.backends.postgres import PostgresEventStore

# The projection classes the application and the command line name come from
# here, so that the wiring is the one module that knows where backends live.
__all__ = [
    "OPENERS",
    "READ_MODEL_OPENERS",
    "STORE_OPENERS",
    "GroupMember",
    "GroupSettings",
    "events_config",
    "group_member",
    "open_log",
    "open_read_models",
    "open_store",
    "require_file_store",
    "require_postgres_store",
    "running_group_members",
    "store_on_log",
]

#: The folder of a file store where consumer groups coordinate, one folder each.
_GROUPS = "groups"


def _open_memory(url: str) -> Log:
    return MemoryLog()


def _open_file(url: str) -> Log:
    # Imported here: the segment backend is only loaded by those who use it.
    from framework.log.backends.segments import SegmentLog

    return SegmentLog(file_root(url) / "log")


#: URL scheme -> the log it opens; the event store is then ``LogEventStore``.
OPENERS: dict[str, Callable[[str], Log]] = {"memory": _open_memory, "file": _open_file}


def _open_postgres(url: str, settings: AppSettings) -> EventStore:
    # Imported here so that `import framework` never imports psycopg.
    from framework.store.backends.postgres import open_postgres_store

    if not may_create_stores():
        require_postgres_store(url)
    return open_postgres_store(url, settings)


def require_postgres_store(url: str) -> None:
    """Raise ``StoreNotFoundError`` unless ``url``'s schema holds the framework's
    tables; looks with one connection and creates nothing."""
    import psycopg

    from framework.postgres.errors import translated
    from framework.postgres.migration import current_versions
    from framework.postgres.url import parse_url

    parsed = parse_url(url)
    with translated(parsed), psycopg.connect(parsed.conninfo, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (parsed.schema,)
        ).fetchone()
        versions = current_versions(conn, parsed.schema) if exists else {}
    if any(versions.values()):
        return
    where = f"{parsed.redacted} schema {parsed.schema!r}"
    found = (
        "that schema holds no framework tables"
        if exists
        else "that schema does not exist"
    )
    raise StoreNotFoundError(
        where,
        found,
        "check --url (its ?schema=, default 'framework'), or create the tables "
        "with `python -m framework db migrate --url ...` (or by opening the "
        "application once)",
    )


def require_file_store(url: str, topic: str) -> None:
    """Raise ``StoreNotFoundError`` unless ``url``'s folder holds a file store
    (its events topic); looks without creating anything."""
    root = file_root(url)
    if (root / "log" / "topics" / f"{topic}.json").is_file():
        return
    if not root.exists():
        found = "the folder does not exist"
    elif not root.is_dir():
        found = "it is not a folder"
    else:
        found = f"the folder holds no log with an {topic!r} topic"
    raise StoreNotFoundError(
        str(root),
        found,
        "check --url (file:PATH, relative to the current folder unless absolute); "
        "the application creates its store the first time it opens it",
    )


#: URL scheme -> an event store of its own (backends that implement the store
#: natively, such as PostgreSQL). Checked before ``OPENERS``.
STORE_OPENERS: dict[str, Callable[[str, AppSettings], EventStore]] = {
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
}


def events_config(settings: AppSettings) -> TopicConfig | None:
    """The events topic's settings, or None to leave them to the store."""
    if settings.partitions is None:
        return None
    return TopicConfig(partitions=settings.partitions)


def store_on_log(
    log: Log, settings: AppSettings, *, index_dir: Path | None = None
) -> EventStore:
    """The event store on ``log`` (one given to the application, or the one a
    URL opens), keeping stream-index snapshots in ``index_dir`` if given."""
    return LogEventStore(
        log,
        topic=settings.events_topic,
        config=events_config(settings),
        index_dir=index_dir,
        sequencer=open_sequencer(settings.sequencer),
    )


def open_sequencer(url: str | None) -> Sequencer | None:
    """The sequencer a URL names (``AppSettings.sequencer``): a PostgreSQL
    sequence; ``None`` for none."""
    if url is None:
        return None
    if url_scheme(url) not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"AppSettings.sequencer must be a postgresql:// URL (a sequence there "
            f"orders the events), got {url.split('://')[0]}://..."
        )
    from framework.store.backends.postgres.sequencer import PostgresSequencer

    return PostgresSequencer(url)


def open_store(url: str, settings: AppSettings) -> EventStore:
    """The event store a URL names: a native one, or ``LogEventStore`` on its log."""
    scheme = url_scheme(url)
    opener = STORE_OPENERS.get(scheme)
    if opener is not None:
        return opener(url, settings)
    if scheme == "file":
        settings = _switched(url, settings)
    if scheme == "file" and not may_create_stores():
        require_file_store(url, settings.events_topic)
    return store_on_log(
        open_log(url),
        settings,
        # Files outlive the process: keep stream-index snapshots beside them.
        index_dir=file_root(url) / "index" if scheme == "file" else None,
    )


def _switched(url: str, settings: AppSettings) -> AppSettings:
    """``settings`` with the events topic a repartition switched the file store
    at ``url`` to (``log repartition``), if one did. ``partitions``, if given,
    must then be the new topic's count, as on PostgreSQL, where the new topic
    takes the old one's name."""
    topic = current_events_topic(file_root(url) / "log", settings.events_topic)
    if topic == settings.events_topic:
        return settings
    return attrs.evolve(settings, events_topic=topic)


def _open_postgres_read_models(
    url: str, settings: AppSettings, store: EventStore | None
) -> ReadModelStore:
    # Imported here so that `import framework` never imports psycopg.
    from framework.projections.backends.postgres import open_postgres_read_models

    if not may_create_stores() and _postgres_store(store) is None:
        require_postgres_store(url)
    return open_postgres_read_models(url, store)


#: URL scheme -> the read-model store projections use by default, given the URL,
#: the settings and the application's event store (whose connections a backend
#: may share).
READ_MODEL_OPENERS: dict[
    str, Callable[[str, AppSettings, EventStore | None], ReadModelStore]
] = {
    "memory": lambda url, settings, store: MemoryReadModelStore(),
    "file": lambda url, settings, store: SQLiteReadModelStore(
        file_root(url) / "read_models.sqlite"
    ),
    "postgresql": _open_postgres_read_models,
    "postgres": _open_postgres_read_models,
}


def open_read_models(
    url: str | None, settings: AppSettings, store: EventStore | None = None
) -> ReadModelStore:
    """The default read-model store for a store URL (PostgreSQL: in the event
    store's database, sharing its pool when ``store`` is the PostgreSQL store)."""
    scheme = url_scheme(url or "")
    opener = READ_MODEL_OPENERS.get(scheme)
    if opener is None:
        raise ConfigurationError(
            f"no default read-model store for {scheme or 'this store'!r}; "
            "pass read_models=... to Application"
        )
    return opener(url or "", settings, store)


def open_log(url: str) -> Log:
    """Open the log a store URL names. Raises ``ConfigurationError`` for an unknown or
    unavailable scheme (the message never repeats a password)."""
    scheme = url_scheme(url)
    opener = OPENERS.get(scheme)
    if opener is not None:
        return opener(url)
    raise ConfigurationError(
        f"unknown store URL scheme {scheme or '(none)'!r}; use memory://, file:PATH or "
        "postgresql://..."
    )


def _postgres_store(store: EventStore | None) -> PostgresEventStore | None:
    """``store`` if it is the PostgreSQL event store, else None. The one place
    that tells the stores apart by class; it looks the class up among loaded
    modules, since such a store exists only if its module was loaded, and
    importing it for any other store would import psycopg."""
    module = sys.modules.get("framework.store.backends.postgres")
    if module is None or not isinstance(store, module.PostgresEventStore):
        return None
    return cast("PostgresEventStore", store)


def group_member(
    runner: ProjectionRunner,
    store: EventStore,
    read_models: ReadModelStore,
    *,
    url: str | None,
    group_dir: Path | None = None,
    member_id: str | None = None,
    settings: GroupSettings | None = None,
) -> GroupMember:
    """A consumer-group member for ``runner``: coordinated through the database
    on PostgreSQL (waking on its NOTIFYs), through a folder of file locks
    otherwise (``group_dir``, else the file store's own). Raises
    ``ConfigurationError`` when members would have no folder to share."""
    settings = settings or GroupSettings()
    postgres = _postgres_store(store)
    if group_dir is None and postgres is not None:
        return _postgres_member(runner, postgres, read_models, member_id, settings)
    group = FileGroup(
        _group_dir(url, group_dir, runner.name),
        store.partitions,
        member_id=member_id,
    )
    return GroupMember(runner, group, heartbeat=settings.heartbeat)


def _postgres_member(
    runner: ProjectionRunner,
    store: PostgresEventStore,
    read_models: ReadModelStore,
    member_id: str | None,
    settings: GroupSettings,
) -> GroupMember:
    # Imported here so that `import framework` never imports psycopg.
    from framework.projections.backends.postgres import (
        PostgresAppendSignal,
        PostgresGroup,
        PostgresReadModelStore,
    )

    # A stopped member's open transaction must not hold the projection's lock
    # for longer than its lease.
    if isinstance(read_models, PostgresReadModelStore):
        read_models.idle_timeout = min(read_models.idle_timeout, settings.lease)
    return GroupMember(
        runner,
        PostgresGroup(
            store.db,
            runner.name,
            store.partitions,
            member_id=member_id,
            lease=settings.lease,
            heartbeat=settings.heartbeat,
        ),
        heartbeat=settings.heartbeat,
        signal=PostgresAppendSignal(store),
    )


def _group_dir(url: str | None, given: Path | None, name: str) -> Path:
    if given is not None:
        return given / name
    if url is None or not url.startswith("file:"):
        raise ConfigurationError(
            "--group-dir is needed: members coordinate through a folder they share"
        )
    return file_root(url) / _GROUPS / name


def running_group_members(root: Path) -> list[str]:
    """``group/member`` for every running member of the consumer groups of the
    file store at ``root``, looked up without changing anything."""
    groups = root / _GROUPS
    if not groups.is_dir():
        return []
    return [
        f"{group.name}/{member}"
        for group in sorted(groups.iterdir())
        for member in running_members(group)
    ]
