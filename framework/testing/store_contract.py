"""The contract every event store passes, on every log backend.

A subclass provides ``make_store``: a callable returning an ``EventStore`` over the
same storage each time (a second call acts as a second process would).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from framework.errors import ConcurrencyError, StoreInputError
from framework.log.partitioner import partition_for
from framework.store import limits
from framework.store.events import NewEvent
from framework.store.ports import EventStore, StreamAppend
from framework.store.position import Position

MakeStore = Callable[[], EventStore]


def new_event(name: str = "test.Happened", **headers: str) -> NewEvent:
    event_id = uuid.uuid4()
    return NewEvent(
        event_id=event_id,
        name=name,
        version=1,
        data=b'{"n":1}',
        timestamp_ms=1_700_000_000_000,
        correlation_id="corr-1",
        causation_id=str(event_id),
        headers=headers,
    )


def _one(stream_id: Any = "s", **changes: Any) -> BadCase:
    return stream_id, [new_event()._replace(**changes)], 0


def _twice() -> BadCase:
    event = new_event()
    return "s", [event, new_event(), event], 0


BadCase = tuple[Any, list[NewEvent], Any]
BadAppend = Callable[[], BadCase]

#: Appends every backend refuses with ``StoreInputError``: case -> (the thing the
#: error names, the append).
BAD_APPENDS: dict[str, tuple[str, BadAppend]] = {
    "empty stream id": ("stream id", lambda: _one("")),
    "stream id with NUL": ("stream id", lambda: _one("a\x00b")),
    "stream id with a lone surrogate": ("stream id", lambda: _one("s\udc80")),
    "stream id too long": (
        "stream id",
        lambda: _one("s" * (limits.MAX_STREAM_ID_BYTES + 1)),
    ),
    "stream id too long in UTF-8": (
        "stream id",
        lambda: _one("é" * (limits.MAX_STREAM_ID_BYTES // 2 + 1)),
    ),
    "stream id of 1 MB": ("stream id", lambda: _one("s" * 1_000_000)),
    "stream id not text": ("stream id", lambda: _one(b"s")),
    "empty event name": ("event name", lambda: _one(name="")),
    "event name with NUL": ("event name", lambda: _one(name="a.\x00")),
    "event name too long": (
        "event name",
        lambda: _one(name="n" * (limits.MAX_EVENT_NAME_BYTES + 1)),
    ),
    "event version 0": ("event version", lambda: _one(version=0)),
    "event version past 16 bits": (
        "event version",
        lambda: _one(version=limits.MAX_EVENT_VERSION + 1),
    ),
    "negative timestamp": ("timestamp", lambda: _one(timestamp_ms=-1)),
    "timestamp of 2**63": ("timestamp", lambda: _one(timestamp_ms=2**63)),
    "timestamp past year 9999": (
        "timestamp",
        lambda: _one(timestamp_ms=limits.MAX_TIMESTAMP_MS + 1),
    ),
    "timestamp not an int": ("timestamp", lambda: _one(timestamp_ms=1.5)),
    "correlation id with NUL": ("correlation id", lambda: _one(correlation_id="c\x00")),
    "causation id too long": (
        "causation id",
        lambda: _one(causation_id="c" * (limits.MAX_ID_BYTES + 1)),
    ),
    "event id not a UUID": ("event id", lambda: _one(event_id="1234")),
    "data not bytes": ("event data", lambda: _one(data="text")),
    "data too large": (
        "event data",
        lambda: _one(data=bytes(limits.MAX_EVENT_DATA_BYTES + 1)),
    ),
    "empty header name": ("header name", lambda: _one(headers={"": "v"})),
    "header name of 64 KiB": ("header name", lambda: _one(headers={"h" * 65_536: "v"})),
    "header name with NUL": ("header name", lambda: _one(headers={"h\x00": "v"})),
    "header value too long": (
        "header value",
        lambda: _one(headers={"h": "v" * (limits.MAX_HEADER_VALUE_BYTES + 1)}),
    ),
    "header value not text": ("header value", lambda: _one(headers={"h": 1})),
    "too many headers": (
        "headers",
        lambda: _one(headers={f"h{n}": "v" for n in range(limits.MAX_HEADERS + 1)}),
    ),
    "negative expected version": ("expected_version", lambda: ("s", [new_event()], -1)),
    "expected version past 31 bits": (
        "expected_version",
        lambda: ("s", [new_event()], 2**31),
    ),
    "expected version not an int": (
        "expected_version",
        lambda: ("s", [new_event()], "1"),
    ),
    "the same event id twice in one append": ("event id", _twice),
}


class EventStoreContract:
    """Behaviour users rely on from the event store."""

    @pytest.fixture
    def store(self, make_store: MakeStore) -> EventStore:
        return make_store()

    def test_a_stream_reads_back_in_version_order_with_its_metadata(
        self, store: EventStore
    ) -> None:
        first = new_event("a.Opened", channel="web")
        second = new_event("a.Changed")
        store.append("s-1", [first], expected_version=0)
        store.append("s-1", [second], expected_version=1)
        events = store.read_stream("s-1")
        assert [e.stream_version for e in events] == [1, 2]
        assert [e.event_id for e in events] == [first.event_id, second.event_id]
        got = events[0]
        assert (got.name, got.version, got.data) == ("a.Opened", 1, b'{"n":1}')
        assert (got.correlation_id, got.causation_id) == ("corr-1", str(first.event_id))
        assert got.headers == {"channel": "web"}
        assert got.timestamp_ms == 1_700_000_000_000
        assert got.stream_id == "s-1"

    def test_a_stream_lives_in_the_partition_its_id_hashes_to(
        self, store: EventStore
    ) -> None:
        for n in range(20):
            stream = f"stream-{n}"
            appended = store.append(stream, [new_event()], expected_version=0)
            assert appended.partition == partition_for(stream, store.partitions)
            assert store.read_stream(stream)[0].partition == appended.partition

    def test_a_wrong_expected_version_raises_and_writes_nothing(
        self, store: EventStore
    ) -> None:
        store.append("s", [new_event(), new_event()], expected_version=0)
        before = store.end_position()
        with pytest.raises(ConcurrencyError) as info:
            store.append("s", [new_event()], expected_version=1)
        error = info.value
        assert (error.stream_id, error.expected_version, error.actual_version) == (
            "s",
            1,
            2,
        )
        assert "'s'" in str(error)
        assert error.retriable
        assert store.end_position() == before
        assert store.stream_version("s") == 2

    def test_expected_version_zero_means_the_stream_must_not_exist(
        self, store: EventStore
    ) -> None:
        store.append("s", [new_event()], expected_version=0)
        with pytest.raises(ConcurrencyError):
            store.append("s", [new_event()], expected_version=0)

    def test_expected_version_none_appends_at_any_version(
        self, store: EventStore
    ) -> None:
        store.append("s", [new_event()], expected_version=None)
        appended = store.append("s", [new_event()], expected_version=None)
        assert (appended.first_version, appended.last_version) == (2, 2)

    def test_a_multi_event_append_is_one_contiguous_batch(
        self, store: EventStore
    ) -> None:
        appended = store.append("s", [new_event() for _ in range(5)], 0)
        assert appended.last_offset - appended.first_offset == 4
        assert (appended.first_version, appended.last_version) == (1, 5)
        assert appended.position == Position({appended.partition: appended.last_offset})

    def test_reappending_stored_event_ids_is_a_no_op_returning_the_original(
        self, store: EventStore
    ) -> None:
        events = [new_event(), new_event()]
        original = store.append("s", events, expected_version=0)
        store.append("s", [new_event()], expected_version=2)
        before = store.end_position()
        again = store.append("s", events, expected_version=0)
        assert again.already_stored
        assert (again.first_offset, again.last_offset) == (
            original.first_offset,
            original.last_offset,
        )
        assert (again.first_version, again.last_version) == (1, 2)
        assert store.end_position() == before
        assert store.stream_version("s") == 3

    def test_reappending_at_the_tail_without_expected_version_is_a_no_op(
        self, store: EventStore
    ) -> None:
        events = [new_event()]
        original = store.append("s", events, expected_version=None)
        again = store.append("s", events, expected_version=None)
        assert again.already_stored
        assert again.first_offset == original.first_offset
        assert store.stream_version("s") == 1

    def test_other_event_ids_at_those_versions_are_a_conflict(
        self, store: EventStore
    ) -> None:
        store.append("s", [new_event()], expected_version=0)
        with pytest.raises(ConcurrencyError):
            store.append("s", [new_event()], expected_version=0)

    def test_read_stream_by_version_range(self, store: EventStore) -> None:
        store.append("s", [new_event() for _ in range(6)], expected_version=0)
        assert [e.stream_version for e in store.read_stream("s", from_version=3)] == [
            3,
            4,
            5,
            6,
        ]
        assert [e.stream_version for e in store.read_stream("s", to_version=2)] == [
            1,
            2,
        ]
        assert store.read_stream("missing") == []
        assert store.stream_version("missing") == 0

    def test_read_stream_data_is_what_a_replay_needs_in_version_order(
        self, store: EventStore
    ) -> None:
        events = [new_event(f"a.E{i % 3}") for i in range(5)]
        events[2] = events[2]._replace(version=4, data=b'{"n":3}')
        store.append("s", events[:2], expected_version=0)
        store.append("other", [new_event()], expected_version=0)
        store.append("s", events[2:], expected_version=2)
        stored = store.read_stream("s")
        expected = [
            (e.name, e.version, e.data, s.stamp)
            for e, s in zip(events, stored, strict=False)
        ]
        assert store.read_stream_data("s") == expected
        assert store.read_stream_data("s", to_version=3) == expected[:3]
        assert store.read_stream_data("missing") == []

    def test_a_partition_reads_in_offset_order_across_streams(
        self, store: EventStore
    ) -> None:
        streams = [f"s{n}" for n in range(30)]
        for round_ in range(2):
            for stream in streams:
                store.append(stream, [new_event()], expected_version=round_)
        for partition in range(store.partitions):
            events = list(store.iter_partition(partition))
            assert [e.offset for e in events] == list(range(len(events)))
            seen: dict[str, int] = {}
            for e in events:
                assert e.stream_version == seen.get(e.stream_id, 0) + 1
                seen[e.stream_id] = e.stream_version

    def test_end_position_covers_every_append(self, store: EventStore) -> None:
        position = Position()
        for n in range(10):
            appended = store.append(f"s{n}", [new_event()], expected_version=0)
            position = position.merge(appended.position)
        assert store.end_position().covers(position)
        assert store.end_position() == position

    def test_bad_arguments_are_refused_clearly(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="stream id"):
            store.append("", [new_event()], expected_version=0)
        with pytest.raises(ValueError, match="at least one event"):
            store.append("s", [], expected_version=0)
        with pytest.raises(ValueError, match="expected_version"):
            store.append("s", [new_event()], expected_version=-1)
        with pytest.raises(ValueError, match=r"stream id.*lone surrogate"):
            store.append("s\ud800", [new_event()], expected_version=0)
        assert store.read_stream("s") == []

    @pytest.mark.parametrize(
        ("what", "case"), list(BAD_APPENDS.values()), ids=list(BAD_APPENDS)
    )
    def test_a_bad_append_gets_the_same_clear_error_and_writes_nothing(
        self, store: EventStore, what: str, case: BadAppend
    ) -> None:
        store.append("existing", [new_event()], expected_version=0)
        before = store.end_position()
        stream_id, events, expected = case()
        with pytest.raises(StoreInputError) as info:
            store.append(stream_id, events, expected)
        assert info.value.what == what
        assert what in str(info.value)
        assert "nothing was written" in str(info.value)
        assert not info.value.retriable
        with pytest.raises(StoreInputError):
            store.append_streams(
                [
                    StreamAppend(
                        stream_id="other", events=[new_event()], expected_version=0
                    ),
                    StreamAppend(
                        stream_id=stream_id, events=events, expected_version=expected
                    ),
                ]
            )
        assert store.end_position() == before
        assert store.stream_version("other") == 0

    @staticmethod
    def _streams_in(
        store: EventStore, partition: int, count: int, tag: str
    ) -> list[str]:
        """``count`` stream ids that live in ``partition``."""
        found: list[str] = []
        n = 0
        while len(found) < count:
            stream_id = f"{tag}-{n}"
            if store.partition_of(stream_id) == partition:
                found.append(stream_id)
            n += 1
        return found

    def test_several_streams_are_saved_together_or_not_at_all(
        self, store: EventStore
    ) -> None:
        """Streams of one partition and of several, in one save: a conflict in any
        of them writes none of them."""
        last = store.partitions - 1
        same_a, same_b = self._streams_in(store, 0, 2, "same")
        (other,) = self._streams_in(store, last, 1, "other")
        store.append(same_b, [new_event()], expected_version=0)
        before = store.end_position()
        with pytest.raises(ConcurrencyError) as info:
            store.append_streams(
                [
                    StreamAppend(
                        stream_id=same_a, events=[new_event()], expected_version=0
                    ),
                    StreamAppend(
                        stream_id=other, events=[new_event()], expected_version=0
                    ),
                    StreamAppend(
                        stream_id=same_b, events=[new_event()], expected_version=0
                    ),
                ]
            )
        assert info.value.stream_id == same_b
        assert store.end_position() == before
        assert (store.stream_version(same_a), store.stream_version(other)) == (0, 0)
        written = store.append_streams(
            [
                StreamAppend(
                    stream_id=same_a, events=[new_event()], expected_version=0
                ),
                StreamAppend(
                    stream_id=other,
                    events=[new_event(), new_event()],
                    expected_version=0,
                ),
                StreamAppend(
                    stream_id=same_b, events=[new_event()], expected_version=1
                ),
            ]
        )
        assert [(a.stream_id, a.first_version, a.last_version) for a in written] == [
            (same_a, 1, 1),
            (other, 1, 2),
            (same_b, 2, 2),
        ]
        for appended in written:
            events = store.read_stream(appended.stream_id)
            assert events[-1].offset == appended.last_offset
            assert events[-1].partition == appended.partition
        assert store.end_position().covers(
            {a.partition: a.last_offset for a in written}
        )

    def test_a_retried_multi_stream_save_returns_the_original_positions(
        self, store: EventStore
    ) -> None:
        appends = [
            StreamAppend(stream_id=f"s{n}", events=[new_event()], expected_version=0)
            for n in range(6)
        ]
        first = store.append_streams(appends)
        before = store.end_position()
        again = store.append_streams(appends)
        assert all(a.already_stored for a in again)
        assert [(a.partition, a.first_offset) for a in again] == [
            (a.partition, a.first_offset) for a in first
        ]
        assert store.end_position() == before

    def test_a_reader_never_sees_part_of_a_multi_stream_save(
        self, make_store: MakeStore
    ) -> None:
        """Pairs saved together in two partitions, read by another store (another
        process): a pair seen in one partition is in the other one, read after."""
        writer, reader = make_store(), make_store()
        last = writer.partitions - 1
        assert last > 0, "the contract's stores have several partitions"
        debits = self._streams_in(writer, 0, 8, "debit")
        credits = self._streams_in(writer, last, 8, "credit")
        done = threading.Event()
        count = 40

        def save_pairs() -> None:
            try:
                for i in range(count):
                    pair = str(i)
                    writer.append_streams(
                        [
                            StreamAppend(
                                stream_id=debits[i % 8],
                                events=[new_event(pair=pair)],
                                expected_version=None,
                            ),
                            StreamAppend(
                                stream_id=credits[i % 8],
                                events=[new_event(pair=pair)],
                                expected_version=None,
                            ),
                        ]
                    )
            finally:
                done.set()

        def pairs(partition: int) -> set[str]:
            return {
                e.headers["pair"] for e in reader.read_partition(partition, 0, 100_000)
            }

        thread = threading.Thread(target=save_pairs)
        thread.start()
        missing: list[set[str]] = []
        reads = 0
        while not done.is_set() or reads < 2:
            reads += 1
            first, second = (0, last) if reads % 2 else (last, 0)
            seen = pairs(first)
            later = pairs(second)
            if not seen <= later:
                missing.append(seen - later)
        thread.join()
        assert not missing, missing[:3]
        assert pairs(0) == pairs(last) == {str(i) for i in range(count)}

    def test_one_event_id_in_two_streams_of_one_save_is_refused_before_writing(
        self, store: EventStore
    ) -> None:
        shared = new_event()
        before = store.end_position()
        with pytest.raises(StoreInputError, match="appears twice") as info:
            store.append_streams(
                [
                    StreamAppend(stream_id="a", events=[shared], expected_version=0),
                    StreamAppend(
                        stream_id="b",
                        events=[new_event(), shared],
                        expected_version=0,
                    ),
                ]
            )
        assert info.value.what == "event id"
        assert store.end_position() == before
        assert (store.stream_version("a"), store.stream_version("b")) == (0, 0)

    def test_values_at_the_limits_are_stored_and_read_back(
        self, store: EventStore
    ) -> None:
        longest = "s" * limits.MAX_STREAM_ID_BYTES
        wide = "é" * (limits.MAX_STREAM_ID_BYTES // 2)
        event = new_event("n" * limits.MAX_EVENT_NAME_BYTES)._replace(
            version=limits.MAX_EVENT_VERSION,
            timestamp_ms=limits.MAX_TIMESTAMP_MS,
            correlation_id="c" * limits.MAX_ID_BYTES,
            headers={
                f"h{n:02d}".ljust(limits.MAX_HEADER_NAME_BYTES, "x"): "v"
                * limits.MAX_HEADER_VALUE_BYTES
                for n in range(limits.MAX_HEADERS)
            },
        )
        earliest = new_event()._replace(timestamp_ms=0, data=b"")
        store.append(longest, [event], expected_version=0)
        store.append(wide, [earliest], expected_version=0)
        (got,) = store.read_stream(longest)
        assert (got.stream_id, got.name, got.version) == (
            longest,
            event.name,
            event.version,
        )
        assert (got.timestamp_ms, got.correlation_id) == (
            event.timestamp_ms,
            event.correlation_id,
        )
        assert dict(got.headers) == dict(event.headers)
        (first,) = store.read_stream(wide)
        assert (first.timestamp_ms, first.data) == (0, b"")

    @pytest.mark.parametrize("version", [0, -1, -5])
    def test_a_version_below_one_is_refused_on_every_read(
        self, store: EventStore, version: int
    ) -> None:
        store.append("s", [new_event() for _ in range(3)], expected_version=0)
        with pytest.raises(StoreInputError, match="to_version"):
            store.read_stream("s", to_version=version)
        with pytest.raises(StoreInputError, match="to_version"):
            store.read_stream_data("s", to_version=version)
        with pytest.raises(StoreInputError, match="from_version"):
            store.read_stream("s", from_version=version)

    def test_a_second_store_on_the_same_log_sees_writes_and_conflicts(
        self, make_store: MakeStore
    ) -> None:
        one, two = make_store(), make_store()
        one.append("s", [new_event()], expected_version=0)
        assert two.stream_version("s") == 1
        two.append("s", [new_event()], expected_version=1)
        with pytest.raises(ConcurrencyError) as info:
            one.append("s", [new_event()], expected_version=1)
        assert info.value.actual_version == 2
        assert [e.stream_version for e in one.read_stream("s")] == [1, 2]

    def test_racing_writers_of_one_stream_never_share_a_version(
        self, make_store: MakeStore
    ) -> None:
        stores = [make_store(), make_store()]
        wins: list[int] = []
        conflicts: list[int] = []
        lock = threading.Lock()

        def writer(store: EventStore) -> None:
            for _ in range(50):
                version = store.stream_version("hot")
                try:
                    store.append("hot", [new_event()], expected_version=version)
                except ConcurrencyError:
                    with lock:
                        conflicts.append(version)
                else:
                    with lock:
                        wins.append(version + 1)

        threads = [
            threading.Thread(target=writer, args=(stores[i % 2],)) for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = stores[0].read_stream("hot")
        assert sorted(wins) == [e.stream_version for e in stored]
        assert [e.stream_version for e in stored] == list(range(1, len(stored) + 1))
        assert len(wins) + len(conflicts) == 200
