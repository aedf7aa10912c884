"""The native store's rows are the log records every store writes: the log reads
them as ``LogEventStore`` lays events out, whichever way they were appended, and a
row that holds no event is refused by name."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from framework.errors import CorruptLogError
from framework.log.config import TopicConfig
from framework.log.records import Record
from framework.store.backends.postgres import PostgresEventStore
from framework.store.backends.postgres import store as pg_store
from framework.store.events import NewEvent
from framework.store.records import to_record, to_stored_all
from framework.testing.store_contract import new_event
from tests.conftest import database_url
from tests.postgres.fixtures import Closer

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(pg_url: str, closing: list[Closer]) -> PostgresEventStore:
    store = PostgresEventStore(pg_url, config=TopicConfig(partitions=2))
    closing.append(store.close)
    return store


def _log_view(store: PostgresEventStore, stream_id: str) -> list[Record]:
    records = store.log.read("events", store.partition_of(stream_id), 0)
    return [
        Record(r.value, r.key, r.headers, r.timestamp)
        for r in records
        if r.key == stream_id.encode()
    ]


_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=10,
)
_events = st.builds(
    NewEvent,
    event_id=st.just(uuid.UUID(int=0)),
    name=_text.filter(bool),
    version=st.integers(1, 65_535),
    data=st.binary(max_size=16),
    timestamp_ms=st.integers(0, 253_402_300_799_999),
    correlation_id=_text,
    causation_id=_text,
    headers=st.dictionaries(_text.filter(bool), _text, max_size=3),
    stamp=st.integers(0, 2**40),
)
#: Appends to one stream: (events, give the expected version?).
_appends = st.lists(
    st.tuples(st.lists(_events, min_size=1, max_size=5), st.booleans()),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(appends=_appends, copy_from=st.sampled_from([2, pg_store.COPY_FROM]))
def test_every_append_path_writes_the_records_log_event_store_lays_out(
    store: PostgresEventStore,
    monkeypatch: pytest.MonkeyPatch,
    appends: list[tuple[list[NewEvent], bool]],
    copy_from: int,
) -> None:
    monkeypatch.setattr(pg_store, "COPY_FROM", copy_from)
    stream = f"s-{uuid.uuid4()}"
    written: list[NewEvent] = []
    for generated, expected in appends:
        # Fresh ids: the examples share the store.
        events = [e._replace(event_id=uuid.uuid4()) for e in generated]
        store.append(stream, events, len(written) if expected else None)
        written += events
    # Single, multi-event and COPY appends, with and without an expected version
    # (whose versions the server writes into the headers): all one layout.
    stored = store.read_stream(stream)
    stamps = [e.stamp for e in stored]
    # The server stamps each append above the partition's last.
    assert stamps == sorted(set(stamps))
    assert all(stamp > 0 for stamp in stamps)
    key = stream.encode()
    assert _log_view(store, stream) == [
        to_record(key, version, event, stamp)
        for version, (event, stamp) in enumerate(zip(written, stamps, strict=True), 1)
    ]
    partition = store.log.read("events", store.partition_of(stream), 0)
    assert [e for e in to_stored_all(partition) if e.stream_id == stream] == stored
    replayed = [
        (e.name, e.version, e.data, stamp)
        for e, stamp in zip(written, stamps, strict=True)
    ]
    assert store.read_stream_data(stream) == replayed


def test_a_record_the_log_wrote_into_the_events_topic_is_refused_by_offset(
    store: PostgresEventStore,
) -> None:
    store.append("s", [new_event(), new_event()], expected_version=0)
    partition = store.partition_of("s")
    store.log.append("events", partition, [Record(b"{}", b"s", (("x", b"1"),))])
    with pytest.raises(CorruptLogError, match=f"events/{partition} offset 2 "):
        store.read_partition(partition)
    # Streaming hands out the events before it, then refuses it.
    events = store.iter_partition(partition)
    assert [next(events).stream_version, next(events).stream_version] == [1, 2]
    with pytest.raises(CorruptLogError, match="offset 2 "):
        next(events)
    assert len(store.read_stream("s")) == 2  # not the store's row: not in a stream


def test_damaged_headers_fail_a_load_naming_the_stream(
    store: PostgresEventStore, schema: str
) -> None:
    store.append("s", [new_event(), new_event()], expected_version=0)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET headers = substr(headers, 1, 40) "
                "WHERE stream_version = 2"
            ).format(sql.Identifier(schema, "records"))
        )
    with pytest.raises(CorruptLogError, match=r"stream 's' .*version 2"):
        store.read_stream_data("s")
    with pytest.raises(CorruptLogError, match="offset 1 "):
        store.read_stream("s")


def test_damaged_user_headers_fail_a_read_naming_the_record(
    store: PostgresEventStore, schema: str
) -> None:
    store.append("s", [new_event(region="eu")], expected_version=0)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        # A user header whose value is cut short.
        conn.execute(
            sql.SQL(
                "UPDATE {} SET headers = substr(headers, 1, length(headers) - 1)"
            ).format(sql.Identifier(schema, "records"))
        )
    partition = store.partition_of("s")
    with pytest.raises(CorruptLogError, match=f"events/{partition} offset 0 "):
        store.read_stream("s")
