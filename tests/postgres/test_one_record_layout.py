"""One record layout: the event store writes its rows as the log's records (key =
stream id, the packed ``$e`` header before the user headers), and rows written
before it did are rewritten once by a migration, every event read back the same
through the store and through the log."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from framework.log.backends.postgres import PostgresLog
from framework.log.backends.postgres.headers import encode_headers
from framework.log.config import TopicConfig
from framework.log.partitioner import partition_for
from framework.postgres.database import migrate_database
from framework.postgres.errors import DatabaseError
from framework.store.backends.postgres import PostgresEventStore
from framework.store.backends.postgres import store as pg_store
from framework.store.events import NewEvent, StoredEvent
from framework.store.ports import StreamAppend
from framework.store.records import to_record, to_stored_all
from framework.testing.store_contract import new_event
from tests.conftest import database_url
from tests.postgres.conftest import Closer, with_schema
from tests.postgres.shared_schema import (
    OldEvent,
    create_shared_schema,
    create_topic,
    write_log_record,
    write_old_events,
)

PARTITIONS = 8


def _old_events() -> list[OldEvent]:
    """Events of every shape the old store wrote: with and without user headers,
    non-ASCII texts, empty ids, several streams across partitions."""
    events = []
    for n in range(40):
        stream = f"stream-{n % 7}" if n % 5 else f"flux-ü-{n % 3}"
        events.append(
            OldEvent(
                stream_id=stream,
                event_id=uuid.UUID(int=(7 << 100) + n),
                name="ledger.Deposited" if n % 2 else "ledger.Geöffnet",
                version=1 + n % 3,
                data=b'{"amount":%d}' % n,
                timestamp_ms=1_700_000_000_000 + n,
                correlation_id="" if n % 4 == 0 else f"corr-{n}",
                causation_id=f"cause-{n}-ß",
                headers={} if n % 3 else {"channel": "web", "région": "eu-ü"},
            )
        )
    return events


def _expected(events: list[OldEvent]) -> dict[str, list[tuple[Any, ...]]]:
    """Each stream's events as the store returns them, but for positions."""
    streams: dict[str, list[tuple[Any, ...]]] = {}
    for event in events:
        stream = streams.setdefault(event.stream_id, [])
        stream.append(
            (
                event.event_id,
                event.stream_id,
                len(stream) + 1,
                event.name,
                event.version,
                event.data,
                event.timestamp_ms,
                event.correlation_id,
                event.causation_id,
                dict(event.headers),
            )
        )
    return streams


