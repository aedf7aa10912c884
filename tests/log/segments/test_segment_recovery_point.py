"""The recovery point: bytes a partition knows were synced are never cut off as a
torn write. Damage below it is an error naming file and byte; only bytes past it
are cut, with a warning that they may have been acknowledged."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from framework.errors import CorruptLogError
from framework.log.backends.segments import (
    CorruptSegmentError,
    SegmentLog,
    recoverypoint,
)
from framework.log.backends.segments.batch import encode_batch
from framework.log.backends.segments.recoverypoint import RecoveryPoint
from framework.log.config import TopicConfig
from framework.log.records import Record
from tests.log.segments.raw_batches import batch_positions

Spawn = Callable[..., "subprocess.Popen[str]"]
ACTIVE = "00000000000000000000.log"
PREALLOCATE = pytest.mark.parametrize(
    "preallocate", [True, False], ids=["preallocated", "grown"]
)


def make(
    path: Path, count: int, segment_bytes: int = 1 << 20, *, preallocate: bool = True
) -> Path:
    """A log of ``count`` one-record batches, closed cleanly."""
    with SegmentLog(path, preallocate=preallocate) as log:
        log.create_topic("t", TopicConfig(segment_bytes=segment_bytes))
        for i in range(count):
            log.append("t", 0, [Record(value=b"%03d" % i + b"." * 50)])
    return path / "t-0" / ACTIVE


def point_of(folder: Path) -> RecoveryPoint | None:
    point, problem = recoverypoint.read(folder / recoverypoint.FILE_NAME)
    assert problem is None
    return point


def damage(path: Path, position: int, how: str) -> bytes:
    """Damage the batch at ``position``: flip a byte of its records, or make its
    length shorter. Returns the file's bytes afterwards."""
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[position + 40] ^= 0x20
    else:
        (length,) = struct.unpack_from(">I", data, position)
        struct.pack_into(">I", data, position, length - 9)
    path.write_bytes(bytes(data))
    return bytes(data)


def batch_bytes(base: int, value: bytes) -> bytes:
    encoded = encode_batch([(0, 1, None, value, ())], last_offset_delta=0)
    return b"".join(encoded.framed(base))


@PREALLOCATE
@pytest.mark.parametrize("how", ["flip", "shorten"])
def test_a_synced_batch_damaged_after_a_clean_close_is_an_error_and_stays_on_disk(
    tmp_path: Path, preallocate: bool, how: str
) -> None:
    log_file = make(tmp_path, 5, preallocate=preallocate)
    last = batch_positions(log_file)[-1]
    point = point_of(tmp_path / "t-0")
    assert point is not None
    assert (point.offset, point.position) == (
        5,
        len(log_file.read_bytes().rstrip(b"\0")),
    )
    damaged = damage(log_file, last, how)
    with SegmentLog(tmp_path, preallocate=preallocate) as log:
        with pytest.raises(CorruptSegmentError) as info:
            log.end_offset("t", 0)
        assert info.value.path == log_file
        assert info.value.position == last
        assert f"{log_file} is corrupt at byte {last}" in str(info.value)
        assert "recovery point" in str(info.value)
        with pytest.raises(CorruptLogError):
            log.append("t", 0, [Record(value=b"x")])
    assert log_file.read_bytes() == damaged  # nothing was cut off


def test_a_synced_last_batch_damaged_after_a_crash_is_an_error_not_a_torn_write(
    tmp_path: Path, spawn: Spawn
) -> None:
    path = tmp_path / "log"
    writer = spawn("synced", path, 20)
    assert writer.stdout is not None
    lines = []
    while not (line := writer.stdout.readline()).startswith("synced"):
        assert line, writer.communicate()[1]
        lines.append(line)
    assert len(lines) == 20  # every append was acknowledged before the point said so
    writer.kill()
    writer.communicate(timeout=10)
    assert writer.returncode == -9
    log_file = path / "c-0" / ACTIVE
    positions = batch_positions(log_file)
    assert len(positions) == 20
    assert line.split()[1:] == ["20", str(len(log_file.read_bytes().rstrip(b"\0")))]
    damaged = damage(log_file, positions[-1], "flip")
    with SegmentLog(path) as log, pytest.raises(CorruptSegmentError) as info:
        log.read("c", 0, 0)
    assert (info.value.path, info.value.position) == (log_file, positions[-1])
    assert log_file.read_bytes() == damaged


