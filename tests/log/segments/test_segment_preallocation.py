"""Preallocated segments: the data ends at the first all-zero header, not at the end of
the file, and everything that finds the end (crash recovery, other processes, rolls,
repair) agrees on where it is."""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from framework.errors import CorruptLogError
from framework.log.backends.segments import (
    CorruptSegmentError,
    SegmentLog,
    preallocation,
)
from framework.log.backends.segments.batch import encode_batch
from framework.log.config import TopicConfig
from framework.log.records import LogRecord, Record

Spawn = Callable[..., "subprocess.Popen[str]"]
ACTIVE = "00000000000000000000.log"
#: ``run:batch:index/count:`` at the start of every value the crash writer appends.
VALUE = re.compile(rb"(\d+):(\d+):(\d+)/(\d+):")

pytestmark = pytest.mark.skipif(
    not preallocation.SUPPORTED, reason="no posix_fallocate on this platform"
)


def read_all(log: SegmentLog, topic: str = "t") -> list[LogRecord]:
    records: list[LogRecord] = []
    while batch := log.read(topic, 0, len(records), 10_000):
        records.extend(batch)
    return records


def data_end(path: Path) -> int:
    """Where the written bytes of a segment end (these tests' values never end in a
    zero byte), before any preallocated zeros."""
    return len(path.read_bytes().rstrip(b"\0"))


def batch_bytes(base: int, value: bytes) -> bytes:
    encoded = encode_batch([(0, 1, None, value, ())], last_offset_delta=0)
    return b"".join(encoded.framed(base))


def write_at(path: Path, position: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, position)
    finally:
        os.close(fd)


def make(path: Path, count: int, segment_bytes: int = 1 << 20) -> Path:
    with SegmentLog(path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=segment_bytes))
        for i in range(count):
            log.append("t", 0, [Record(value=b"%03d" % i + b"." * 50)])
    return path / "t-0" / ACTIVE


def test_appends_go_into_preallocated_space_and_read_back_after_reopening(
    tmp_path: Path,
) -> None:
    log_file = make(tmp_path, 5)
    # One step of preallocation, capped at the segment size (1 MiB here).
    reserved = min(preallocation.STEP, 1 << 20)
    assert log_file.stat().st_size == reserved
    assert data_end(log_file) < reserved
    with SegmentLog(tmp_path) as log:
        assert [r.value[:3] for r in read_all(log)] == [b"%03d" % i for i in range(5)]
        assert log.append("t", 0, [Record(value=b"more")]).base_offset == 5
    assert log_file.stat().st_size == reserved


def test_without_preallocation_a_segment_is_as_long_as_its_batches(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path, preallocate=False) as log:
        log.create_topic("t", TopicConfig())
        log.append("t", 0, [Record(value=b"x.")])
    log_file = tmp_path / "t-0" / ACTIVE
    assert log_file.stat().st_size == data_end(log_file) > 0
    with SegmentLog(tmp_path) as log:  # the same files, now preallocating
        assert log.append("t", 0, [Record(value=b"y.")]).base_offset == 1
        assert [r.value for r in read_all(log)] == [b"x.", b"y."]


def test_preallocation_grows_in_equal_steps_and_never_past_the_segment_size() -> None:
    step = preallocation.STEP
    assert preallocation.target_size(0, 100, 1 << 30) == step
    assert preallocation.target_size(step, step + 1, 1 << 30) == 2 * step
    assert preallocation.target_size(1 << 30, 1 << 30, 1 << 40) == (1 << 30) + step
    assert preallocation.target_size(0, 100, 4096) == 4096
    assert preallocation.target_size(0, 9000, 4096) == 9000  # a batch larger than it


def test_a_roll_cuts_the_preallocated_tail_off_the_sealed_segment(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=4096))
        for i in range(200):
            log.append("t", 0, [Record(value=b"%04d" % i + b"." * 40)])
        segments = sorted((tmp_path / "t-0").glob("*.log"))
        assert len(segments) > 2
        for sealed in segments[:-1]:
            assert sealed.stat().st_size == data_end(sealed) > 0
        active = segments[-1]
        assert active.stat().st_size == 4096 > data_end(active)
    with SegmentLog(tmp_path) as log:
        assert [r.offset for r in read_all(log)] == list(range(200))


def test_a_torn_batch_followed_by_zeros_is_cut_off_and_the_space_reused(
    tmp_path: Path,
) -> None:
    log_file = make(tmp_path, 5)
    end = data_end(log_file)
    write_at(log_file, end, batch_bytes(5, b"never acknowledged")[:30])
    with SegmentLog(tmp_path) as log:
        assert log.end_offset("t", 0) == 5
        assert data_end(log_file) == end
        assert log.append("t", 0, [Record(value=b"next.")]).base_offset == 5
    with SegmentLog(tmp_path) as log:
        assert [r.value for r in read_all(log)][-1] == b"next."


def test_damage_in_the_zero_filled_tail_is_cut_off_without_losing_data(
    tmp_path: Path,
) -> None:
    log_file = make(tmp_path, 5)
    end = data_end(log_file)
    write_at(log_file, end + 5000, b"\x01garbage")  # not where a batch would start
    with SegmentLog(tmp_path) as log:
        assert [r.offset for r in read_all(log)] == list(range(5))
        assert log.append("t", 0, [Record(value=b"next.")]).base_offset == 5
    assert data_end(log_file) < end + 5000  # the garbage is gone


