"""The read-model and consumer-group folders are durable before they are used: each
new directory's parent is fsynced."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.projections.backends.file_group import FileGroup
from framework.projections.backends.sqlite import SQLiteReadModelStore
from tests.log.segments.dirsync import DirectorySyncSpy


def test_a_new_sqlite_read_model_folder_is_synced_before_the_store_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = DirectorySyncSpy(monkeypatch)
    store = SQLiteReadModelStore(tmp_path / "var" / "models" / "read.sqlite")
    try:
        checked = spy.check_directories(tmp_path, spy.mark())
    finally:
        store.close()
    assert [p.name for p in checked] == ["var", "models"]


def test_a_new_file_group_folder_is_synced_before_the_member_joins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = DirectorySyncSpy(monkeypatch)
    group = FileGroup(tmp_path / "groups" / "balances", 4, member_id="m1")
    group.join()
    try:
        checked = spy.check_directories(tmp_path, spy.mark())
    finally:
        group.leave()
    assert {p.relative_to(tmp_path).as_posix() for p in checked} == {
        "groups",
        "groups/balances",
        "groups/balances/members",
        "groups/balances/partitions",
    }
