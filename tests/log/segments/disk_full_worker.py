"""Runs inside a private mount namespace, on a small tmpfs at DIR, and reports as
JSON what the segment log did when the file system filled up (``space``) or ran
out of inodes (``inodes``); ``test_segment_disk_full.py`` checks the report.

Every exception is reported by type and message rather than raised, so that the
test can say what went wrong; the test fails on anything but ``LogError``.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

from framework.errors import LogError
from framework.log.backends.segments import SegmentLog
from framework.log.config import TopicConfig
from framework.log.records import Record

VALUE = b"v" * 1000


def describe(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "log_error": isinstance(exc, LogError),
        "message": str(exc),
        "errno": getattr(exc, "errno", None),
        "path": str(getattr(exc, "path", "")),
    }


def tmp_files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if ".tmp" in p.name)


def fill_inodes(root: Path) -> list[Path]:
    fillers = []
    while True:
        path = root / f"inode-{len(fillers)}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return fillers
        fillers.append(path)


def check_reopened(store: Path, acknowledged: dict[str, list[int]]) -> dict[str, Any]:
    """Reopen, read everything back, and append and create a topic again."""
    report: dict[str, Any] = {}
    with SegmentLog(store) as log:
        for topic, offsets in acknowledged.items():
            records = log.read(topic, 0, 0, 1_000_000)
            values = {r.offset: r.value for r in records}
            report[f"missing_{topic}"] = [
                o for o in offsets if values.get(o) != VALUE + b"%d" % o
            ]
            report[f"end_{topic}"] = log.end_offset(topic, 0)
            result = log.append(topic, 0, [Record(value=b"after")])
            report[f"after_{topic}"] = result.base_offset
        log.create_topic("later", TopicConfig(partitions=2))
        log.append("later", 1, [Record(value=b"x")])
    return report


def append_until_full(
    log: SegmentLog, topic: str, acknowledged: list[int], limit: int
) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    for _ in range(limit):
        offset = len(acknowledged)
        try:
            result = log.append(topic, 0, [Record(value=VALUE + b"%d" % offset)])
        except Exception as exc:  # noqa: BLE001 - reported, the test judges it
            errors.append(describe(exc))
            if len(errors) >= 3:
                break
            continue
        assert result.base_offset == offset, (result.base_offset, offset)
        acknowledged.append(offset)
    return errors


def space(root: Path) -> dict[str, Any]:
    store = root / "store"
    acknowledged: dict[str, list[int]] = {"t": []}
    log = SegmentLog(store)
    log.create_topic("t", TopicConfig(segment_bytes=64 * 1024))
    for _ in range(20):
        log.append("t", 0, [Record(value=VALUE + b"%d" % len(acknowledged["t"]))])
        acknowledged["t"].append(len(acknowledged["t"]))
    stat = os.statvfs(root)
    filler = root / "filler"
    with filler.open("wb") as f:  # leave about 100 KiB: a roll or two away
        f.write(b"\1" * max(0, stat.f_bavail * stat.f_frsize - 100 * 1024))
    report: dict[str, Any] = {}
    report["append_errors"] = append_until_full(log, "t", acknowledged["t"], 5_000)
    try:
        log.create_topic("u", TopicConfig())
    except Exception as exc:  # noqa: BLE001
        report["topic_error"] = describe(exc)
    try:
        log.close()
    except Exception as exc:  # noqa: BLE001
        report["close_error"] = describe(exc)
    report["tmp_after_close"] = tmp_files(root)
    filler.unlink()
    report.update(check_reopened(store, acknowledged))
    report["acknowledged"] = len(acknowledged["t"])
    report["tmp_at_end"] = tmp_files(root)
    return report


def inodes(root: Path) -> dict[str, Any]:
    store = root / "store"
    acknowledged: dict[str, list[int]] = {"t": []}
    log = SegmentLog(store)
    # Segments of three batches: appends keep needing new segment files.
    log.create_topic("t", TopicConfig(segment_bytes=3 * 1100))
    for _ in range(4):
        log.append("t", 0, [Record(value=VALUE + b"%d" % len(acknowledged["t"]))])
        acknowledged["t"].append(len(acknowledged["t"]))
    fillers = fill_inodes(root)
    report: dict[str, Any] = {"fillers": len(fillers)}
    try:
        log.create_topic("many", TopicConfig(partitions=4))
    except Exception as exc:  # noqa: BLE001
        report["topic_error"] = describe(exc)
    report["append_errors"] = append_until_full(log, "t", acknowledged["t"], 20)
    try:
        log.close()
    except Exception as exc:  # noqa: BLE001
        report["close_error"] = describe(exc)
    report["tmp_after_close"] = tmp_files(root)
    for path in fillers:
        path.unlink()
    report.update(check_reopened(store, acknowledged))
    with SegmentLog(store) as log:
        log.create_topic("many", TopicConfig(partitions=4))
        report["many_end"] = log.append("many", 3, [Record(value=b"y")]).base_offset
    report["acknowledged"] = len(acknowledged["t"])
    report["tmp_at_end"] = tmp_files(root)
    return report


if __name__ == "__main__":
    mode, directory = sys.argv[1:]
    run = {"space": space, "inodes": inodes}[mode]
    print(json.dumps(run(Path(directory))), flush=True)
