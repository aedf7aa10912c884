"""A new store's directories are durable before anything stored in them is
acknowledged: each new directory's parent is fsynced, and so is the folder of each
new segment file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from example_ledger.domain import Account
from framework import Application, AppSettings
from framework.files import make_dirs
from framework.log.backends.segments import SegmentLog
from framework.log.config import TopicConfig
from framework.log.records import Record
from tests.log.segments.dirsync import DirectorySyncSpy


def test_a_new_store_syncs_every_directory_it_makes_before_its_first_append_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = DirectorySyncSpy(monkeypatch)
    root = tmp_path / "var" / "ledger" / "log"  # parents that do not exist yet
    with SegmentLog(root) as log:
        log.create_topic("t", TopicConfig(partitions=3))
        log.append("t", 2, [Record(value=b"first")])
        returned = spy.mark()
        checked = spy.check_directories(tmp_path, returned)
        spy.check_synced(root / "t-2" / "00000000000000000000.log", returned)
    assert {p.relative_to(tmp_path).as_posix() for p in checked} == {
        "var",
        "var/ledger",
        "var/ledger/log",
        "var/ledger/log/topics",
        "var/ledger/log/t-0",
        "var/ledger/log/t-1",
        "var/ledger/log/t-2",
    }


def test_an_application_on_a_new_file_store_syncs_its_directories_before_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = DirectorySyncSpy(monkeypatch)
    url = f"file:{tmp_path / 'new' / 'store'}"
    with Application(url, settings=AppSettings(partitions=2)) as app:
        app.save(Account.open("alice"))
        saved = spy.mark()
        assert spy.check_directories(tmp_path, saved)
    spy.check_directories(tmp_path, spy.mark())


def test_making_directories_syncs_each_new_entry_once_and_nothing_that_existed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "old").mkdir()
    spy = DirectorySyncSpy(monkeypatch)
    make_dirs(tmp_path / "old" / "a" / "b", tmp_path / "old" / "a" / "c")
    make_dirs(tmp_path / "old")  # exists: nothing to do
    synced = [path for kind, path in spy.events if kind == "fsync"]
    base = os.path.realpath(tmp_path / "old")
    assert sorted(synced) == [base, f"{base}/a"]
    spy.check_directories(tmp_path / "old", spy.mark())


def test_making_a_directory_where_a_file_is_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        make_dirs(tmp_path / "file")
    with pytest.raises(FileExistsError):
        make_dirs(tmp_path / "file" / "below")
