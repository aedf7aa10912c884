"""Store migration 3: events written in the old row layout (event columns, no key)
come out of the migration as the log records the store now writes (key = stream
id, headers = the ``$e`` header then the user headers), and read back equal
through the store and through the log; a row it cannot rewrite, or a migrating
process killed midway, leaves the schema as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from framework.errors import ConcurrencyError, StoreError
from framework.log.backends.postgres import PostgresLog
from framework.log.backends.postgres.headers import encode_headers
from framework.log.partitioner import partition_for
from framework.postgres.database import migrate_database
from framework.postgres.migration import current_versions
from framework.store.backends.postgres import PostgresEventStore
from framework.store.backends.postgres.params import event_headers
from framework.store.events import NewEvent, StoredEvent
from framework.store.limits import (
    MAX_EVENT_NAME_BYTES,
    MAX_EVENT_VERSION,
    MAX_ID_BYTES,
    MAX_STREAM_ID_BYTES,
)
from framework.store.records import META, to_stored_all
from framework.testing.store_contract import new_event
from tests.conftest import database_url
from tests.postgres.fixtures import drop_schema, until, with_schema
from tests.postgres.shared_schema import (
    OldEvent,
    create_schema_at_store_2,
    create_shared_schema,
    create_topic,
    write_log_record,
    write_old_events,
)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 4

#: How a released schema was made: the shared list, or per-subsystem lists with
#: the store at its migration 2.
BUILDERS: dict[str, Callable[[psycopg.Connection[Any], str], None]] = {
    "shared list": create_shared_schema,
    "store at migration 2": create_schema_at_store_2,
}


def _old(stream_id: str, **fields: Any) -> OldEvent:
    event_id = uuid.uuid4()
    defaults: dict[str, Any] = {
        "event_id": event_id,
        "name": "shop.OrderPlaced",
        "version": 1,
        "data": b'{"n":1}',
        "timestamp_ms": 1_700_000_000_000 + len(stream_id),
        "correlation_id": "corr-1",
        "causation_id": str(event_id),
    }
    return OldEvent(stream_id=stream_id, **{**defaults, **fields})


def _edge_cases() -> list[OldEvent]:
    """User headers, unicode, empty and max-length texts, the top schema version."""
    longest_id = "é" * (MAX_STREAM_ID_BYTES // 2)
    return [
        _old("order-1"),
        _old("order-1", headers={"region": "eu", "ünï": "välue"}, data=b""),
        _old("order-2", correlation_id="", causation_id=""),
        _old("order-1", name="shop.OrderShipped", version=MAX_EVENT_VERSION),
        _old("счёт-ü-1", name="ledger.Überweisung", headers={"ключ": "значение"}),
        _old(
            longest_id,
            name="n" * MAX_EVENT_NAME_BYTES,
            correlation_id="ß" * (MAX_ID_BYTES // 2),
            causation_id="c" * MAX_ID_BYTES,
            headers={"h" * 255: "v" * 65_536, "second": ""},
            timestamp_ms=253_402_300_799_999,
        ),
        _old(longest_id, data=b"\x00" * 1000),
    ]


def _expected(events: Sequence[OldEvent]) -> list[StoredEvent]:
    """The stored events ``write_old_events`` made of ``events``, in write order."""
    versions: Counter[str] = Counter()
    offsets: Counter[int] = Counter()
    out = []
    for e in events:
        partition = partition_for(e.stream_id, PARTITIONS)
        versions[e.stream_id] += 1
        out.append(
            StoredEvent(
                event_id=e.event_id,
                stream_id=e.stream_id,
                stream_version=versions[e.stream_id],
                name=e.name,
                version=e.version,
                data=e.data,
                timestamp_ms=e.timestamp_ms,
                correlation_id=e.correlation_id,
                causation_id=e.causation_id,
                headers=dict(e.headers),
                # Stored before stamps.
                stamp=0,
                partition=partition,
                offset=offsets[partition],
            )
        )
        offsets[partition] += 1
    return out


#: Records appended through the log alone, to a topic of their own.
LOG_RECORDS = [
    (1_700_000_000_001, b"k", b"v", encode_headers((("a", b"1"), ("a", b"2")))),
    (1_700_000_000_002, None, b"v2", None),
]


def _build(
    builder: str, schema: str, events: Sequence[OldEvent], *, log_records: bool = True
) -> str:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        BUILDERS[builder](conn, schema)
        with conn.transaction():
            topic_id = create_topic(conn, schema, "events", PARTITIONS)
            write_old_events(conn, schema, topic_id, PARTITIONS, events)
            if log_records:
                other = create_topic(conn, schema, "other", 1)
                for record in LOG_RECORDS:
                    write_log_record(conn, schema, other, record)
    return with_schema(database_url(), schema)


def _store_version(schema: str) -> int:
    with psycopg.connect(database_url(), autocommit=True) as conn:
        return current_versions(conn, schema)["store"]


def _rows(schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url()) as conn:
        return conn.execute(
            sql.SQL(
                'SELECT partition, "offset", key, headers, stream_version, event_id '
                "FROM {} WHERE stream_version IS NOT NULL ORDER BY 1, 2"
            ).format(sql.Identifier(schema, "records"))
        ).fetchall()


def _columns(schema: str) -> list[str]:
    with psycopg.connect(database_url()) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'records' "
            "ORDER BY ordinal_position",
            (schema,),
        ).fetchall()
    return [str(r[0]) for r in rows]


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


def _check_reads(url: str, schema: str, expected: list[StoredEvent]) -> None:
    """Every way of reading gives ``expected``, and each row holds the bytes the
    store writes today for its event."""
    by_position = sorted(expected, key=lambda e: (e.partition, e.offset))
    rows = _rows(schema)
    positions = [(e.partition, e.offset) for e in by_position]
    assert [(r[0], r[1]) for r in rows] == positions
    for row, event in zip(rows, by_position, strict=True):
        assert row[2] == event.stream_id.encode()
        assert row[3] == event_headers(event.stream_version, _as_new(event))
        assert (row[4], row[5]) == (event.stream_version, event.event_id)
    store = PostgresEventStore(url)
    try:
        for stream in {e.stream_id for e in expected}:
            mine = [e for e in expected if e.stream_id == stream]
            assert store.read_stream(stream) == mine
            assert store.read_stream_data(stream) == [
                (e.name, e.version, e.data, 0) for e in mine
            ]
            assert store.stream_version(stream) == len(mine)
        for partition in range(PARTITIONS):
            mine = [e for e in by_position if e.partition == partition]
            assert store.read_partition(partition) == mine
            assert list(store.iter_partition(partition, chunk=2)) == mine
            records = store.log.read("events", partition, 0)
            assert to_stored_all(records) == mine
            assert all(r.headers[0][0] == META for r in records)
            assert [r.key for r in records] == [e.stream_id.encode() for e in mine]
    finally:
        store.close()


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_events_written_before_read_back_equal_after_the_layout_migration(
    schema: str, builder: str
) -> None:
    events = _edge_cases()
    url = _build(builder, schema, events)
    assert _store_version(schema) == 2
    migrate_database(url)
    assert _store_version(schema) == 4
    assert [
        c
        for c in _columns(schema)
        if c in {"stream_id", "event_name", "event_version", "correlation_id"}
    ] == []
    _check_reads(url, schema, _expected(events))
    log = PostgresLog(url)
    try:
        other = log.read("other", 0, 0)
    finally:
        log.close()
    assert [(r.timestamp, r.key, r.value, r.headers) for r in other] == [
        (1_700_000_000_001, b"k", b"v", (("a", b"1"), ("a", b"2"))),
        (1_700_000_000_002, None, b"v2", ()),
    ]


def test_migrated_streams_keep_their_promises_on_the_next_appends(
    schema: str,
) -> None:
    events = _edge_cases()
    url = _build("shared list", schema, events)
    migrate_database(url)
    stored = _expected(events)
    first = stored[0]
    store = PostgresEventStore(url)
    try:
        # The stream index covers migrated rows: a stale expected version
        # conflicts, and a retry of a migrated event is recognised.
        with pytest.raises(ConcurrencyError) as info:
            store.append("order-1", [new_event()], expected_version=1)
        assert info.value.actual_version == 3
        again = store.append("order-1", [_as_new(first)], expected_version=0)
        assert again.already_stored
        assert (again.partition, again.first_offset) == (first.partition, first.offset)
        with pytest.raises(ConcurrencyError, match="stored already elsewhere"):
            store.append("order-9", [_as_new(first)], expected_version=0)
        for expected_version in (3, None):
            appended = store.append(
                "order-1", [new_event(), new_event()], expected_version
            )
            assert appended.first_version == appended.last_version - 1
        assert store.stream_version("order-1") == 7
        assert [e.stream_version for e in store.read_stream("order-1")] == list(
            range(1, 8)
        )
    finally:
        store.close()


_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
_old_events = st.lists(
    st.builds(
        _old,
        stream_id=st.sampled_from(["a", "b", "ü-c", "d" * 40]),
        name=_text.filter(bool),
        version=st.integers(1, MAX_EVENT_VERSION),
        data=st.binary(max_size=20),
        correlation_id=_text,
        causation_id=_text,
        headers=st.dictionaries(_text, _text, max_size=3),
        timestamp_ms=st.integers(0, 253_402_300_799_999),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=_old_events)
def test_any_old_events_migrate_to_the_rows_the_store_writes_now(
    schema: str, events: list[OldEvent]
) -> None:
    drop_schema(schema)  # a fresh one per example
    url = _build("store at migration 2", schema, events, log_records=False)
    migrate_database(url)
    _check_reads(url, schema, _expected(events))


def test_a_row_the_layout_cannot_hold_stops_the_migration_naming_it(
    schema: str,
) -> None:
    events = [_old("a"), _old("b", version=MAX_EVENT_VERSION + 1)]
    url = _build("store at migration 2", schema, events)
    bad = _expected(events)[1]
    with pytest.raises(StoreError) as info:
        migrate_database(url)
    assert f"partition {bad.partition}, offset {bad.offset} " in str(info.value)
    assert "migrate again" in str(info.value)
    # One transaction: nothing of the migration stayed.
    assert _store_version(schema) == 2
    assert "stream_id" in _columns(schema)
    assert [r[2] for r in _rows(schema)] == [None, None]


def _waiting_for_lock(conn: psycopg.Connection[Any], schema: str) -> int | None:
    """The backend waiting for a lock on ``schema``'s records table, if any."""
    row = conn.execute(
        "SELECT pid FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
        (sql.Identifier(schema, "records").as_string(conn),),
    ).fetchone()
    return None if row is None else int(row[0])


