"""The event store's fast paths keep its promises: long appends go in by COPY,
replay streams its pages, and statements reuse one cursor per connection."""

from __future__ import annotations

import threading

import psycopg
import pytest

from framework.errors import ConcurrencyError
from framework.log.config import TopicConfig
from framework.postgres.errors import StoreConnectionError
from framework.store.backends.postgres import PostgresEventStore
from framework.store.backends.postgres import store as pg_store
from framework.store.ports import StreamAppend
from framework.testing.store_contract import EventStoreContract, MakeStore, new_event
from tests.conftest import database_url
from tests.postgres.fixtures import Closer, with_schema

pytestmark = pytest.mark.postgres

LONG = pg_store.COPY_FROM


class TestPostgresEventStoreCopyingEveryBatch(EventStoreContract):
    """The whole contract with every append of two or more events through COPY."""

    @pytest.fixture
    def make_store(
        self, pg_url: str, closing: list[Closer], monkeypatch: pytest.MonkeyPatch
    ) -> MakeStore:
        monkeypatch.setattr(pg_store, "COPY_FROM", 2)

        def make() -> PostgresEventStore:
            store = PostgresEventStore(pg_url, config=TopicConfig(partitions=4))
            closing.append(store.close)
            return store

        return make


@pytest.fixture
def store(pg_url: str, closing: list[Closer]) -> PostgresEventStore:
    store = PostgresEventStore(pg_url, config=TopicConfig(partitions=4))
    closing.append(store.close)
    return store


def test_a_long_append_takes_contiguous_offsets_and_versions(
    store: PostgresEventStore,
) -> None:
    store.append("s", [new_event()], expected_version=0)
    events = [new_event(region="eu") for _ in range(LONG + 5)]
    appended = store.append("s", events, expected_version=1)
    assert (appended.first_version, appended.last_version) == (2, LONG + 6)
    assert appended.last_offset - appended.first_offset == LONG + 4
    stored = store.read_stream("s", from_version=2)
    assert [e.event_id for e in stored] == [e.event_id for e in events]
    assert [e.offset for e in stored] == list(
        range(appended.first_offset, appended.last_offset + 1)
    )
    assert all(e.headers == {"region": "eu"} for e in stored)


def test_a_long_append_at_a_stale_version_writes_nothing_and_takes_no_offsets(
    store: PostgresEventStore,
) -> None:
    store.append("s", [new_event(), new_event()], expected_version=0)
    before = store.end_position()
    for expected in (0, 1, 5):
        with pytest.raises(ConcurrencyError) as info:
            store.append("s", [new_event() for _ in range(LONG)], expected)
        assert info.value.actual_version == 2
    assert store.end_position() == before
    after = store.append("s", [new_event()], expected_version=2)
    partition = store.partition_of("s")
    assert after.first_offset == before[partition] + 1


def test_a_retried_long_append_returns_the_original_positions(
    store: PostgresEventStore,
) -> None:
    events = [new_event() for _ in range(LONG * 2)]
    first = store.append("s", events, expected_version=None)
    again = store.append("s", events, expected_version=None)
    assert again.already_stored
    assert (again.first_offset, again.last_version) == (
        first.first_offset,
        first.last_version,
    )
    assert store.stream_version("s") == LONG * 2


def test_a_long_append_with_an_id_stored_elsewhere_is_refused_whole(
    store: PostgresEventStore,
) -> None:
    taken = new_event()
    store.append("one", [taken], expected_version=0)
    before = store.end_position()
    with pytest.raises(ConcurrencyError, match="stored already elsewhere"):
        store.append("two", [new_event() for _ in range(LONG)] + [taken], 0)
    assert store.end_position() == before
    assert store.stream_version("two") == 0


def test_a_multi_stream_save_mixing_long_and_short_appends_is_all_or_nothing(
    store: PostgresEventStore,
) -> None:
    store.append("taken", [new_event()], expected_version=0)
    before = store.end_position()
    appends = [
        StreamAppend(
            stream_id=f"long-{n}",
            events=[new_event() for _ in range(LONG)],
            expected_version=0,
        )
        for n in range(4)
    ]
    clash = StreamAppend(stream_id="taken", events=[new_event()], expected_version=0)
    with pytest.raises(ConcurrencyError):
        store.append_streams([*appends, clash])
    assert store.end_position() == before
    written = store.append_streams(appends)
    assert [w.last_version for w in written] == [LONG] * 4