def test_zeroed_data_followed_by_valid_batches_is_an_error_naming_file_and_byte(
    tmp_path: Path,
) -> None:
    log_file = make(tmp_path, 6)
    size = data_end(log_file) // 6
    write_at(log_file, 2 * size, bytes(size))  # the third batch reads as zeros
    with SegmentLog(tmp_path) as log:
        with pytest.raises(CorruptSegmentError) as info:
            read_all(log)
        assert info.value.path == log_file
        assert info.value.position == 2 * size
        assert "valid batch" in str(info.value)
        with pytest.raises(CorruptLogError):
            log.append("t", 0, [Record(value=b"x")])
        report = log.repair("t", 0)
        assert report.position == 2 * size
        assert report.dropped_bytes == 4 * size  # the data, not the preallocated zeros
        assert [r.offset for r in read_all(log)] == [0, 1]


def test_a_valid_batch_after_the_zeros_that_end_the_data_is_an_error(
    tmp_path: Path,
) -> None:
    log_file = make(tmp_path, 3)
    end = data_end(log_file)
    write_at(log_file, end + 4096, batch_bytes(3, b"lost?"))
    with SegmentLog(tmp_path) as log, pytest.raises(CorruptSegmentError) as info:
        log.end_offset("t", 0)
    assert info.value.position == end
    assert f"a valid batch at byte {end + 4096}" in str(info.value)


def test_a_reader_in_another_process_sees_batches_land_in_preallocated_space(
    tmp_path: Path, spawn: Spawn
) -> None:
    path = tmp_path / "log"
    count = 300
    writer = spawn("append", path, "w", count)
    assert writer.stdout is not None
    assert writer.stdin is not None
    assert writer.stdout.readline() == "ready\n", writer.communicate()[1]
    seen: list[int] = []
    with SegmentLog(path) as reader:
        assert reader.end_offset("c", 0) == 0
        writer.stdin.write("go\n")
        writer.stdin.flush()
        deadline = time.monotonic() + 60
        while len(seen) < count and time.monotonic() < deadline:
            for record in reader.read("c", 0, len(seen), 1000):
                assert record.value == f"w:{record.offset}".encode()
                seen.append(record.offset)
            time.sleep(0.0005)
        log_file = path / "c-0" / ACTIVE
        # The writer appended into preallocated space all along.
        assert log_file.stat().st_size > data_end(log_file)
    writer.communicate(timeout=30)
    assert seen == list(range(count))


def test_writers_killed_while_appending_into_preallocated_space_lose_nothing(
    tmp_path: Path, spawn: Spawn
) -> None:
    path = tmp_path / "log"
    rng = random.Random(20261127)
    acknowledged: dict[str, tuple[int, int]] = {}
    preallocated = 0
    for run in range(15):
        process = spawn("crash-small", path, run)
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n", process.communicate()[1]
        time.sleep(rng.uniform(0, 0.04))
        process.kill()
        out, err = process.communicate(timeout=10)
        assert process.returncode == -9, err
        for line in out.split("\n")[:-1]:  # a line cut off by the kill is not counted
            if line != "ready":
                base, last, name = line.split()
                acknowledged[name] = (int(base), int(last))
        active = sorted((path / "c-0").glob("*.log"))[-1]
        preallocated += active.stat().st_size > data_end(active)
        _check(path, acknowledged)
    assert preallocated > 5
    assert len(acknowledged) > 15


def _check(path: Path, acknowledged: dict[str, tuple[int, int]]) -> None:
    """Every acknowledged batch is there at its offsets, offsets are contiguous and
    every stored batch is whole."""
    with SegmentLog(path) as log:
        records = read_all(log, "c")
    assert [r.offset for r in records] == list(range(len(records)))
    batches: dict[str, list[tuple[int, int, int]]] = {}
    for record in records:
        match = VALUE.match(record.value)
        assert match, record
        run, number, index, count = (int(g) for g in match.groups())
        batches.setdefault(f"{run}:{number}", []).append((record.offset, index, count))
    for name, rows in batches.items():
        assert [index for _, index, _ in rows] == list(range(rows[0][2])), name
    for name, (base, last) in acknowledged.items():
        assert name in batches, f"acknowledged batch {name} was lost"
        offsets = [offset for offset, _, _ in batches[name]]
        assert (offsets[0], offsets[-1]) == (base, last), name


def test_a_writer_whose_active_segment_was_repaired_away_appends_after_the_repair(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path) as writer:
        writer.create_topic("t", TopicConfig(segment_bytes=500))
        for i in range(30):
            writer.append("t", 0, [Record(value=b"%03d" % i + b"." * 50)])
        segments = sorted((tmp_path / "t-0").glob("*.log"))
        active = segments[-1]
        assert active.stat().st_size > data_end(active)  # preallocated, held open
        damaged = segments[1]
        write_at(damaged, 100, b"\xff")
        with SegmentLog(tmp_path) as repairer:
            report = repairer.repair("t", 0)
        assert active in report.deleted_segments
        # The writer finds its active segment emptied, reloads, and appends after
        # the repaired end instead of into the deleted file.
        result = writer.append("t", 0, [Record(value=b"after.")])
        assert result.base_offset == report.end_offset
    with SegmentLog(tmp_path) as log:
        records = read_all(log)
        assert [r.offset for r in records] == list(range(report.end_offset + 1))
        assert records[-1].value == b"after."