@PREALLOCATE
def test_a_torn_write_past_the_recovery_point_is_cut_with_a_warning_saying_so(
    tmp_path: Path, preallocate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    log_file = make(tmp_path, 5, preallocate=preallocate)
    end = len(log_file.read_bytes().rstrip(b"\0"))
    torn = batch_bytes(5, b"x" * 60)[:45]
    fd = os.open(log_file, os.O_WRONLY)
    try:
        os.pwrite(fd, torn, end)
    finally:
        os.close(fd)
    with (
        caplog.at_level(logging.WARNING, "framework.log"),
        SegmentLog(tmp_path, preallocate=preallocate) as log,
    ):
        assert log.end_offset("t", 0) == 5
        assert log.append("t", 0, [Record(value=b"next")]).base_offset == 5
    (warning,) = [r.getMessage() for r in caplog.records if "cut off" in r.getMessage()]
    assert str(log_file) in warning
    assert f"cut off 45 bytes at byte {end}" in warning
    assert "offsets 5..5" in warning
    assert f"past the recovery point (byte {end})" in warning
    assert "may have been acknowledged" in warning


@PREALLOCATE
def test_synced_batches_gone_from_the_end_of_the_data_are_an_error(
    tmp_path: Path, preallocate: bool
) -> None:
    log_file = make(tmp_path, 5, preallocate=preallocate)
    last = batch_positions(log_file)[-1]
    data = bytearray(log_file.read_bytes())
    if preallocate:  # the last batch reads as preallocated zeros
        data[last:] = bytes(len(data) - last)
    else:  # the file ends before it, at a batch boundary
        del data[last:]
    log_file.write_bytes(bytes(data))
    with SegmentLog(tmp_path, preallocate=preallocate) as log:
        with pytest.raises(CorruptSegmentError) as info:
            log.end_offset("t", 0)
        assert (info.value.path, info.value.position) == (log_file, last)
        assert "recovery point" in str(info.value)
        report = log.repair("t", 0)
        assert (report.file, report.position) == (log_file, last)
        assert "synced batches are lost" in str(report)
        assert report.first_dropped_offset == 4
        assert log.append("t", 0, [Record(value=b"again")]).base_offset == 4
    with SegmentLog(tmp_path, preallocate=preallocate) as log:
        assert log.end_offset("t", 0) == 5


def test_a_recovery_point_naming_a_missing_segment_is_an_error(
    tmp_path: Path,
) -> None:
    make(tmp_path, 30, segment_bytes=500)
    segments = sorted((tmp_path / "t-0").glob("*.log"))
    point = point_of(tmp_path / "t-0")
    assert point is not None
    assert point.base == int(segments[-1].stem)
    segments[-1].unlink()
    with SegmentLog(tmp_path) as log, pytest.raises(CorruptSegmentError) as info:
        log.end_offset("t", 0)
    assert info.value.path == segments[-1]
    assert "missing" in str(info.value)


@pytest.mark.parametrize("state", ["missing", "damaged"])
def test_without_a_usable_recovery_point_nothing_is_known_synced_and_it_is_logged(
    tmp_path: Path, state: str, caplog: pytest.LogCaptureFixture
) -> None:
    log_file = make(tmp_path, 5)
    point_file = tmp_path / "t-0" / recoverypoint.FILE_NAME
    if state == "missing":
        point_file.unlink()
    else:
        data = bytearray(point_file.read_bytes())
        data[10] ^= 0x01
        point_file.write_bytes(bytes(data))
    damage(log_file, batch_positions(log_file)[-1], "flip")
    with caplog.at_level(logging.INFO, "framework.log"), SegmentLog(tmp_path) as log:
        assert log.end_offset("t", 0) == 4  # cut off, as Kafka recovers it
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert str(point_file) in messages
    if state == "damaged":
        assert "fails its CRC check" in messages
    else:
        assert "no recovery point" in messages
    assert "cut off" in messages


def test_the_recovery_point_never_moves_back_for_a_process_with_an_older_view(
    tmp_path: Path, spawn: Spawn
) -> None:
    path = tmp_path / "log"
    folder = path / "c-0"
    older = SegmentLog(path)
    older.ensure_topic("c", TopicConfig(partitions=1, segment_bytes=64 * 1024))
    older.append("c", 0, [Record(value=b"first")])
    part = older._partition("c", 0)
    # Another process appends 30 batches in turn and closes, saying so.
    other = spawn("append", path, "o", 30)
    _, err = other.communicate(input="go\n", timeout=60)
    assert other.returncode == 0, err
    after_other = point_of(folder)
    assert after_other is not None
    assert after_other.offset == 31
    # The older view synced only offset 0: writing its figure would move back.
    assert part.recovery.synced[2] == 1
    assert part.save_recovery_point(wait=5)
    assert point_of(folder) == after_other
    # Once it appends after the others, it moves the point on.
    assert older.append("c", 0, [Record(value=b"last")]).base_offset == 31
    assert part.save_recovery_point(wait=5)
    moved = point_of(folder)
    assert moved is not None
    assert (moved.offset, moved.base) == (32, 0)
    assert moved.position > after_other.position
    older.close()
    assert point_of(folder) == moved


def test_appends_leave_the_recovery_point_to_a_background_write_without_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[RecoveryPoint] = []
    real_write = recoverypoint.write

    def counting(path: Path, point: RecoveryPoint, *, durable: bool = False) -> None:
        assert not durable
        writes.append(point)
        real_write(path, point, durable=durable)

    monkeypatch.setattr(recoverypoint, "write", counting)
    # Far apart, so that only the first write and the one at close can happen.
    monkeypatch.setattr(recoverypoint, "INTERVAL", 3600.0)
    log = SegmentLog(tmp_path)
    log.create_topic("t", TopicConfig())
    log.append("t", 0, [Record(value=b"0")])
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def spying(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spying)
    for i in range(1, 50):
        log.append("t", 0, [Record(value=b"%d" % i)])
    assert fsyncs == []  # appends fdatasync their batch, and nothing else
    assert len(writes) <= 1
    assert log.fsync_count == 50
    log.close()
    assert writes[-1].offset == 50
    assert point_of(tmp_path / "t-0") == writes[-1]


def test_repair_of_synced_damage_moves_the_recovery_point_back_in_a_new_epoch(
    tmp_path: Path,
) -> None:
    log_file = make(tmp_path, 5)
    before = point_of(tmp_path / "t-0")
    assert before is not None
    damage(log_file, batch_positions(log_file)[-1], "flip")
    with SegmentLog(tmp_path) as log:
        report = log.repair("t", 0)
        assert report.first_dropped_offset == 4
        after = point_of(tmp_path / "t-0")
        assert after is not None
        assert (after.offset, after.epoch) == (4, before.epoch + 1)
        assert log.append("t", 0, [Record(value=b"again")]).base_offset == 4
    with SegmentLog(tmp_path) as log:
        assert log.end_offset("t", 0) == 5
    final = point_of(tmp_path / "t-0")
    assert final is not None
    assert (final.offset, final.epoch) == (5, before.epoch + 1)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_dry_run_repair_changes_nothing_and_reports_what_repair_then_drops(
    tmp_path: Path,
) -> None:
    make(tmp_path, 30, segment_bytes=500)
    segments = sorted((tmp_path / "t-0").glob("*.log"))
    data = bytearray(segments[1].read_bytes())
    data[100] ^= 0x01
    segments[1].write_bytes(bytes(data))
    files = _files(tmp_path / "t-0")
    with SegmentLog(tmp_path) as log:
        dry = log.repair("t", 0, dry_run=True)
        assert _files(tmp_path / "t-0") == files
        assert dry.dry_run
        assert not dry.clean
        assert dry.deleted_segments == tuple(segments[2:])
        text = str(dry)
        assert "would drop" in text
        assert f"{segments[1]} byte {dry.position}" in text
        assert all(p.name in text for p in segments[2:])
        assert log.repair("t", 0, dry_run=True) == dry
        done = log.repair("t", 0)
    assert (
        done.file,
        done.position,
        done.reason,
        done.first_dropped_offset,
        done.end_offset,
        done.dropped_bytes,
        done.deleted_segments,
    ) == (
        dry.file,
        dry.position,
        dry.reason,
        dry.first_dropped_offset,
        dry.end_offset,
        dry.dropped_bytes,
        dry.deleted_segments,
    )
    assert not done.dry_run
    assert "would" not in str(done)
    with SegmentLog(tmp_path) as log:
        assert log.repair("t", 0, dry_run=True).clean
        assert str(log.repair("t", 0, dry_run=True)).endswith("nothing to drop")
