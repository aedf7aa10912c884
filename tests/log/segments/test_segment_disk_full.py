"""A full disk, for real: on a small tmpfs in a private mount namespace, appends,
topic creation, rolls and index writes that run out of space or inodes raise
``LogError``s that name the file and say to free space; close leaves no temporary
files; and once space is freed the log goes on with every acknowledged append.

Needs ``unshare`` and permission to mount a tmpfs in a new user and mount
namespace; skipped where that is missing, unless FRAMEWORK_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from framework.log.backends.segments import SegmentLog, recoverypoint
from framework.log.backends.segments.segment import Segment
from framework.log.config import TopicConfig
from framework.log.records import Record
from tests.conftest import REQUIRE_SERVICES_ENV, services_required

ROOT = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("disk_full_worker.py")


def _on_tmpfs(directory: Path, options: str, command: list[str]) -> list[str]:
    """``command`` run where a tmpfs with ``options`` is mounted at ``directory``,
    in a namespace of its own (so it works unprivileged, and the mount goes away
    with the process)."""
    script = (
        f"mount -t tmpfs -o {shlex.quote(options)} tmpfs {shlex.quote(str(directory))}"
        f" && exec {shlex.join(command)}"
    )
    return ["unshare", "-Urm", "sh", "-c", script]


@pytest.fixture(scope="module")
def tmpfs_available(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip (or fail, when services are required) without a way to mount a tmpfs."""
    reason = None
    if shutil.which("unshare") is None:
        reason = "the unshare command is not installed (util-linux)"
    else:
        probe = tmp_path_factory.mktemp("probe")
        done = subprocess.run(
            _on_tmpfs(probe, "size=1m", ["true"]),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            reason = (
                "cannot mount a tmpfs in a private namespace here (`unshare -Urm "
                f"mount -t tmpfs` said: {done.stderr.strip() or done.returncode}); "
                "user namespaces may be disabled"
            )
    if reason is None:
        return
    if services_required():
        pytest.fail(f"{reason}, and {REQUIRE_SERVICES_ENV}=1 requires it", False)
    pytest.skip(reason)


def run_on_tmpfs(tmp_path: Path, mode: str, options: str) -> dict[str, Any]:
    mount = tmp_path / "mnt"
    mount.mkdir()
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        _on_tmpfs(mount, options, [sys.executable, str(WORKER), mode, str(mount)]),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _assert_disk_full(error: dict[str, Any], mount: Path) -> None:
    assert error["log_error"], error
    assert error["type"] == "DiskFullError", error
    assert error["path"].startswith(str(mount)), error
    assert error["path"] in error["message"], error
    assert "free space" in error["message"].lower(), error


@pytest.mark.usefixtures("tmpfs_available")
def test_a_full_disk_fails_appends_clearly_and_the_log_goes_on_once_freed(
    tmp_path: Path,
) -> None:
    report = run_on_tmpfs(tmp_path, "space", "size=4m,nr_inodes=2000")
    mount = tmp_path / "mnt"
    assert report["append_errors"], "the disk never filled up"
    for error in report["append_errors"]:
        _assert_disk_full(error, mount)
    _assert_disk_full(report["topic_error"], mount)
    assert "close_error" not in report
    assert report["tmp_after_close"] == []
    assert report["missing_t"] == []
    assert report["end_t"] == report["acknowledged"]
    assert report["after_t"] == report["acknowledged"]
    assert report["tmp_at_end"] == []


@pytest.mark.usefixtures("tmpfs_available")
def test_running_out_of_inodes_fails_topic_creation_and_rolls_clearly(
    tmp_path: Path,
) -> None:
    report = run_on_tmpfs(tmp_path, "inodes", "size=16m,nr_inodes=40")
    mount = tmp_path / "mnt"
    assert report["fillers"] > 0
    _assert_disk_full(report["topic_error"], mount)
    assert "inode" in report["topic_error"]["message"]
    assert report["append_errors"], "no append needed a new file"
    for error in report["append_errors"]:
        _assert_disk_full(error, mount)
    assert "close_error" not in report
    assert report["tmp_after_close"] == []
    assert report["missing_t"] == []
    assert report["end_t"] == report["acknowledged"]
    assert report["many_end"] == 0
    assert report["tmp_at_end"] == []


def _no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_index_or_recovery_point_that_cannot_be_written_never_fails_an_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Beside the tmpfs tests above, which fill a real disk: here the secondary
    # writes alone fail, every time, which a real disk cannot be made to do.
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=8 * 1024))
        with monkeypatch.context() as patch:
            patch.setattr(Segment, "write_index_entry", _no_space)
            patch.setattr(Segment, "write_index", _no_space)
            patch.setattr(recoverypoint, "write", _no_space)
            for i in range(200):  # index entries, rolls and a recovery point due
                assert log.append("t", 0, [Record(value=b"%04d" % i * 50)])
            log.close()  # its recovery point write fails too
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "could not extend" in messages
    assert "could not write the recovery point" in messages
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []
    with SegmentLog(tmp_path) as log:  # the indexes are rebuilt from the log
        assert [r.value for r in log.read("t", 0, 0, 1000)] == [
            b"%04d" % i * 50 for i in range(200)
        ]
        assert log.offset_for_time("t", 0, 0) == 0
