"""Read models in SQLite (stdlib), the embedded store's: document tables and
checkpoints in one transaction, in one file shared by every process."""

from __future__ import annotations

from framework.projections.backends.sqlite.read_models import SQLiteReadModelStore

__all__ = ["SQLiteReadModelStore"]