@pytest.fixture
def old_schema(schema: str) -> str:
    """A schema the shared migrations made, holding events and log records as
    the code of that time wrote them; yields its URL."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        create_shared_schema(conn, schema)
        with conn.transaction():
            events_topic = create_topic(conn, schema, "events", PARTITIONS)
            write_old_events(conn, schema, events_topic, PARTITIONS, _old_events())
            other = create_topic(conn, schema, "other", 1)
            write_log_record(conn, schema, other, (5, b"k", b"v", None))
            write_log_record(
                conn,
                schema,
                other,
                (6, None, b"w", encode_headers((("h", b"1"), ("h", b"2")))),
            )
    return with_schema(database_url(), schema)


def test_rows_the_old_store_wrote_read_back_the_same_after_the_migration(
    old_schema: str, closing: list[Closer]
) -> None:
    events = _old_events()
    applied, _ = migrate_database(old_schema)
    assert applied["store"] == [3]
    store = PostgresEventStore(old_schema)
    closing.append(store.close)
    log = PostgresLog(old_schema)
    closing.append(log.close)
    expected = _expected(events)
    for stream, stored in expected.items():
        read = store.read_stream(stream)
        assert [tuple(e)[:10] for e in read] == stored
        assert [(e.partition) for e in read] == [
            partition_for(stream, PARTITIONS)
        ] * len(stored)
        assert store.read_stream_data(stream) == [(s[3], s[4], s[5]) for s in stored]
    total = 0
    for partition in range(PARTITIONS):
        native = store.read_partition(partition)
        records = log.read("events", partition, 0)
        assert to_stored_all(records) == native
        assert list(store.iter_partition(partition)) == native
        assert all(
            r.key == r2.stream_id.encode()
            for r, r2 in zip(records, native, strict=True)
        )
        total += len(native)
    assert total == len(events)
    other = log.read("other", 0, 0)
    assert [(r.timestamp, r.key, r.value, r.headers) for r in other] == [
        (5, b"k", b"v", ()),
        (6, None, b"w", (("h", b"1"), ("h", b"2"))),
    ]
    # Streams go on where they were.
    appended = store.append("stream-1", [new_event()], expected_version=None)
    assert appended.first_version == len(expected["stream-1"]) + 1


def test_the_rewrite_makes_the_bytes_the_file_store_writes(
    old_schema: str,
) -> None:
    migrate_database(old_schema)
    schema = old_schema.rsplit("schema=", 1)[1]
    with psycopg.connect(database_url()) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT key, headers, stream_version, event_id, event_name, "
                "event_version, correlation_id, causation_id FROM {} "
                "WHERE stream_id IS NOT NULL"
            ).format(sql.Identifier(schema, "records"))
        ).fetchall()
    by_id = {e.event_id: e for e in _old_events()}
    assert len(rows) == len(by_id)
    for key, headers, version, event_id, *_ in rows:
        old = by_id[event_id]
        event = NewEvent(
            event_id=old.event_id,
            name=old.name,
            version=old.version,
            data=old.data,
            timestamp_ms=old.timestamp_ms,
            correlation_id=old.correlation_id,
            causation_id=old.causation_id,
            headers=old.headers,
        )
        record = to_record(old.stream_id.encode(), version, event)
        assert key == record.key
        assert headers == encode_headers(record.headers)


def test_a_row_that_does_not_fit_the_header_stops_the_migration_unchanged(
    schema: str,
) -> None:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        create_shared_schema(conn, schema)
        with conn.transaction():
            topic = create_topic(conn, schema, "events", 1)
            write_old_events(
                conn,
                schema,
                topic,
                1,
                [
                    OldEvent("s", uuid.uuid4(), "a", 1, b"{}", 1, "c", "c"),
                    OldEvent("s", uuid.uuid4(), "a", 70_000, b"{}", 2, "c", "c"),
                ],
            )
    url = with_schema(database_url(), schema)
    with pytest.raises(DatabaseError, match="does not fit the packed"):
        migrate_database(url)
    with psycopg.connect(database_url()) as conn:
        keys = conn.execute(
            sql.SQL("SELECT key FROM {}").format(sql.Identifier(schema, "records"))
        ).fetchall()
        recorded = conn.execute(
            "SELECT to_regclass(%s)", (f"{schema}.schema_migrations",)
        ).fetchone()
    assert keys == [(None,), (None,)]
    assert recorded == (None,)


def _appends() -> list[tuple[str, list[NewEvent], int | None]]:
    return [
        ("one-new", [new_event("a.One", channel="web")], 0),
        ("one-new", [new_event()], 1),
        ("one-new", [new_event("a.Any", x="ü")], None),
        ("many", [new_event("a.Many", n=str(i)) for i in range(5)], 0),
        ("many", [new_event() for _ in range(3)], None),
        ("many", [new_event() for _ in range(3)], 8),
    ]


@pytest.mark.parametrize("copy_from", [pg_store.COPY_FROM, 2])
def test_every_write_path_writes_the_log_layout(
    pg_url: str,
    closing: list[Closer],
    monkeypatch: pytest.MonkeyPatch,
    copy_from: int,
) -> None:
    monkeypatch.setattr(pg_store, "COPY_FROM", copy_from)
    store = PostgresEventStore(pg_url, config=TopicConfig(partitions=2))
    closing.append(store.close)
    for stream, events, expected in _appends():
        store.append(stream, events, expected)
    store.append_streams(
        [
            StreamAppend(
                stream_id="x", events=[new_event("b.X", k="v")], expected_version=0
            ),
            StreamAppend(
                stream_id="y",
                events=[new_event(), new_event()],
                expected_version=None,
            ),
        ]
    )
    for partition in range(2):
        native = store.read_partition(partition)
        records = store.log.read("events", partition, 0)
        assert to_stored_all(records) == native
        for record, event in zip(records, native, strict=True):
            assert record.key == event.stream_id.encode()
            assert encode_headers(record.headers) == encode_headers(
                to_record(record.key, event.stream_version, _as_new(event)).headers
            )


def _as_new(event: StoredEvent) -> NewEvent:
    return NewEvent(
        event_id=event.event_id,
        name=event.name,
        version=event.version,
        data=event.data,
        timestamp_ms=event.timestamp_ms,
        correlation_id=event.correlation_id,
        causation_id=event.causation_id,
        headers=event.headers,
    )
