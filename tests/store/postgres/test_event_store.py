"""PostgresEventStore passes the event-store contract, and its rows read as a log."""

from __future__ import annotations

import pytest

from framework.errors import ConcurrencyError
from framework.log.backends.postgres import PostgresLog
from framework.log.config import TopicConfig
from framework.store.backends.postgres import PostgresEventStore
from framework.store.event_store import LogEventStore
from framework.store.ports import StreamAppend
from framework.store.records import to_stored
from framework.testing.store_contract import EventStoreContract, MakeStore, new_event
from tests.postgres.fixtures import Closer

pytestmark = pytest.mark.postgres


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def make_store(self, pg_url: str, closing: list[Closer]) -> MakeStore:
        def make() -> PostgresEventStore:
            store = PostgresEventStore(pg_url, config=TopicConfig(partitions=4))
            closing.append(store.close)
            return store

        return make


class TestLogEventStoreOnPostgresLog(EventStoreContract):
    @pytest.fixture
    def make_store(self, pg_url: str, closing: list[Closer]) -> MakeStore:
        def make() -> LogEventStore:
            store = LogEventStore(PostgresLog(pg_url), config=TopicConfig(partitions=4))
            closing.append(store.close)
            return store

        return make


@pytest.fixture
def store(pg_url: str, closing: list[Closer]) -> PostgresEventStore:
    store = PostgresEventStore(pg_url, config=TopicConfig(partitions=4))
    closing.append(store.close)
    return store


def test_native_rows_read_through_the_log_as_event_store_records(
    store: PostgresEventStore,
) -> None:
    first = new_event("a.Opened", channel="web", region="eu")
    store.append("s-1", [first, new_event()], expected_version=0)
    native = store.read_stream("s-1")
    partition = store.partition_of("s-1")
    records = store.log.read("events", partition, 0)
    assert [to_stored(r) for r in records] == native
    assert records[0].key == b"s-1"


def test_several_streams_are_saved_in_one_transaction_or_not_at_all(
    store: PostgresEventStore,
) -> None:
    store.append("b", [new_event()], expected_version=0)
    before = store.end_position()
    with pytest.raises(ConcurrencyError) as info:
        store.append_streams(
            [
                StreamAppend(stream_id="a", events=[new_event()], expected_version=0),
                StreamAppend(stream_id="b", events=[new_event()], expected_version=0),
                StreamAppend(stream_id="c", events=[new_event()], expected_version=0),
            ]
        )
    assert info.value.stream_id == "b"
    assert info.value.actual_version == 1
    assert store.end_position() == before
    assert store.stream_version("a") == 0


def test_a_retried_multi_stream_save_returns_the_original_positions(
    store: PostgresEventStore,
) -> None:
    appends = [
        StreamAppend(stream_id=f"s{n}", events=[new_event()], expected_version=0)
        for n in range(6)
    ]
    first = store.append_streams(appends)
    again = store.append_streams(appends)
    assert all(a.already_stored for a in again)
    assert [(a.partition, a.first_offset) for a in again] == [
        (a.partition, a.first_offset) for a in first
    ]


def test_an_expected_version_ahead_of_the_stream_is_a_conflict(
    store: PostgresEventStore,
) -> None:
    store.append("s", [new_event()], expected_version=0)
    with pytest.raises(ConcurrencyError) as info:
        store.append("s", [new_event()], expected_version=5)
    assert (info.value.expected_version, info.value.actual_version) == (5, 1)


def test_an_event_id_stored_in_another_stream_is_refused(
    store: PostgresEventStore,
) -> None:
    event = new_event()
    store.append("one", [event], expected_version=0)
    with pytest.raises(ConcurrencyError, match="stored already elsewhere"):
        store.append("two", [event], expected_version=0)
