"""The contract every ``Log`` backend passes: subclass ``LogContract``, give it a log.

A subclass provides the ``make_log`` fixture: a callable that opens the backend's log on
the same storage each time it is called (so a persistent backend is reopened), e.g.::

    class TestMemoryLog(LogContract):
        @pytest.fixture
        def make_log(self):
            log = MemoryLog()
            return lambda: log
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.errors import (
    EndOffsetMismatchError,
    OffsetOutOfRangeError,
    TopicConfigConflictError,
    UnknownPartitionError,
    UnknownTopicError,
)
from framework.log.config import TopicConfig
from framework.log.ports import Log
from framework.log.records import PartitionBatch, Record

MakeLog = Callable[[], Log]
_topic_numbers = itertools.count()


def rec(value: bytes, key: bytes | None = None, ts: int | None = None) -> Record:
    return Record(value=value, key=key, timestamp=ts, headers=(("h", b"v"),))


class LogContract:
    """Behaviour users rely on from any partitioned log."""

    @pytest.fixture
    def log(self, make_log: MakeLog) -> Iterator[Log]:
        log = make_log()
        log.create_topic("t", TopicConfig(partitions=3))
        yield log
        log.close()

    def test_created_topic_is_listed_with_its_config(self, make_log: MakeLog) -> None:
        log = make_log()
        config = TopicConfig(partitions=4, cleanup_policy="compact")
        log.create_topic("snapshots", config)
        assert "snapshots" in log.topics()
        assert log.topic_config("snapshots") == config
        log.close()

    def test_creating_a_topic_again_with_the_same_config_is_a_no_op(
        self, log: Log
    ) -> None:
        log.append("t", 0, [rec(b"a")])
        log.create_topic("t", TopicConfig(partitions=3))
        assert log.end_offset("t", 0) == 1

    def test_creating_a_topic_again_with_another_config_raises(self, log: Log) -> None:
        with pytest.raises(TopicConfigConflictError, match="'t'"):
            log.create_topic("t", TopicConfig(partitions=5))

    def test_ensure_topic_returns_the_stored_config(self, log: Log) -> None:
        assert log.ensure_topic("t", TopicConfig(partitions=3)).partitions == 3
        created = log.ensure_topic("new", TopicConfig(partitions=2))
        assert created.partitions == 2
        assert log.end_offsets("new") == {0: 0, 1: 0}

    def test_ensure_topic_with_another_partition_count_raises(self, log: Log) -> None:
        with pytest.raises(TopicConfigConflictError):
            log.ensure_topic("t", TopicConfig(partitions=7))

    def test_unknown_topic_raises_a_lookup_error_naming_it(self, log: Log) -> None:
        with pytest.raises(UnknownTopicError, match="'nope'") as info:
            log.append("nope", 0, [rec(b"a")])
        assert isinstance(info.value, LookupError)
        with pytest.raises(UnknownTopicError):
            log.topic_config("nope")
        with pytest.raises(UnknownTopicError):
            log.read("nope", 0, 0)

    def test_unknown_partition_raises_naming_the_valid_range(self, log: Log) -> None:
        with pytest.raises(UnknownPartitionError, match=r"0\.\.2"):
            log.append("t", 3, [rec(b"a")])
        with pytest.raises(UnknownPartitionError):
            log.read("t", -1, 0)

    def test_appends_get_contiguous_offsets_from_zero(self, log: Log) -> None:
        first = log.append("t", 1, [rec(b"a"), rec(b"b")])
        second = log.append("t", 1, [rec(b"c")])
        assert (first.base_offset, first.last_offset, first.count) == (0, 1, 2)
        assert (second.base_offset, second.last_offset) == (2, 2)
        assert [r.offset for r in log.read("t", 1, 0)] == [0, 1, 2]
        assert log.end_offset("t", 1) == 3

    def test_read_returns_records_whole_and_in_order(self, log: Log) -> None:
        log.append(
            "t",
            0,
            [
                Record(value=b"v1", key=b"k1", headers=(("a", b"1"), ("a", b"2"))),
                Record(value=b"", key=None, timestamp=1_700_000_000_123),
            ],
        )
        first, second = log.read("t", 0, 0)
        assert (first.topic, first.partition, first.offset) == ("t", 0, 0)
        assert (first.key, first.value, first.headers) == (
            b"k1",
            b"v1",
            (("a", b"1"), ("a", b"2")),
        )
        assert first.timestamp > 1_700_000_000_000
        assert (second.key, second.value, second.headers) == (None, b"", ())
        assert second.timestamp == 1_700_000_000_123

    def test_an_empty_batch_is_refused(self, log: Log) -> None:
        with pytest.raises(ValueError, match="at least one record"):
            log.append("t", 0, [])

    def test_read_honours_max_records_and_returns_nothing_at_the_end(
        self, log: Log
    ) -> None:
        log.append("t", 0, [rec(bytes([i])) for i in range(10)])
        assert [r.value for r in log.read("t", 0, 3, max_records=4)] == [
            bytes([i]) for i in range(3, 7)
        ]
        assert log.read("t", 0, 10) == []

    def test_read_past_the_end_raises_offset_out_of_range(self, log: Log) -> None:
        log.append("t", 0, [rec(b"a")])
        with pytest.raises(OffsetOutOfRangeError, match="offset 5") as info:
            log.read("t", 0, 5)
        assert info.value.end == 1

    def test_read_at_returns_exactly_the_asked_offsets_in_order(self, log: Log) -> None:
        log.append("t", 2, [rec(bytes([i])) for i in range(6)])
        got = log.read_at("t", 2, [4, 0, 5])
        assert [r.offset for r in got] == [4, 0, 5]
        assert [r.value for r in got] == [b"\x04", b"\x00", b"\x05"]
        with pytest.raises(OffsetOutOfRangeError):
            log.read_at("t", 2, [6])

    def test_partitions_are_independent(self, log: Log) -> None:
        log.append("t", 0, [rec(b"a")])
        log.append("t", 2, [rec(b"b"), rec(b"c")])
        assert log.end_offsets("t") == {0: 1, 1: 0, 2: 2}
        assert log.start_offset("t", 1) == 0

    def test_conditional_append_writes_when_the_end_offset_matches(
        self, log: Log
    ) -> None:
        log.append("t", 0, [rec(b"a")], expected_end_offset=0)
        log.append("t", 0, [rec(b"b")], expected_end_offset=1)
        assert log.end_offset("t", 0) == 2

    def test_conditional_append_with_a_stale_end_offset_writes_nothing(
        self, log: Log
    ) -> None:
        log.append("t", 0, [rec(b"a"), rec(b"b")])
        with pytest.raises(EndOffsetMismatchError) as info:
            log.append("t", 0, [rec(b"x")], expected_end_offset=1)
        assert (info.value.expected, info.value.actual) == (1, 2)
        assert info.value.retriable
        assert [r.value for r in log.read("t", 0, 0)] == [b"a", b"b"]

    def test_an_atomic_append_writes_every_batch_at_the_next_offsets(
        self, log: Log
    ) -> None:
        log.append("t", 1, [rec(b"before")])
        results = log.append_atomic(
            "t",
            [
                PartitionBatch(2, [rec(b"c1"), rec(b"c2")], 0),
                PartitionBatch(1, [rec(b"b1")], 1),
            ],
        )
        assert [(r.partition, r.base_offset, r.last_offset) for r in results] == [
            (2, 0, 1),
            (1, 1, 1),
        ]
        assert [r.value for r in log.read("t", 1, 0)] == [b"before", b"b1"]
        assert [r.value for r in log.read("t", 2, 0)] == [b"c1", b"c2"]
        assert [r.value for r in log.read_at("t", 2, [1, 0])] == [b"c2", b"c1"]
        assert log.end_offsets("t") == {0: 0, 1: 2, 2: 2}
        log.append("t", 2, [rec(b"after")], expected_end_offset=2)
        assert log.end_offset("t", 2) == 3

    def test_an_atomic_append_with_one_stale_end_offset_writes_nothing(
        self, log: Log
    ) -> None:
        log.append("t", 1, [rec(b"a")])
        with pytest.raises(EndOffsetMismatchError) as info:
            log.append_atomic(
                "t",
                [
                    PartitionBatch(0, [rec(b"x")], 0),
                    PartitionBatch(1, [rec(b"y")], 0),
                ],
            )
        assert (info.value.partition, info.value.expected, info.value.actual) == (
            1,
            0,
            1,
        )
        assert log.end_offsets("t") == {0: 0, 1: 1, 2: 0}
        assert [r.value for r in log.read("t", 1, 0)] == [b"a"]
        # The partitions are free again: appends go on at the old ends.
        log.append("t", 0, [rec(b"z")], expected_end_offset=0)
        assert [r.value for r in log.read("t", 0, 0)] == [b"z"]

    @pytest.mark.parametrize(
        ("batches", "message"),
        [
            ([], "at least one batch"),
            ([PartitionBatch(0, [])], "no records for partition 0"),
            (
                [PartitionBatch(1, [rec(b"a")]), PartitionBatch(1, [rec(b"b")])],
                "names partition 1 twice",
            ),
        ],
    )
    def test_an_atomic_append_refuses_bad_batches_and_writes_nothing(
        self, log: Log, batches: list[PartitionBatch], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            log.append_atomic("t", batches)
        assert log.end_offsets("t") == {0: 0, 1: 0, 2: 0}

    def test_an_atomic_append_to_an_unknown_partition_writes_nothing(
        self, log: Log
    ) -> None:
        with pytest.raises(UnknownPartitionError):
            log.append_atomic(
                "t", [PartitionBatch(0, [rec(b"a")]), PartitionBatch(3, [rec(b"b")])]
            )
        with pytest.raises(UnknownTopicError):
            log.append_atomic("nope", [PartitionBatch(0, [rec(b"a")])])
        assert log.end_offsets("t") == {0: 0, 1: 0, 2: 0}

    def test_a_reader_never_sees_part_of_an_atomic_append(self, log: Log) -> None:
        """Once a reader has seen transaction ``i`` in one partition, every later
        read of the other partition shows it too."""
        done = threading.Event()
        count = 60
        failures: list[str] = []

        def writer() -> None:
            try:
                for i in range(count):
                    value = str(i).encode()
                    log.append_atomic(
                        "t",
                        [
                            PartitionBatch(0, [rec(value)]),
                            PartitionBatch(2, [rec(value), rec(value)]),
                        ],
                    )
            finally:
                done.set()

        def last(partition: int) -> int:
            records = log.read("t", partition, 0, max_records=10_000)
            return int(records[-1].value) if records else -1

        thread = threading.Thread(target=writer)
        thread.start()
        reads = 0
        while not done.is_set() or reads < 2:
            reads += 1
            first, second = (0, 2) if reads % 2 else (2, 0)
            seen = last(first)
            later = last(second)
            if later < seen:
                failures.append(f"saw {seen} in {first} but {later} in {second}")
        thread.join()
        assert not failures, failures[:3]
        assert log.end_offsets("t") == {0: count, 1: 0, 2: 2 * count}

    def test_atomic_appends_and_single_appends_from_threads_stay_whole(
        self, log: Log
    ) -> None:
        def transactions() -> None:
            for i in range(20):
                log.append_atomic(
                    "t",
                    [
                        PartitionBatch(p, [rec(f"x{i}:{p}".encode())] * 2)
                        for p in (2, 0)
                    ],
                )

        def singles(partition: int) -> None:
            for i in range(20):
                log.append("t", partition, [rec(f"s{i}".encode())] * 3)

        threads = [
            threading.Thread(target=transactions),
            threading.Thread(target=transactions),
            threading.Thread(target=singles, args=(0,)),
            threading.Thread(target=singles, args=(2,)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for partition in (0, 2):
            records = log.read("t", partition, 0, max_records=1000)
            assert [r.offset for r in records] == list(range(140))
            # Every batch is whole: runs of one value, of its batch's length.
            values = [r.value for r in records]
            at = 0
            while at < len(values):
                size = 2 if values[at].startswith(b"x") else 3
                assert values[at : at + size] == [values[at]] * size
                at += size

    def test_offset_for_time_finds_the_first_record_at_or_after(self, log: Log) -> None:
        log.append("t", 0, [rec(b"a", ts=100), rec(b"b", ts=200)])
        log.append("t", 0, [rec(b"c", ts=200), rec(b"d", ts=300)])
        assert log.offset_for_time("t", 0, 0) == 0
        assert log.offset_for_time("t", 0, 100) == 0
        assert log.offset_for_time("t", 0, 150) == 1
        assert log.offset_for_time("t", 0, 200) == 1
        assert log.offset_for_time("t", 0, 300) == 3
        assert log.offset_for_time("t", 0, 301) is None
        assert log.offset_for_time("t", 1, 0) is None

    def test_offset_for_time_with_out_of_order_timestamps(self, log: Log) -> None:
        log.append("t", 0, [rec(b"a", ts=100), rec(b"b", ts=400), rec(b"c", ts=200)])
        log.append("t", 0, [rec(b"d", ts=300), rec(b"e", ts=500)])
        # The earliest offset whose timestamp is at or after the target.
        assert log.offset_for_time("t", 0, 250) == 1
        assert log.offset_for_time("t", 0, 450) == 4

    def test_concurrent_appends_keep_every_batch_whole_and_offsets_contiguous(
        self, log: Log
    ) -> None:
        def writer(n: int) -> None:
            for i in range(25):
                log.append("t", 0, [rec(f"{n}:{i}:{j}".encode()) for j in range(3)])

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        records = log.read("t", 0, 0, max_records=1000)
        assert [r.offset for r in records] == list(range(300))
        for start in range(0, 300, 3):
            prefixes = {r.value.rsplit(b":", 1)[0] for r in records[start : start + 3]}
            assert len(prefixes) == 1, "a batch was interleaved with another"
        assert len({r.value for r in records}) == 300

    def test_appended_records_survive_reopening(self, make_log: MakeLog) -> None:
        log = make_log()
        log.create_topic("d", TopicConfig(partitions=2))
        log.append("d", 1, [rec(b"a", key=b"k"), rec(b"b")])
        log.append_atomic(
            "d", [PartitionBatch(0, [rec(b"t0")]), PartitionBatch(1, [rec(b"t1")])]
        )
        log.close()
        reopened = make_log()
        assert [r.value for r in reopened.read("d", 0, 0)] == [b"t0"]
        assert reopened.end_offsets("d") == {0: 1, 1: 3}
        assert [(r.key, r.value) for r in reopened.read("d", 1, 0)] == [
            (b"k", b"a"),
            (None, b"b"),
            (None, b"t1"),
        ]
        assert reopened.topic_config("d").partitions == 2
        reopened.close()

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        batches=st.lists(
            st.tuples(
                # 2: one atomic append to both partitions.
                st.integers(0, 2),
                st.lists(st.binary(max_size=20), min_size=1, max_size=5),
                # Expect the end offset one below the real one (a lost race).
                st.booleans(),
            ),
            max_size=12,
        ),
        reads=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 40)), max_size=6),
    )
    def test_log_behaves_as_a_list_per_partition(
        self,
        make_log: MakeLog,
        batches: list[tuple[int, list[bytes], bool]],
        reads: list[tuple[int, int]],
    ) -> None:
        log = make_log()
        topic = f"model-{next(_topic_numbers)}"
        log.create_topic(topic, TopicConfig(partitions=2))
        model: dict[int, list[bytes]] = {0: [], 1: []}
        for target, values, stale in batches:
            partitions = [0, 1] if target == 2 else [target]
            expected = {p: len(model[p]) - (stale and p == 1) for p in partitions}
            if stale and 1 in partitions:
                with pytest.raises(EndOffsetMismatchError):
                    log.append_atomic(
                        topic,
                        [
                            PartitionBatch(p, [rec(v) for v in values], expected[p])
                            for p in partitions
                        ],
                    )
                continue
            if target == 2:
                results = log.append_atomic(
                    topic,
                    [
                        PartitionBatch(p, [rec(v) for v in values], expected[p])
                        for p in partitions
                    ],
                )
            else:
                results = [log.append(topic, target, [rec(v) for v in values])]
            for p, result in zip(partitions, results, strict=True):
                assert result.base_offset == len(model[p])
                model[p].extend(values)
        for partition, offset in reads:
            if offset > len(model[partition]):
                with pytest.raises(OffsetOutOfRangeError):
                    log.read(topic, partition, offset)
            else:
                got = log.read(topic, partition, offset, max_records=1000)
                assert [r.value for r in got] == model[partition][offset:]
        assert log.end_offsets(topic) == {p: len(v) for p, v in model.items()}
        log.close()
