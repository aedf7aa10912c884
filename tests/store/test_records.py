"""How events sit in log records: every field round-trips, in both layouts."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.errors import CorruptLogError
from framework.log.records import LogRecord
from framework.store.events import NewEvent
from framework.store.records import (
    CAUSATION,
    CORRELATION,
    EVENT_ID,
    NAME,
    SCHEMA_VERSION,
    VERSION,
    event_id_of,
    stamp_of,
    stream_version_of,
    to_record,
    to_records,
    to_stored,
    uuid_from_bytes,
)

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
header_names = st.text("abcdefgh-_", min_size=1, max_size=8)


def new_events(texts: st.SearchStrategy[str]) -> st.SearchStrategy[NewEvent]:
    """Events whose name and correlation and causation ids are drawn from ``texts``."""
    return st.builds(
        NewEvent,
        event_id=st.uuids(),
        name=texts,
        version=st.integers(1, 65535),
        data=st.binary(max_size=40),
        timestamp_ms=st.integers(0, 2**50),
        correlation_id=texts,
        causation_id=texts,
        headers=st.dictionaries(header_names, text, max_size=3),
    )


events = new_events(text)


def stored_record(
    stream: str, version: int, event: NewEvent, stamp: int = 0
) -> LogRecord:
    record = to_record(stream.encode(), version, event, stamp)
    return LogRecord(
        "events", 3, 17, event.timestamp_ms, record.key, record.value, record.headers
    )


@given(text.filter(bool), st.integers(1, 2**32 - 1), events, st.integers(0, 2**62))
def test_every_field_of_an_event_round_trips(
    stream: str, version: int, event: NewEvent, stamp: int
) -> None:
    record = stored_record(stream, version, event, stamp)
    stored = to_stored(record)
    assert (stored.stream_id, stored.stream_version) == (stream, version)
    assert stored.stamp == stamp_of(record) == stamp
    assert (stored.event_id, stored.name, stored.version, stored.data) == (
        event.event_id,
        event.name,
        event.version,
        event.data,
    )
    assert (stored.correlation_id, stored.causation_id) == (
        event.correlation_id,
        event.causation_id,
    )
    assert dict(stored.headers) == dict(event.headers)
    assert (stored.timestamp_ms, stored.partition, stored.offset) == (
        event.timestamp_ms,
        3,
        17,
    )
    assert stream_version_of(record) == (stream, version)
    assert event_id_of(record) == event.event_id


def test_the_per_field_layout_is_read_the_same() -> None:
    event_id = uuid.uuid4()
    record = LogRecord(
        "events",
        0,
        5,
        1,
        b"s",
        b"{}",
        (
            (VERSION, b"4"),
            (EVENT_ID, event_id.bytes),
            (NAME, b"a.B"),
            (SCHEMA_VERSION, b"2"),
            (CORRELATION, b"c"),
            (CAUSATION, b"d"),
            ("tenant", b"acme"),
        ),
    )
    stored = to_stored(record)
    assert (stored.stream_version, stored.event_id, stored.name, stored.version) == (
        4,
        event_id,
        "a.B",
        2,
    )
    assert dict(stored.headers) == {"tenant": "acme"}
    assert stream_version_of(record) == ("s", 4)
    assert event_id_of(record) == event_id


def test_a_name_too_long_to_store_is_refused_before_writing() -> None:
    event_id = uuid.uuid4()
    event = NewEvent(
        event_id=event_id,
        name="x" * 70_000,
        version=1,
        data=b"{}",
        timestamp_ms=0,
        correlation_id="c",
        causation_id="c",
    )
    with pytest.raises(ValueError, match="name is at most 65535 bytes"):
        to_record(b"s", 1, event, 1)


def test_damaged_metadata_is_a_corrupt_log_error() -> None:
    record = LogRecord("events", 0, 0, 0, b"s", b"{}", (("$e", b"\x01\x02"),))
    with pytest.raises(CorruptLogError, match="offset 0"):
        to_stored(record)
    with pytest.raises(CorruptLogError, match="no stream key"):
        to_stored(LogRecord("events", 0, 0, 0, None, b"{}", ()))


def test_uuid_from_bytes_equals_the_stdlib_constructor() -> None:
    for _ in range(100):
        value = uuid.uuid4()
        fast = uuid_from_bytes(value.bytes)
        assert fast == value
        assert (str(fast), hash(fast), fast.version) == (
            str(value),
            hash(value),
            value.version,
        )
    with pytest.raises(ValueError, match="16 bytes"):
        uuid_from_bytes(b"short")


# Few distinct texts, so that runs of events share a name or ids, as one command's do.
shared_text = st.sampled_from(["", "a", "ledger.FundsDeposited", "é" * 3])
run_events = new_events(shared_text)


@given(
    text.filter(bool),
    st.integers(1, 2**31),
    st.lists(st.one_of(run_events, events), min_size=1, max_size=12),
)
def test_records_for_a_run_of_events_equal_one_record_per_event(
    stream: str, first: int, batch: list[NewEvent]
) -> None:
    key = stream.encode()
    assert to_records(key, first, batch, first * 3) == [
        to_record(key, first + i, event, first * 3 + i) for i, event in enumerate(batch)
    ]


def test_records_for_a_run_name_the_field_that_does_not_fit() -> None:
    fits = NewEvent(uuid.uuid4(), "a", 1, b"{}", 0, "c", "c", {})
    too_long = NewEvent(uuid.uuid4(), "a" * 70_000, 1, b"{}", 0, "c", "c", {})
    with pytest.raises(ValueError, match="name is at most 65535 bytes"):
        to_records(b"s", 1, [fits, too_long], 1)
    with pytest.raises(ValueError, match="stream version 32 bits"):
        to_records(b"s", 2**32 - 1, [fits, fits], 1)


@given(text.filter(bool), st.integers(1, 2**32 - 1), events)
def test_an_event_in_the_layout_before_stamps_reads_with_stamp_zero(
    stream: str, version: int, event: NewEvent
) -> None:
    """Events written before stamps carry a ``$e`` header: the same fields but
    the stamp; they read back whole, stamped 0."""
    texts = [t.encode() for t in (event.name, event.correlation_id, event.causation_id)]
    layout = "<IH16s" + "".join(f"H{len(t)}s" for t in texts)
    meta = struct.pack(
        layout,
        version,
        event.version,
        event.event_id.bytes,
        *(part for t in texts for part in (len(t), t)),
    )
    user = tuple((n, v.encode()) for n, v in event.headers.items())
    record = LogRecord(
        "events", 3, 17, event.timestamp_ms, stream.encode(), event.data,
        (("$e", meta), *user),
    )  # fmt: skip
    stored = to_stored(record)
    assert stored.stamp == stamp_of(record) == 0
    assert stream_version_of(record) == (stream, version)
    assert event_id_of(record) == event.event_id
    assert (
        stored.event_id,
        stored.name,
        stored.version,
        stored.correlation_id,
        stored.causation_id,
        dict(stored.headers),
    ) == (
        event.event_id,
        event.name,
        event.version,
        event.correlation_id,
        event.causation_id,
        dict(event.headers),
    )
