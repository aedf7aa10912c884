"""A hypothesis state machine holds the segment log to a list per partition, across
appends, reopenings, a second instance writing to the same files, and lost indexes."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from framework.errors import EndOffsetMismatchError, OffsetOutOfRangeError
from framework.log.backends.segments import SegmentLog
from framework.log.config import TopicConfig
from framework.log.records import Record

PARTITIONS = st.integers(0, 1)
HEADERS = st.lists(
    st.tuples(st.sampled_from(["$v", "$id", "h"]), st.binary(max_size=6)), max_size=3
).map(tuple)
RECORDS = st.lists(
    st.builds(
        Record,
        value=st.binary(max_size=30),
        key=st.none() | st.binary(min_size=1, max_size=4),
        headers=HEADERS,
        timestamp=st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=4,
)
#: (key, value, headers, timestamp) per offset.
Stored = tuple[bytes | None, bytes, tuple[tuple[str, bytes], ...], int]


class SegmentLogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="segment-model-"))
        self.log = SegmentLog(self.root)
        self.other: SegmentLog | None = None
        # Small segments so that reads cross segments and appends roll often.
        self.log.create_topic("m", TopicConfig(partitions=2, segment_bytes=300))
        self.model: dict[int, list[Stored]] = {0: [], 1: []}

    def teardown(self) -> None:
        self.log.close()
        if self.other is not None:
            self.other.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _writer(self, use_other: bool) -> SegmentLog:
        if use_other:
            if self.other is None:
                self.other = SegmentLog(self.root)
            return self.other
        return self.log

    @rule(partition=PARTITIONS, records=RECORDS, use_other=st.booleans())
    def append(self, partition: int, records: list[Record], use_other: bool) -> None:
        result = self._writer(use_other).append("m", partition, records)
        assert result.base_offset == len(self.model[partition])
        assert result.count == len(records)
        self.model[partition].extend(
            (r.key, r.value, r.headers, r.timestamp or 0) for r in records
        )

    @rule(partition=PARTITIONS, records=RECORDS, off_by=st.integers(-2, 2))
    def conditional_append(
        self, partition: int, records: list[Record], off_by: int
    ) -> None:
        end = len(self.model[partition])
        expected = end + off_by
        if off_by:
            with pytest.raises(EndOffsetMismatchError):
                self.log.append("m", partition, records, expected_end_offset=expected)
            return
        self.log.append("m", partition, records, expected_end_offset=expected)
        self.model[partition].extend(
            (r.key, r.value, r.headers, r.timestamp or 0) for r in records
        )

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = SegmentLog(self.root)

    @rule()
    def lose_the_indexes(self) -> None:
        self.log.close()
        for path in self.root.glob("m-*/*index"):
            path.unlink()
        self.log = SegmentLog(self.root)

    @rule(partition=PARTITIONS, offset=st.integers(0, 60), limit=st.integers(1, 50))
    def read(self, partition: int, offset: int, limit: int) -> None:
        stored = self.model[partition]
        if offset > len(stored):
            with pytest.raises(OffsetOutOfRangeError):
                self.log.read("m", partition, offset, limit)
            return
        got = self.log.read("m", partition, offset, limit)
        want = stored[offset : offset + limit]
        assert [(r.key, r.value, r.headers, r.timestamp) for r in got] == want
        assert [r.offset for r in got] == list(range(offset, offset + len(want)))

    @rule(partition=PARTITIONS, picks=st.lists(st.integers(0, 10_000), max_size=6))
    def read_at(self, partition: int, picks: list[int]) -> None:
        stored = self.model[partition]
        if not stored:
            return
        offsets = [p % len(stored) for p in picks]
        got = self.log.read_at("m", partition, offsets)
        assert [r.offset for r in got] == offsets
        assert [(r.key, r.value, r.headers, r.timestamp) for r in got] == [
            stored[o] for o in offsets
        ]

    @rule(partition=PARTITIONS, timestamp=st.integers(-1, 10_001))
    def offset_for_time(self, partition: int, timestamp: int) -> None:
        stamps = [s[3] for s in self.model[partition]]
        want = next((i for i, ts in enumerate(stamps) if ts >= timestamp), None)
        assert self.log.offset_for_time("m", partition, timestamp) == want

    @invariant()
    def end_offsets_match(self) -> None:
        assert self.log.end_offsets("m") == {p: len(v) for p, v in self.model.items()}


SegmentLogModel.TestCase.settings = settings(
    max_examples=120, stateful_step_count=40, deadline=None
)
test_segment_log_behaves_like_a_list_per_partition = SegmentLogModel.TestCase
