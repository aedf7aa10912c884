"""Retention deletes whole old segments; compaction keeps the latest record per key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from framework.errors import OffsetOutOfRangeError
from framework.log.backends.segments import OffsetCompactedError, SegmentLog
from framework.log.config import TopicConfig
from framework.log.records import Record


def segment_files(path: Path, topic: str = "t") -> list[Path]:
    return sorted((path / f"{topic}-0").glob("*.log"))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_retention_by_time_deletes_old_sealed_segments_and_moves_the_start(
    tmp_path: Path,
) -> None:
    day = 24 * 3600 * 1000
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(retention_ms=day, segment_bytes=500))
        old = now_ms() - 3 * day
        for i in range(20):
            log.append("t", 0, [Record(value=b"old" * 20, timestamp=old + i)])
        first_new = log.end_offset("t", 0)
        for _ in range(20):
            log.append("t", 0, [Record(value=b"new" * 20)])
        before = len(segment_files(tmp_path))
        deleted = log.enforce_retention("t")
        assert deleted > 0
        assert len(segment_files(tmp_path)) == before - deleted
        start = log.start_offset("t", 0)
        assert 0 < start <= first_new
        assert log.read("t", 0, start, 1)[0].offset == start
        with pytest.raises(OffsetOutOfRangeError):
            log.read("t", 0, 0)
        assert log.end_offset("t", 0) == 40
        assert log.enforce_retention("t") == 0
    with SegmentLog(tmp_path) as log:
        assert log.start_offset("t", 0) == start


def test_retention_never_deletes_the_active_segment(tmp_path: Path) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(retention_ms=1))
        log.append("t", 0, [Record(value=b"ancient", timestamp=0)])
        assert log.enforce_retention("t") == 0
        assert log.read("t", 0, 0)[0].value == b"ancient"


def test_retention_by_size_deletes_the_oldest_segments_until_under_the_limit(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(retention_bytes=2000, segment_bytes=500))
        for i in range(60):
            log.append("t", 0, [Record(value=b"%02d" % i + b"." * 60)])
        assert log.enforce_retention("t") > 0
        files = segment_files(tmp_path)
        assert sum(p.stat().st_size for p in files) <= 2000
        start = log.start_offset("t", 0)
        assert start == int(files[0].stem)
        got = log.read("t", 0, start, 1000)
        assert [r.offset for r in got] == list(range(start, 60))
        assert got[0].value[:2] == b"%02d" % start


def _compacted_log(path: Path) -> tuple[SegmentLog, dict[bytes, int]]:
    log = SegmentLog(path)
    log.create_topic("t", TopicConfig(cleanup_policy="compact", segment_bytes=400))
    latest: dict[bytes, int] = {}
    for i in range(60):
        key = b"k%d" % (i % 6)
        value = b"" if (i % 6 == 5 and i > 30) else b"v%02d" % i
        latest[key] = log.append("t", 0, [Record(key=key, value=value)]).base_offset
    log.append("t", 0, [Record(value=b"no key")])
    return log, latest


def test_compaction_keeps_the_latest_record_per_key_at_its_offset(
    tmp_path: Path,
) -> None:
    log, latest = _compacted_log(tmp_path)
    before = log.read("t", 0, 0, 1000)
    active_base = int(segment_files(tmp_path)[-1].stem)
    removed = log.compact("t")
    after = log.read("t", 0, 0, 1000)
    assert removed == len(before) - len(after) > 0
    kept = {r.offset for r in after}
    for record in before:
        if record.offset >= active_base or record.key is None:
            assert record.offset in kept  # the active segment is never rewritten
        elif record.key == b"k5":
            assert record.offset not in kept  # its latest record is a tombstone
        else:
            assert (record.offset in kept) == (latest[record.key] == record.offset)
    assert after == [r for r in before if r.offset in kept]
    assert log.end_offset("t", 0) == 61
    assert log.start_offset("t", 0) == 0
    assert log.compact("t") == 0
    log.close()


def test_a_compacted_partition_has_gaps_that_read_skips_and_read_at_refuses(
    tmp_path: Path,
) -> None:
    log, _ = _compacted_log(tmp_path)
    log.compact("t")
    kept = [r.offset for r in log.read("t", 0, 0, 1000)]
    gap = next(o for o in range(61) if o not in kept)
    assert log.read("t", 0, gap, 1)[0].offset == min(o for o in kept if o > gap)
    with pytest.raises(OffsetCompactedError, match="removed by compaction") as info:
        log.read_at("t", 0, [kept[0], gap])
    assert isinstance(info.value, OffsetOutOfRangeError)
    assert [r.offset for r in log.read_at("t", 0, kept[:3])] == kept[:3]
    log.close()
    with SegmentLog(tmp_path) as reopened:
        assert [r.offset for r in reopened.read("t", 0, 0, 1000)] == kept
        base = reopened.append("t", 0, [Record(key=b"k0", value=b"new")]).base_offset
        assert base == 61
        for path in (tmp_path / "t-0").glob("*index"):
            path.unlink()
    with SegmentLog(tmp_path) as rebuilt:
        assert [r.offset for r in rebuilt.read("t", 0, 0, 1000)] == [*kept, 61]


def test_compaction_survives_a_crash_that_left_a_half_written_copy(
    tmp_path: Path,
) -> None:
    log, _ = _compacted_log(tmp_path)
    before = log.read("t", 0, 0, 1000)
    log.close()
    leftover = segment_files(tmp_path)[0].with_name(
        segment_files(tmp_path)[0].name + ".cleaned"
    )
    leftover.write_bytes(b"\x00" * 100)
    with SegmentLog(tmp_path) as log:
        assert log.read("t", 0, 0, 1000) == before
        log.compact("t")
        assert not leftover.exists()
