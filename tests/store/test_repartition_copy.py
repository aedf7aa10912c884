"""``copy_topic``: every keyed record of a topic lands, as it was, in the
partition of its key in a topic of another partition count, with the records of
each key in their order; void records are left out. Also the switch record."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.errors import ConfigurationError, CorruptLogError
from framework.log.backends.memory import MemoryLog
from framework.log.config import TopicConfig
from framework.log.partitioner import partition_for
from framework.log.records import LogRecord, Record, is_void, void_record
from framework.store.records import stamp_of, stream_version_of, to_record
from framework.store.repartition import (
    SWITCH_FILE,
    TopicSwitch,
    copy_topic,
    current_events_topic,
    next_topic_name,
    read_switch,
    write_switch,
)
from framework.testing.store_contract import new_event


class VoidingLog(MemoryLog):
    """A memory log whose records at ``voided`` offsets read as the void records
    of a transaction that never committed (as the segment files leave them)."""

    def __init__(self, voided: set[tuple[int, int]]) -> None:
        super().__init__()
        self.voided = voided

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[LogRecord]:
        return [
            void_record(topic, partition, r.offset, r.timestamp)
            if topic == "source" and (partition, r.offset) in self.voided
            else r
            for r in super().read(topic, partition, offset, max_records)
        ]


record_lists = st.lists(
    st.tuples(
        st.sampled_from([b"a", b"b", b"stream-3", b"\xc3\xa9", b"x" * 40]),
        st.binary(max_size=8),
        st.lists(st.tuples(st.sampled_from(["$x", "h"]), st.binary(max_size=4))),
        st.integers(min_value=0, max_value=2**41),
    ),
    max_size=120,
)


def _stored(log: MemoryLog, topic: str) -> list[list[LogRecord]]:
    config = log.topic_config(topic)
    return [log.read(topic, p, 0, 10_000) for p in range(config.partitions)]


@given(
    records=record_lists,
    before=st.integers(min_value=1, max_value=6),
    after=st.integers(min_value=1, max_value=20),
    batch=st.integers(min_value=1, max_value=7),
    voided=st.sets(st.tuples(st.integers(0, 5), st.integers(0, 40)), max_size=10),
)
def test_copy_keeps_every_record_whole_in_its_keys_partition_and_order(
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]], int]],
    before: int,
    after: int,
    batch: int,
    voided: set[tuple[int, int]],
) -> None:
    log = VoidingLog(voided)
    log.create_topic("source", TopicConfig(partitions=before))
    for key, value, headers, timestamp in records:
        log.append(
            "source",
            partition_for(key, before),
            [Record(value, key, tuple(headers), timestamp)],
        )
    source = [r for part in _stored(log, "source") for r in part if not is_void(r)]

    ends = copy_topic(log, "source", "target", after, batch=batch)

    assert ends == log.end_offsets("source")
    assert log.topic_config("target").partitions == after
    copied = _stored(log, "target")
    assert sum(map(len, copied)) == len(source)
    for key in {r.key for r in source}:
        assert key is not None
        want = [(r.value, r.headers, r.timestamp) for r in source if r.key == key]
        (home,) = {partition_for(key, after)}
        got = [(r.value, r.headers, r.timestamp) for r in copied[home] if r.key == key]
        assert got == want
    for partition, part in enumerate(copied):
        assert all(partition_for(r.key or b"", after) == partition for r in part)


def test_a_keyless_record_is_refused_by_its_position() -> None:
    log = MemoryLog()
    log.create_topic("source", TopicConfig(partitions=2))
    log.append("source", 1, [Record(b"v", b"k"), Record(b"no key")])
    with pytest.raises(ConfigurationError, match="source/1 offset 1 has no key"):
        copy_topic(log, "source", "target", 4)


def test_a_target_with_records_is_refused() -> None:
    log = MemoryLog()
    log.create_topic("source", TopicConfig(partitions=1))
    log.create_topic("target", TopicConfig(partitions=2))
    log.append("target", 0, [Record(b"v", b"k")])
    with pytest.raises(ConfigurationError, match="'target' already holds records"):
        copy_topic(log, "source", "target", 2)


def test_next_topic_names_count_generations_of_the_settings_topic() -> None:
    assert next_topic_name("events", "events") == "events.g1"
    assert next_topic_name("events", "events.g1") == "events.g2"
    assert next_topic_name("events", "events.g41") == "events.g42"
    assert next_topic_name("orders", "orders.g3") == "orders.g4"
    assert next_topic_name("events", "other.g3") == "events.g1"


def _switch(*, done: bool) -> TopicSwitch:
    return TopicSwitch(
        base="events",
        source="events",
        topic="events.g1",
        source_ends={0: 10, 1: 7},
        topic_ends=dict.fromkeys(range(16), 1),
        projections={"balances": "continue", "other": "rebuild"},
        done=done,
    )


def test_the_switch_round_trips_and_names_the_topic_a_store_reads(
    tmp_path: Path,
) -> None:
    assert read_switch(tmp_path) is None
    assert current_events_topic(tmp_path, "events") == "events"
    write_switch(tmp_path, _switch(done=True))
    assert read_switch(tmp_path) == _switch(done=True)
    assert current_events_topic(tmp_path, "events") == "events.g1"
    # Another events topic of the same folder is not switched.
    assert current_events_topic(tmp_path, "orders") == "orders"
    write_switch(tmp_path, _switch(done=False))
    with pytest.raises(ConfigurationError, match="interrupted after its copy"):
        current_events_topic(tmp_path, "events")


def test_a_damaged_switch_is_refused_naming_its_file(tmp_path: Path) -> None:
    (tmp_path / SWITCH_FILE).write_text('{"format": 1, "base": "events"')
    with pytest.raises(CorruptLogError, match=SWITCH_FILE):
        read_switch(tmp_path)


def test_each_new_partition_receives_its_events_in_stamp_order() -> None:
    """Stamps grow along every new partition (as causal order needs), whatever
    source partitions the events come from."""
    log = MemoryLog()
    log.create_topic("source", TopicConfig(partitions=3))
    stamps = iter(range(1, 10_000))
    versions: dict[bytes, int] = {}
    for n in range(300):
        key = f"s-{n % 40}".encode()
        versions[key] = versions.get(key, 0) + 1
        record = to_record(key, versions[key], new_event(), next(stamps))
        log.append("source", partition_for(key, 3), [record])
    copy_topic(log, "source", "target", 5, batch=7)
    for part in _stored(log, "target"):
        stamps_in = [stamp_of(r) for r in part]
        assert stamps_in == sorted(stamps_in)
    for key, count in versions.items():
        got = [
            r
            for r in log.read("target", partition_for(key, 5), 0, 1000)
            if r.key == key
        ]
        assert [stream_version_of(r)[1] for r in got] == list(range(1, count + 1))
