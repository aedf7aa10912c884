"""Crash recovery: torn tails are cut off, anything else damaged is reported, never
skipped, and ``repair`` drops what an operator chose to lose."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.errors import CorruptLogError
from framework.log.backends.segments import CorruptSegmentError, SegmentLog
from framework.log.backends.segments.batch import encode_batch
from framework.log.config import TopicConfig
from framework.log.records import LogRecord, Record

ACTIVE = "00000000000000000000.log"


def read_all(log: SegmentLog, topic: str = "t") -> list[LogRecord]:
    return log.read(topic, 0, log.start_offset(topic, 0), 1_000_000)


def batch_bytes(base: int, value: bytes) -> bytes:
    encoded = encode_batch([(0, 1, None, value, ())], last_offset_delta=0)
    return b"".join(encoded.framed(base))


def make(
    path: Path, count: int, segment_bytes: int = 1 << 20, *, preallocate: bool = True
) -> None:
    with SegmentLog(path, preallocate=preallocate) as log:
        log.create_topic("t", TopicConfig(segment_bytes=segment_bytes))
        for i in range(count):
            log.append("t", 0, [Record(value=b"%03d" % i + b"." * 50)])


def data_end(path: Path) -> int:
    """Where the batches of a segment end (these tests' batches end in dots), before
    any preallocated zeros."""
    return len(path.read_bytes().rstrip(b"\0"))


def write_at(path: Path, position: int, data: bytes) -> None:
    """Write as an appender does: at the end of the data, preallocated or not."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, position)
    finally:
        os.close(fd)


PREALLOCATE = pytest.mark.parametrize(
    "preallocate", [True, False], ids=["preallocated", "grown"]
)


@PREALLOCATE
@pytest.mark.parametrize("cut", [1, 10, 40])
def test_a_torn_last_batch_is_cut_off_on_open(
    tmp_path: Path, cut: int, preallocate: bool
) -> None:
    make(tmp_path, 5, preallocate=preallocate)
    log_file = tmp_path / "t-0" / ACTIVE
    whole = data_end(log_file)
    assert (log_file.stat().st_size > whole) == preallocate
    write_at(log_file, whole, batch_bytes(5, b"never acknowledged")[:cut])
    with SegmentLog(tmp_path, preallocate=preallocate) as log:
        assert [r.value[:3] for r in read_all(log)] == [b"%03d" % i for i in range(5)]
        assert data_end(log_file) == whole
        if not preallocate and cut > 1:  # one byte of the length is just a zero
            assert log_file.stat().st_size == whole
        assert log.append("t", 0, [Record(value=b"next")]).base_offset == 5


@PREALLOCATE
def test_a_last_batch_past_the_recovery_point_failing_its_crc_is_cut_off(
    tmp_path: Path, preallocate: bool
) -> None:
    make(tmp_path, 5, preallocate=preallocate)
    log_file = tmp_path / "t-0" / ACTIVE
    end = data_end(log_file)
    torn = bytearray(batch_bytes(5, b"never synced"))
    torn[-3] ^= 0xFF
    write_at(log_file, end, bytes(torn))  # past what closing recorded as synced
    with SegmentLog(tmp_path, preallocate=preallocate) as log:
        assert log.end_offset("t", 0) == 5
        assert data_end(log_file) == end
        assert log.append("t", 0, [Record(value=b"next")]).base_offset == 5


@PREALLOCATE
def test_readers_never_see_a_half_written_batch(
    tmp_path: Path, preallocate: bool
) -> None:
    make(tmp_path, 2, preallocate=preallocate)
    log_file = tmp_path / "t-0" / ACTIVE
    end = data_end(log_file)
    pending = batch_bytes(2, b"in flight")
    with SegmentLog(tmp_path, preallocate=preallocate) as reader:
        assert reader.end_offset("t", 0) == 2
        write_at(log_file, end, pending[:20])
        assert reader.end_offset("t", 0) == 2
        assert len(reader.read("t", 0, 0)) == 2
        write_at(log_file, end + 20, pending[20:])
        assert reader.end_offset("t", 0) == 3
        assert reader.read("t", 0, 2)[0].value == b"in flight"


@PREALLOCATE
def test_a_bad_batch_followed_by_good_ones_is_an_error_naming_file_and_byte(
    tmp_path: Path, preallocate: bool
) -> None:
    make(tmp_path, 6, preallocate=preallocate)
    log_file = tmp_path / "t-0" / ACTIVE
    data = bytearray(log_file.read_bytes())
    size = data_end(log_file) // 6
    data[2 * size + 30] ^= 0x01  # inside the third batch's records
    log_file.write_bytes(bytes(data))
    with SegmentLog(tmp_path, preallocate=preallocate) as log:
        with pytest.raises(CorruptSegmentError) as info:
            read_all(log)
        assert info.value.path == log_file
        assert info.value.position == 2 * size
        assert f"{log_file} is corrupt at byte {2 * size}" in str(info.value)
        assert "repair" in str(info.value)
        with pytest.raises(CorruptLogError):
            log.append("t", 0, [Record(value=b"x")])


def test_damage_inside_a_sealed_segment_is_an_error(tmp_path: Path) -> None:
    make(tmp_path, 30, segment_bytes=500)
    sealed = sorted((tmp_path / "t-0").glob("*.log"))[1]
    data = bytearray(sealed.read_bytes())
    data[len(data) // 2] ^= 0x10
    sealed.write_bytes(bytes(data))
    with SegmentLog(tmp_path) as log, pytest.raises(CorruptSegmentError) as info:
        read_all(log)
    assert info.value.path == sealed


def test_a_sealed_segment_cut_at_a_batch_boundary_is_an_error(tmp_path: Path) -> None:
    make(tmp_path, 30, segment_bytes=500)
    sealed = sorted((tmp_path / "t-0").glob("*.log"))[1]
    data = sealed.read_bytes()
    size = len(batch_bytes(0, b"000" + b"." * 50))
    assert len(data) % size == 0
    sealed.write_bytes(data[:-size])  # one whole batch fewer: the files still parse
    with SegmentLog(tmp_path) as log, pytest.raises(CorruptSegmentError) as info:
        log.end_offset("t", 0)
    assert info.value.path == sealed
    assert "batches are missing" in str(info.value)


def test_repair_truncates_at_the_first_bad_batch_and_says_what_it_dropped(
    tmp_path: Path,
) -> None:
    make(tmp_path, 30, segment_bytes=500)
    segments = sorted((tmp_path / "t-0").glob("*.log"))
    damaged = segments[1]
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0x01
    damaged.write_bytes(bytes(data))
    with SegmentLog(tmp_path) as log:
        report = log.repair("t", 0)
        assert not report.clean
        assert report.file == damaged
        assert report.position is not None
        assert report.position <= 100
        assert report.deleted_segments == tuple(segments[2:])
        assert report.first_dropped_offset == report.end_offset
        assert str(report.file) in str(report)
        kept = read_all(log)
        assert [r.offset for r in kept] == list(range(report.end_offset))
        assert log.append("t", 0, [Record(value=b"x")]).base_offset == report.end_offset
        assert log.repair("t", 0).clean


PARTITION_VALUES = st.lists(
    st.lists(st.binary(min_size=0, max_size=60), min_size=1, max_size=4),
    min_size=1,
    max_size=25,
)
DAMAGE = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "zero"]),
        st.integers(min_value=0),
        st.integers(min_value=0),
    ),
    min_size=1,
    max_size=3,
)
_runs = itertools.count()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# Small segments roll often; larger ones leave most of the active segment's file
# preallocated zeros, where most of the damage then lands.
@pytest.mark.parametrize("segment_bytes", [400, 8192])
@given(batches=PARTITION_VALUES, damage=DAMAGE)
def test_damaged_files_give_a_torn_tail_or_an_error_never_a_wrong_record(
    tmp_path: Path,
    segment_bytes: int,
    batches: list[list[bytes]],
    damage: list[tuple[str, int, int]],
) -> None:
    path = tmp_path / f"run-{next(_runs)}"
    model: list[tuple[bytes | None, bytes, int]] = []
    with SegmentLog(path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=segment_bytes))
        for n, values in enumerate(batches):
            records = [
                Record(key=b"k%d" % n if i % 2 else None, value=v, timestamp=n * 10 + i)
                for i, v in enumerate(values)
            ]
            log.append("t", 0, records)
            model.extend((r.key, r.value, n * 10 + i) for i, r in enumerate(records))
    files = sorted(p for p in (path / "t-0").iterdir() if p.suffix != ".lock")
    for kind, which, where in damage:
        target = files[which % len(files)]
        data = bytearray(target.read_bytes())
        if not data:
            continue
        at = where % len(data)
        if kind == "flip":
            data[at] ^= 1 << (where % 8)
        elif kind == "zero":
            data[at : at + 8] = bytes(len(data[at : at + 8]))
        else:
            del data[at:]
        target.write_bytes(bytes(data))
    refused: CorruptLogError | None = None
    try:
        with SegmentLog(path) as log:
            got = read_all(log)
            offsets = [r.offset for r in got]
            assert offsets == list(range(len(got))), "a damaged span was skipped"
            for record in got:
                assert (record.key, record.value, record.timestamp) == model[
                    record.offset
                ]
            sample = list(range(0, len(got), 3))
            assert log.read_at("t", 0, sample) == [got[o] for o in sample]
    except CorruptLogError as exc:
        refused = exc
    if refused is not None:
        assert "is corrupt at byte" in str(refused)