def test_a_migration_killed_midway_leaves_the_old_layout_to_migrate_again(
    schema: str,
) -> None:
    events = _edge_cases()
    url = _build("store at migration 2", schema, events)
    with psycopg.connect(database_url(), autocommit=True) as watcher:
        with psycopg.connect(database_url()) as holder:
            # A reader holds the table: the migration gets past its checks and
            # helper functions, then waits for the rewrite's lock; killed there.
            holder.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(
                    sql.Identifier(schema, "records")
                )
            )
            migrating = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys\n"
                    "from framework.postgres.database import migrate_database\n"
                    "migrate_database(sys.argv[1])",
                    url,
                ],
                cwd=ROOT,
                env=dict(os.environ),
            )
            try:
                backend = until(
                    lambda: _waiting_for_lock(watcher, schema), "the migration's lock"
                )
                os.kill(migrating.pid, signal.SIGKILL)
                assert migrating.wait(timeout=60) == -signal.SIGKILL
            finally:
                if migrating.poll() is None:
                    migrating.kill()
                    migrating.wait()
            holder.rollback()
        # Its backend finds its client gone at the next command and rolls back.
        until(
            lambda: watcher.execute(
                "SELECT CASE WHEN count(*) = 0 THEN 1 END FROM pg_stat_activity "
                "WHERE pid = %s",
                (backend,),
            ).fetchone()[0],
            "the killed migration's backend to end",
        )
    assert _store_version(schema) == 2
    assert "stream_id" in _columns(schema)
    migrate_database(url)
    _check_reads(url, schema, _expected(events))
