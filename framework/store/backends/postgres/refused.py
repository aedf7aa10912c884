"""``RefusedAppends``: what a refused append means, found out after the fact.

An append statement that writes nothing was refused by a unique index or missed
its expected version. That is a conflict, a retry of events already stored (the
original positions are the answer), or a stale view of the stream that a second
try gets right; these lookups tell which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from framework.errors import ConcurrencyError
from framework.postgres.database import Database
from framework.postgres.errors import DuplicateRowError
from framework.store.backends.postgres.statements import StoreStatements
from framework.store.events import Appended
from framework.store.ports import StreamAppend

logger = logging.getLogger("framework.store")


class RefusedAppends:
    """The lookups that sort out one store's refused appends."""

    def __init__(
        self,
        db: Database,
        statements: StoreStatements,
        topic_id: int,
        stream_version: Callable[[str], int],
    ) -> None:
        self.db = db
        self._sql = statements
        self._topic_id = topic_id
        self._stream_version = stream_version

    def after_conflict(self, append: StreamAppend, cause: DuplicateRowError) -> None:
        """A unique constraint refused an append whose events are not stored: a
        real conflict (raised), or a stale view of the stream (return: try again).
        """
        actual = self._stream_version(append.stream_id)
        if append.expected_version is not None and append.expected_version != actual:
            raise ConcurrencyError(
                append.stream_id, append.expected_version, actual
            ) from cause
        found = self._ids_found_elsewhere(append)
        if found:
            raise ConcurrencyError(
                append.stream_id,
                append.expected_version,
                actual,
                note=f"event ids {', '.join(found)} are stored already elsewhere; "
                "give new events new ids",
            ) from cause
        # The statement saw the stream as it was before the writer it waited for
        # committed; the stream is now where the caller expects: try again.

    def after_missing(self, append: StreamAppend) -> None:
        """The expected version was not found by the statement: conflict, unless
        it has been committed meanwhile (then the caller tries again)."""
        actual = self._stream_version(append.stream_id)
        if actual != append.expected_version:
            raise ConcurrencyError(append.stream_id, append.expected_version, actual)

    def _lookup_ids(self, append: StreamAppend) -> list[tuple[Any, ...]]:
        return self.db.fetchall_prepared(
            self._sql.by_ids,
            {"topic": self._topic_id, "ids": [e.event_id for e in append.events]},
        )

    def stored_ids(self, append: StreamAppend) -> Appended | None:
        rows = {row[0]: row for row in self._lookup_ids(append)}
        ordered = [rows.get(e.event_id) for e in append.events]
        key = append.stream_id.encode()
        if any(r is None or r[1] != key for r in ordered):
            return None
        first = ordered[0]
        assert first is not None
        versions = [int(r[2]) for r in ordered if r is not None]
        if versions != list(range(versions[0], versions[0] + len(versions))):
            return None
        if (
            append.expected_version is not None
            and versions[0] != append.expected_version + 1
        ):
            return None
        offsets = [int(r[4]) for r in ordered if r is not None]
        logger.debug(
            "append to %r: versions %d..%d already stored, nothing written",
            append.stream_id,
            versions[0],
            versions[-1],
        )
        return Appended(
            stream_id=append.stream_id,
            partition=int(first[3]),
            first_offset=offsets[0],
            last_offset=offsets[-1],
            first_version=versions[0],
            last_version=versions[-1],
            already_stored=True,
        )

    def _ids_found_elsewhere(self, append: StreamAppend) -> list[str]:
        return [str(row[0]) for row in self._lookup_ids(append)]