def test_iterating_a_partition_streams_every_page_in_offset_order(
    store: PostgresEventStore,
) -> None:
    for n in range(12):
        store.append(f"s{n}", [new_event() for _ in range(3)], expected_version=0)
    for partition in range(store.partitions):
        whole = store.read_partition(partition, 0, 10_000)
        paged = list(store.iter_partition(partition, 0, chunk=4))
        assert paged == whole
        assert [e.offset for e in paged] == list(range(len(paged)))
        if len(whole) > 2:
            assert list(store.iter_partition(partition, 2, chunk=1)) == whole[2:]


def test_an_abandoned_replay_gives_its_connection_back(
    schema: str, closing: list[Closer]
) -> None:
    store = PostgresEventStore(
        with_schema(database_url(), schema) + "&pool_min=1&pool_max=1",
        config=TopicConfig(partitions=1),
    )
    closing.append(store.close)
    store.append("s", [new_event() for _ in range(50)], expected_version=0)
    for _ in range(3):
        events = store.iter_partition(0, chunk=20)
        assert next(events).stream_version == 1
        events.close()
    # With one connection in the pool, these would time out had it leaked.
    store.append("s", [new_event()], expected_version=50)
    assert len(list(store.iter_partition(0))) == 51


def test_a_broken_connection_is_replaced_and_the_next_append_works(
    schema: str, closing: list[Closer]
) -> None:
    store = PostgresEventStore(
        with_schema(database_url(), schema) + "&pool_min=1&pool_max=1",
        config=TopicConfig(partitions=1),
    )
    closing.append(store.close)
    store.append("s", [new_event()], expected_version=0)
    with pytest.raises(StoreConnectionError), store.db.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert store.append("s", [new_event()], expected_version=1).last_version == 2
    assert store.stream_version("s") == 2


def test_a_connection_left_inside_a_transaction_is_not_used_again(
    schema: str, closing: list[Closer]
) -> None:
    store = PostgresEventStore(
        with_schema(database_url(), schema), config=TopicConfig(partitions=1)
    )
    closing.append(store.close)
    with store.db.cursor() as cur:
        cur.execute("BEGIN")
        left_open = cur.connection
    assert left_open.closed
    store.append("s", [new_event()], expected_version=0)
    # Committed on a fresh connection: another store sees it at once.
    other = PostgresEventStore(
        with_schema(database_url(), schema), config=TopicConfig(partitions=1)
    )
    closing.append(other.close)
    assert other.stream_version("s") == 1


def test_threads_share_the_short_statement_connection_and_the_pool(
    schema: str, closing: list[Closer]
) -> None:
    store = PostgresEventStore(
        with_schema(database_url(), schema) + "&pool_min=1&pool_max=1",
        config=TopicConfig(partitions=4),
    )
    closing.append(store.close)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(30):
                store.append(f"s{n}", [new_event()], expected_version=i)
        except Exception as exc:  # noqa: BLE001 - reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert [store.stream_version(f"s{n}") for n in range(4)] == [30] * 4


def test_an_append_on_a_dropped_connection_fails_clearly_and_the_next_one_works(
    schema: str, closing: list[Closer]
) -> None:
    store = PostgresEventStore(
        with_schema(database_url(), schema), config=TopicConfig(partitions=1)
    )
    closing.append(store.close)
    store.append("s", [new_event()], expected_version=0)
    with store.db.cursor() as cur:
        hot_pid = cur.connection.info.backend_pid
    # The server drops the connection between two appends (a restart, a timeout).
    with psycopg.connect(database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (hot_pid,))
    with pytest.raises(StoreConnectionError):
        store.append("s", [new_event()], expected_version=1)
    assert store.append("s", [new_event()], expected_version=1).last_version == 2
    assert store.stream_version("s") == 2
