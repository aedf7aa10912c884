"""Application settings, and the store URL helpers: which store a URL names, how
messages show it, and whether opening it may create it."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

import attrs

from framework.errors import ConfigurationError, StoreError
from framework.retry import RetryPolicy

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
    how often a command is retried on ``ConcurrencyError``. ``policies`` says where
    the commands policies return are handled: ``"inline"`` right after the command
    that caused them, in its process (lost if the process stops in between), or
    ``"log"`` by ``Application.policies``, a runner that reads the store and
    handles each event's commands exactly once. ``sequencer``, a
    ``postgresql://`` URL, gives a store on a log (files, memory) a PostgreSQL
    sequence to stamp events from: the stamps then order every event of the store
    as the sequence handed them out (a global order, one round trip per save)."""

    store_url: str | None = None
    partitions: int | None = None
    events_topic: str = "events"
    command_retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    policies: Literal["inline", "log"] = attrs.field(default="inline")
    sequencer: str | None = None

    @policies.validator
    def _check_policies(self, _: object, value: str) -> None:
        if value not in ("inline", "log"):
            raise ConfigurationError(
                f"AppSettings.policies must be 'inline' or 'log', got {value!r}"
            )


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


def url_scheme(url: str) -> str:
    """The scheme of a store URL, lower-cased (``""`` without one)."""
    return url.split(":", 1)[0].lower() if ":" in url else ""


def describe_url(url: str) -> str:
    """A store URL as messages show it: a ``file:`` store's absolute folder, a
    PostgreSQL one's server, database and schema (never its password)."""
    scheme = url_scheme(url)
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
    scheme = url_scheme(one)
    postgres = ("postgresql", "postgres")
    if scheme != url_scheme(other) and not {scheme, url_scheme(other)} <= set(postgres):
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
