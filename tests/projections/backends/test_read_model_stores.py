"""Both read-model stores pass the read-model contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.projections.backends.memory import MemoryReadModelStore
from framework.projections.backends.sqlite import SQLiteReadModelStore
from framework.projections.ports import ReadModelStore
from framework.testing.read_model_contract import ReadModelStoreContract


class TestMemoryReadModelStore(ReadModelStoreContract):
    @pytest.fixture
    def read_models(self) -> ReadModelStore:
        return MemoryReadModelStore()


class TestSQLiteReadModelStore(ReadModelStoreContract):
    @pytest.fixture
    def read_models(self, tmp_path: Path) -> Iterator[ReadModelStore]:
        store = SQLiteReadModelStore(tmp_path / "read.sqlite")
        yield store
        store.close()


def test_sqlite_needs_a_file() -> None:
    from framework.errors import ProjectionError

    with pytest.raises(ProjectionError, match="needs a file path"):
        SQLiteReadModelStore(":memory:")


def test_sqlite_read_models_are_shared_by_two_handles_on_one_file(
    tmp_path: Path,
) -> None:
    one = SQLiteReadModelStore(tmp_path / "read.sqlite")
    two = SQLiteReadModelStore(tmp_path / "read.sqlite")
    one.ensure("proj", 1, ("docs",))
    with one.transaction("proj", 1) as tx:
        tx.table("docs").put("a", 1)
        tx.advance(0, 0)
    assert two.table("proj", "docs").get("a") == 1
    assert two.checkpoints("proj", 1) == {0: 0}
