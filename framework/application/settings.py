"""Application settings, and opening a log from a store URL."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import attrs

from framework.errors import ConfigurationError, StoreError
from framework.log.backends.memory import MemoryLog
from framework.log.config import TopicConfig
from framework.log.ports import Log
from framework.projections.backends.memory import MemoryReadModelStore
from framework.projections.backends.sqlite import SQLiteReadModelStore
from framework.projections.ports import ReadModelStore
from framework.retry import RetryPolicy
from framework.store.event_store import LogEventStore
from framework.store.ports import EventStore

#: Environment variable read when no store URL is given.
STORE_URL_ENV = "FRAMEWORK_STORE_URL"

#: Whether opening a store URL may create the store (see ``existing_stores_only``).
_may_create: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "framework_may_create_stores", default=True
)


class StoreNotFoundError(StoreError, LookupError):
    """A store URL names no store, where one must exist (the management commands
    never create one). ``where`` names the place (a folder, or a server and
    schema; never a password)."""

    def __init__(self, where: str, found: str, hint: str) -> None:
        self.where = where
        super().__init__(f"there is no store at {where}: {found}; {hint}")


@contextlib.contextmanager
def existing_stores_only() -> Iterator[None]:
    """Within the block (in this thread or task), opening a ``file:`` or
    ``postgresql://`` store that does not exist raises ``StoreNotFoundError``
    instead of creating it, and leaves nothing behind; an existing store opens
    as usual (a PostgreSQL schema from an older release is upgraded).
    ``memory://`` is unaffected. The management commands open applications so,
    so that a mistyped ``--url`` is an error, not a new, empty store."""
    token = _may_create.set(False)
    try:
        yield
    finally:
        _may_create.reset(token)


def may_create_stores() -> bool:
    """False inside ``existing_stores_only``."""
    return _may_create.get()


@attrs.frozen(kw_only=True)
class AppSettings:
    """``store_url`` is used when ``Application`` is given no URL (then
    ``FRAMEWORK_STORE_URL`` is read). ``partitions`` applies when the events topic is
    created; an existing topic keeps its own count. Left at None, the backend
    chooses: one partition on ``file:`` and ``memory://`` (one file to fsync, a total
    order, and every writer thread shares group commits), 64 on PostgreSQL
    (writers to different partitions commit in parallel). ``command_retry`` bounds
    how often a command is retried on ``ConcurrencyError``."""

    store_url: str | None = None
    partitions: int | None = None
    events_topic: str = "events"
    command_retry: RetryPolicy = attrs.field(factory=RetryPolicy)


def _open_memory(url: str) -> Log:
    return MemoryLog()


def file_root(url: str) -> Path:
    """The folder of a ``file:`` URL: ``file:./var/ledger`` (relative),
    ``file:/abs/path`` or ``file:///abs/path``."""
    rest = url[len("file:") :]
    if rest.startswith("//"):
        host, _, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise ConfigurationError(
                f"file: URLs name a local folder, not host {host!r}: use "
                "file:///abs/path or file:./relative/path"
            )
        rest = "/" + path
    if not rest:
        raise ConfigurationError(
            "a file: URL needs a folder, e.g. file:./var/ledger or file:///srv/ledger"
        )
    return Path(unquote(rest))


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


def resolve_url(url: str | None, settings: AppSettings | None = None) -> str:
    if url is None and settings is not None:
        url = settings.store_url
    if url is None:
        url = os.environ.get(STORE_URL_ENV)
        if not url:
            raise ConfigurationError(
                f"no store URL: pass one to Application(...) or set {STORE_URL_ENV} "
                "(memory://, file:PATH or postgresql://...)"
            )
    return url


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower() if ":" in url else ""


def events_config(settings: AppSettings) -> TopicConfig | None:
    """The events topic's settings, or None to leave them to the store."""
    if settings.partitions is None:
        return None
    return TopicConfig(partitions=settings.partitions)


def open_store(url: str, settings: AppSettings) -> EventStore:
    """The event store a URL names: a native one, or ``LogEventStore`` on its log."""
    scheme = _scheme(url)
    opener = STORE_OPENERS.get(scheme)
    if opener is not None:
        return opener(url, settings)
    if scheme == "file" and not may_create_stores():
        require_file_store(url, settings.events_topic)
    return LogEventStore(
        open_log(url),
        topic=settings.events_topic,
        config=events_config(settings),
        # Files outlive the process: keep stream-index snapshots beside them.
        index_dir=file_root(url) / "index" if scheme == "file" else None,
    )


def _open_postgres_read_models(
    url: str, settings: AppSettings, store: EventStore | None
) -> ReadModelStore:
    # Imported here so that `import framework` never imports psycopg.
    from framework.projections.backends.postgres import open_postgres_read_models
    from framework.store.backends.postgres import PostgresEventStore

    if not may_create_stores() and not isinstance(store, PostgresEventStore):
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
    opener = READ_MODEL_OPENERS.get(_scheme(url or ""))
    if opener is None:
        raise ConfigurationError(
            f"no default read-model store for {_scheme(url or '') or 'this store'!r}; "
            "pass read_models=... to Application"
        )
    return opener(url or "", settings, store)


def open_log(url: str) -> Log:
    """Open the log a store URL names. Raises ``ConfigurationError`` for an unknown or
    unavailable scheme (the message never repeats a password)."""
    scheme = _scheme(url)
    opener = OPENERS.get(scheme)
    if opener is not None:
        return opener(url)
    raise ConfigurationError(
        f"unknown store URL scheme {scheme or '(none)'!r}; use memory://, file:PATH or "
        "postgresql://..."
    )


def describe_url(url: str) -> str:
    """A store URL as messages show it: a ``file:`` store's absolute folder, a
    PostgreSQL one's server, database and schema (never its password)."""
    scheme = _scheme(url)
    if scheme == "file":
        return f"file:{file_root(url).resolve()}"
    if scheme in ("postgresql", "postgres"):
        from framework.postgres.url import parse_url

        parsed = parse_url(url)
        return f"{parsed.redacted}?schema={parsed.schema}"
    return url


def same_store(one: str, other: str) -> bool:
    """Whether two store URLs name the same store (the same folder; the same
    server, database, user and schema), however they are spelt."""
    scheme = _scheme(one)
    postgres = ("postgresql", "postgres")
    if scheme != _scheme(other) and not {scheme, _scheme(other)} <= set(postgres):
        return False
    if scheme == "file":
        return file_root(one).resolve() == file_root(other).resolve()
    if scheme in postgres:
        from framework.postgres.url import parse_url

        a, b = parse_url(one), parse_url(other)
        return (a.host, a.port, a.dbname, a.user, a.schema) == (
            b.host,
            b.port,
            b.dbname,
            b.user,
            b.schema,
        )
    return one == other
