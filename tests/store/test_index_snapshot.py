"""Stream-index snapshots make reopening cheap and are never trusted blindly."""

from __future__ import annotations

import zlib
from array import array
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.log.backends.memory import MemoryLog
from framework.log.backends.segments import SegmentLog
from framework.log.config import TopicConfig
from framework.log.records import LogRecord
from framework.store import index as index_module
from framework.store import index_snapshot
from framework.store.event_store import LogEventStore
from framework.testing.store_contract import new_event

streams = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.lists(st.integers(0, 2**62), min_size=1, max_size=5).map(
        lambda xs: array("q", xs)
    ),
    max_size=8,
)


@given(streams, st.integers(0, 2**62))
def test_a_snapshot_round_trips(found: dict[str, array[int]], next_offset: int) -> None:
    assert index_snapshot.decode(index_snapshot.encode(found, next_offset)) == (
        found,
        next_offset,
    )


@given(streams, st.integers(0, 2**40), st.data())
def test_a_damaged_snapshot_is_rejected(
    found: dict[str, array[int]], next_offset: int, data: st.DataObject
) -> None:
    raw = bytearray(index_snapshot.encode(found, next_offset))
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    assert index_snapshot.decode(bytes(raw)) is None
    assert index_snapshot.decode(bytes(raw[:-1])) is None


class CountingLog(MemoryLog):
    """Counts the records handed out by ``read`` (what a catch-up scans)."""

    def __init__(self) -> None:
        super().__init__()
        self.records_read = 0

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[LogRecord]:
        records = super().read(topic, partition, offset, max_records)
        self.records_read += len(records)
        return records


def fill(store: LogEventStore, count: int) -> None:
    for n in range(count):
        store.append(f"s{n % 17}", [new_event()], expected_version=n // 17)


def test_reopening_reads_the_snapshot_and_only_the_tail(tmp_path: Path) -> None:
    log = CountingLog()
    config = TopicConfig(partitions=2)
    first = LogEventStore(log, config=config, index_dir=tmp_path)
    fill(first, 170)
    first.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events-0.streams",
        "events-1.streams",
    ]
    other_process = LogEventStore(log, config=config)
    for n in range(17):  # appended after the snapshot was written
        other_process.append(f"s{n}", [new_event()], expected_version=10)
    log.records_read = 0
    reopened = LogEventStore(log, config=config, index_dir=tmp_path)
    for n in range(17):
        assert reopened.stream_version(f"s{n}") == 11
    assert log.records_read == 17
    assert [e.stream_version for e in reopened.read_stream("s3")] == list(range(1, 12))


def test_a_snapshot_of_another_log_is_ignored_and_the_index_rebuilt(
    tmp_path: Path,
) -> None:
    config = TopicConfig(partitions=1)
    other = LogEventStore(MemoryLog(), config=config, index_dir=tmp_path)
    fill(other, 40)
    other.close()
    log = MemoryLog()
    fill(LogEventStore(log, config=config), 20)
    reopened = LogEventStore(log, config=config, index_dir=tmp_path)
    assert reopened.stream_version("s0") == 2
    assert reopened.stream_version("s16") == 1


def test_a_corrupt_snapshot_file_is_ignored(tmp_path: Path) -> None:
    log = MemoryLog()
    config = TopicConfig(partitions=1)
    store = LogEventStore(log, config=config, index_dir=tmp_path)
    fill(store, 34)
    store.close()
    path = tmp_path / "events-0.streams"
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    reopened = LogEventStore(log, config=config, index_dir=tmp_path)
    assert reopened.stream_version("s1") == 2


def test_a_snapshot_keeps_stream_ids_of_any_length() -> None:
    long_id = "é" * 40_000  # 80,000 bytes of UTF-8: past a 16-bit length
    found = {long_id: array("q", [3, 9]), "short": array("q", [4])}
    assert index_snapshot.decode(index_snapshot.encode(found, 10)) == (found, 10)


@given(st.binary(max_size=200), st.integers(0, 2**62))
def test_any_bytes_with_a_valid_checksum_decode_or_are_rejected(
    body: bytes, next_offset: int
) -> None:
    # A snapshot whose CRC matches but whose counts lie (written by a faulty
    # program, or a collision) is rejected, never an exception.
    header = index_snapshot._HEADER.pack(
        index_snapshot.MAGIC, index_snapshot.FORMAT_VERSION, next_offset, 3
    )
    raw = header + body
    raw += index_snapshot._CRC.pack(zlib.crc32(raw))
    result = index_snapshot.decode(raw)
    assert result is None or isinstance(result[0], dict)


def _file_store(root: Path) -> LogEventStore:
    return LogEventStore(
        SegmentLog(root / "log"), config=TopicConfig(), index_dir=root / "index"
    )


def test_a_snapshot_that_cannot_be_written_never_fails_an_append_nor_its_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(index_module, "SNAPSHOT_EVERY", 5)
    # A folder where the snapshot file should go: every write of it fails.
    (tmp_path / "index" / "events-0.streams").mkdir(parents=True)
    store = _file_store(tmp_path)
    log = store.log
    assert isinstance(log, SegmentLog)
    for n in range(12):
        before = log.fsync_count
        store.append("s", [new_event()], expected_version=n)
        assert log.fsync_count == before + 1  # each append was made durable
    assert "stream-index snapshot" in caplog.text
    store.close()
    assert not list((tmp_path / "index").glob(".*.tmp"))
    reopened = _file_store(tmp_path)
    assert [e.stream_version for e in reopened.read_stream("s")] == list(range(1, 13))
    reopened.append("s", [new_event()], expected_version=12)
    reopened.close()


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"FWSI",
        b"\x00" * 64,
        b"FWSI\x01\x00" + b"\xff" * 40,
    ],
    ids=["empty", "magic only", "zeros", "garbage after the magic"],
)
def test_a_damaged_snapshot_never_blocks_opening_a_file_store(
    tmp_path: Path, damage: bytes
) -> None:
    store = _file_store(tmp_path)
    fill(store, 40)
    store.close()
    (tmp_path / "index" / "events-0.streams").write_bytes(damage)
    reopened = _file_store(tmp_path)
    assert reopened.stream_version("s0") == 3
    reopened.close()


def test_a_snapshot_naming_offsets_the_log_does_not_hold_is_rebuilt(
    tmp_path: Path,
) -> None:
    store = _file_store(tmp_path)
    fill(store, 40)
    store.close()
    path = tmp_path / "index" / "events-0.streams"
    streams, _ = index_snapshot.read(path) or ({}, 0)
    streams["s0"] = array("q", [999, 1000])  # the CRC is right, the offsets wrong
    index_snapshot.write(path, streams, 30)
    reopened = _file_store(tmp_path)
    assert [e.stream_version for e in reopened.read_stream("s0")] == [1, 2, 3]
    reopened.close()
