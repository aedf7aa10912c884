"""Segment files on disk: layout, topic files, rolling, indexes rebuilt from logs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from framework.errors import ConfigurationError
from framework.log.backends.segments import SegmentLog
from framework.log.backends.segments.errors import LogClosedError
from framework.log.backends.segments.index import ENTRY as OFFSET_ENTRY
from framework.log.backends.segments.timeindex import ENTRY as TIME_ENTRY
from framework.log.config import TopicConfig
from framework.log.records import Record


def values(log: SegmentLog, topic: str, partition: int = 0) -> list[bytes]:
    return [r.value for r in log.read(topic, partition, 0, 100_000)]


def test_partitions_are_folders_of_segments_named_by_base_offset(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("orders", TopicConfig(partitions=2))
        log.append("orders", 1, [Record(value=b"a")])
    folder = tmp_path / "orders-1"
    names = sorted(p.name for p in folder.iterdir())
    assert "00000000000000000000.log" in names
    assert "00000000000000000000.index" in names
    assert "00000000000000000000.timeindex" in names
    assert (tmp_path / "orders-0").is_dir()


def test_topic_configs_are_json_files_read_back_on_open(tmp_path: Path) -> None:
    config = TopicConfig(partitions=3, cleanup_policy="compact", segment_bytes=1000)
    with SegmentLog(tmp_path) as log:
        log.create_topic("snapshots", config)
    stored = json.loads((tmp_path / "topics" / "snapshots.json").read_text())
    assert stored["config"]["segment_bytes"] == 1000
    with SegmentLog(tmp_path) as log:
        assert log.topic_config("snapshots") == config
        assert log.topics() == ["snapshots"]


def test_a_topic_created_by_another_instance_is_seen(tmp_path: Path) -> None:
    with SegmentLog(tmp_path) as first, SegmentLog(tmp_path) as second:
        first.create_topic("late", TopicConfig(partitions=1))
        first.append("late", 0, [Record(value=b"x")])
        assert values(second, "late") == [b"x"]


def test_topic_names_that_cannot_be_file_names_are_refused(tmp_path: Path) -> None:
    with SegmentLog(tmp_path) as log, pytest.raises(ConfigurationError, match="A-Z"):
        log.create_topic("../escape", TopicConfig())


def test_a_segment_rolls_when_it_would_pass_segment_bytes(tmp_path: Path) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=1000))
        for i in range(40):
            log.append("t", 0, [Record(value=b"%03d" % i + b"x" * 60)])
        segments = sorted((tmp_path / "t-0").glob("*.log"))
        assert len(segments) > 3
        assert all(p.stat().st_size <= 1000 for p in segments)
        bases = [int(p.stem) for p in segments]
        assert bases[0] == 0
        assert [r.offset for r in log.read("t", 0, 0, 1000)] == list(range(40))
        assert values(log, "t")[bases[2]][:3] == b"%03d" % bases[2]


def test_a_batch_larger_than_segment_bytes_gets_a_segment_of_its_own(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=100))
        log.append("t", 0, [Record(value=b"small")])
        log.append("t", 0, [Record(value=b"x" * 500)])
        log.append("t", 0, [Record(value=b"after")])
        assert len(list((tmp_path / "t-0").glob("*.log"))) == 3
        assert values(log, "t") == [b"small", b"x" * 500, b"after"]


def test_a_segment_rolls_when_its_records_span_segment_ms(tmp_path: Path) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(segment_ms=1000))
        log.append("t", 0, [Record(value=b"a", timestamp=10_000)])
        log.append("t", 0, [Record(value=b"b", timestamp=10_999)])
        assert len(list((tmp_path / "t-0").glob("*.log"))) == 1
        log.append("t", 0, [Record(value=b"c", timestamp=11_000)])
        assert sorted(p.name for p in (tmp_path / "t-0").glob("*.log")) == [
            "00000000000000000000.log",
            "00000000000000000002.log",
        ]


def _fill(log: SegmentLog, count: int) -> None:
    log.create_topic("t", TopicConfig(segment_bytes=3000))
    for i in range(count):
        # Out-of-order timestamps, so that seeking by time needs the running maximum.
        ts = 1000 + i * 10 - (15 if i % 5 == 4 else 0)
        log.append("t", 0, [Record(value=b"%04d" % i + b"-" * 100, timestamp=ts)])


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate"])
def test_missing_or_inconsistent_indexes_are_rebuilt_from_the_log(
    tmp_path: Path, damage: str
) -> None:
    with SegmentLog(tmp_path) as log:
        _fill(log, 200)
        expected = values(log, "t")
        times = [log.offset_for_time("t", 0, ts) for ts in (0, 1500, 2035, 2990, 5000)]
    for path in (tmp_path / "t-0").glob("*index"):
        if damage == "delete":
            path.unlink()
        elif damage == "garbage":
            path.write_bytes(b"\x07" * 48)
        else:
            path.write_bytes(path.read_bytes()[:-5])
    with SegmentLog(tmp_path) as log:
        assert values(log, "t") == expected
        got = log.read_at("t", 0, [199, 0, 57, 58, 120])
        assert [r.value[:4] for r in got] == [
            b"0199",
            b"0000",
            b"0057",
            b"0058",
            b"0120",
        ]
        assert [
            log.offset_for_time("t", 0, ts) for ts in (0, 1500, 2035, 2990, 5000)
        ] == times
    folder = tmp_path / "t-0"
    assert all(
        p.stat().st_size % OFFSET_ENTRY.size == 0 for p in folder.glob("*.index")
    )
    assert all(
        p.stat().st_size % TIME_ENTRY.size == 0 for p in folder.glob("*.timeindex")
    )
    assert len(list((tmp_path / "t-0").glob("*.index"))) == len(
        list((tmp_path / "t-0").glob("*.log"))
    )


def _with_offset(times: bytearray, offset: int) -> tuple[int, ...]:
    """Time-index entry 1 naming ``offset``, its other fields as they were."""
    timestamp, _, *rest = TIME_ENTRY.unpack_from(times, TIME_ENTRY.size)
    return (timestamp, offset, *rest)


def test_an_index_entry_pointing_at_the_wrong_batch_is_noticed_on_read(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig())
        for i in range(300):
            log.append("t", 0, [Record(value=b"%04d" % i + b"-" * 100)])
        expected = values(log, "t")
    index = tmp_path / "t-0" / "00000000000000000000.index"
    data = bytearray(index.read_bytes())
    assert len(data) >= 64
    # Entry 1 now claims the batch after the one it points at: still sorted, so only
    # a read that uses it can tell.
    entry = int.from_bytes(data[16:24], "big") + 1
    data[16:24] = entry.to_bytes(8, "big")
    index.write_bytes(bytes(data))
    timeindex = index.with_suffix(".timeindex")
    times = bytearray(timeindex.read_bytes())
    TIME_ENTRY.pack_into(times, TIME_ENTRY.size, *_with_offset(times, entry))
    timeindex.write_bytes(bytes(times))
    with SegmentLog(tmp_path) as log:
        assert [r.value for r in log.read_at("t", 0, [entry, entry + 1])] == [
            expected[entry],
            expected[entry + 1],
        ]
        assert values(log, "t") == expected


def test_offset_for_time_uses_the_running_maximum_across_segments(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=200))
        stamps = [100, 400, 200, 300, 500, 250, 600, 50, 700]
        for ts in stamps:
            log.append("t", 0, [Record(value=b"v" * 40, timestamp=ts)])
        assert len(list((tmp_path / "t-0").glob("*.log"))) > 2
        for target in [0, 50, 100, 150, 250, 400, 450, 550, 650, 700, 701]:
            want = next((i for i, ts in enumerate(stamps) if ts >= target), None)
            assert log.offset_for_time("t", 0, target) == want, target


def test_a_closed_log_refuses_further_use(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path)
    log.create_topic("t", TopicConfig())
    log.append("t", 0, [Record(value=b"a")])
    log.close()
    log.close()
    with pytest.raises(LogClosedError, match="closed"):
        log.read("t", 0, 0)
    with pytest.raises(LogClosedError):
        log.append("t", 0, [Record(value=b"b")])


def test_a_zstd_topic_reads_back_what_was_written(tmp_path: Path) -> None:
    # With the zstandard package the batches are compressed; without it they are
    # written plainly, with one warning. Either way the records read back.
    config = TopicConfig(compression="zstd")
    records = [Record(key=b"k", value=b"compressible " * 50) for _ in range(5)]
    with SegmentLog(tmp_path) as log:
        log.create_topic("z", config)
        log.append("z", 0, records)
        log.append("z", 0, records[:1])
    with SegmentLog(tmp_path) as log:
        got = log.read("z", 0, 0)
    assert [r.value for r in got] == [r.value for r in records] + [records[0].value]
    # The written bytes, without the preallocated zeros after them.
    written = (tmp_path / "z-0" / "00000000000000000000.log").read_bytes()
    size = len(written.rstrip(b"\0"))
    if importlib.util.find_spec("zstandard") is None:
        assert size > 6 * 650
    else:
        assert size < 6 * 650


def test_a_wrong_time_index_entry_is_noticed_when_seeking_by_time(
    tmp_path: Path,
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig())
        for i in range(300):
            log.append("t", 0, [Record(value=b"-" * 100, timestamp=1000 + i)])
    index = tmp_path / "t-0" / "00000000000000000000.index"
    timeindex = index.with_suffix(".timeindex")
    data, times = bytearray(index.read_bytes()), bytearray(timeindex.read_bytes())
    entry = int.from_bytes(data[16:24], "big") + 1  # entry 1 now names a later batch
    data[16:24] = entry.to_bytes(8, "big")
    TIME_ENTRY.pack_into(times, TIME_ENTRY.size, *_with_offset(times, entry))
    index.write_bytes(bytes(data))
    timeindex.write_bytes(bytes(times))
    with SegmentLog(tmp_path) as log:
        # The seek starts from entry 1, which no longer matches its batch.
        assert log.offset_for_time("t", 0, 1000 + entry) == entry
        assert log.offset_for_time("t", 0, 1000 + entry - 1) == entry - 1
