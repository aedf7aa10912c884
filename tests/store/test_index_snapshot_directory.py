"""The stream-index folder is made durably, like every framework directory."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest

from framework.store import index_snapshot
from tests.log.segments.dirsync import DirectorySyncSpy


def test_a_new_stream_index_folder_is_synced_when_the_first_snapshot_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = DirectorySyncSpy(monkeypatch)
    path = tmp_path / "store" / "index" / "events-0.snapshot"
    index_snapshot.write(path, {"s": array("q", [0])}, 1)
    checked = spy.check_directories(tmp_path, spy.mark())
    assert [p.name for p in checked] == ["store", "index"]
    assert index_snapshot.read(path) == ({"s": array("q", [0])}, 1)
