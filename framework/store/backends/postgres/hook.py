"""``AppendHook``: work that commits or fails with an event-store append."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from framework.postgres.database import Cursor
from framework.store.events import Appended


class AppendHook(Protocol):
    """Work that must commit or fail with an append: inline projections."""

    def in_transaction(self, cursor: Cursor, written: Sequence[Appended]) -> None:
        """Called inside the append's transaction, after its rows are written and
        before the commit, with the written partitions' heads still locked (so
        every earlier offset of them is committed and stable). Raising aborts the
        append: nothing is written."""
        ...

    def committed(self, written: Sequence[Appended]) -> None:
        """Called after the append's commit (for announcements)."""
        ...
