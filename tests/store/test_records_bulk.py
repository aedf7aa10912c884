"""Records to stored events in bulk (the replay path): the same events as one at a
time, in every layout, and damaged metadata still a ``CorruptLogError``."""

from __future__ import annotations

import struct
import uuid
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.errors import CorruptLogError
from framework.log.records import LogRecord
from framework.store import records
from framework.store.events import NewEvent
from framework.store.records import (
    EVENT_ID,
    META,
    VERSION,
    pack_meta,
    to_record,
    to_stored,
    to_stored_all,
)

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
events = st.builds(
    NewEvent,
    event_id=st.uuids(),
    name=text,
    version=st.integers(1, 65535),
    data=st.binary(max_size=20),
    timestamp_ms=st.integers(0, 2**50),
    correlation_id=text,
    causation_id=text,
    headers=st.dictionaries(st.text("abc", min_size=1, max_size=3), text, max_size=2),
)


def stored_record(offset: int, event: NewEvent) -> LogRecord:
    record = to_record(b"s", offset + 1, event, offset + 1)
    return LogRecord(
        "events",
        2,
        offset,
        event.timestamp_ms,
        record.key,
        record.value,
        record.headers,
    )


def per_field_record(offset: int) -> LogRecord:
    headers = (
        (VERSION, b"1"),
        (EVENT_ID, uuid.uuid4().bytes),
        ("$type", b"a.B"),
        ("$tv", b"1"),
        ("$corr", b"c"),
        ("$caus", b"d"),
    )
    return LogRecord("events", 2, offset, 1, b"s", b"{}", headers)


@given(st.lists(events, max_size=8), st.booleans())
def test_bulk_decoding_gives_the_events_one_at_a_time_gives(
    new: list[NewEvent], per_field_too: bool
) -> None:
    batch = [stored_record(i, e) for i, e in enumerate(new)]
    if per_field_too:
        batch.append(per_field_record(len(batch)))
    stored = to_stored_all(batch)
    assert stored == [to_stored(r) for r in batch]
    for event, got in zip(new, stored, strict=False):
        assert (got.event_id, got.name, got.version, got.data) == (
            event.event_id,
            event.name,
            event.version,
            event.data,
        )
        assert (got.correlation_id, got.causation_id) == (
            event.correlation_id,
            event.causation_id,
        )
        assert dict(got.headers) == dict(event.headers)


def test_event_ids_are_plain_uuids_and_no_headers_is_a_read_only_mapping() -> None:
    event = NewEvent(uuid.uuid4(), "a.B", 1, b"{}", 5, "c", "d")
    (stored,) = to_stored_all([stored_record(0, event)])
    assert type(stored.event_id) is uuid.UUID
    assert stored.event_id.is_safe is uuid.SafeUUID.unknown
    assert stored.event_id == uuid.UUID(bytes=event.event_id.bytes)
    assert isinstance(stored.headers, MappingProxyType)
    assert dict(stored.headers) == {}


def test_layouts_of_one_length_with_other_text_lengths_are_told_apart() -> None:
    # Both $e values are 28 + 6 bytes long; the parser kept for the first must not
    # read the second.
    first = NewEvent(uuid.uuid4(), "ab", 1, b"{}", 5, "cd", "ef")
    second = NewEvent(uuid.uuid4(), "abcd", 1, b"{}", 5, "", "ef")
    assert len(pack_meta(1, first, 1)) == len(pack_meta(1, second, 1))
    records._meta_parsers.clear()
    batch = [stored_record(i, e) for i, e in enumerate([first, second, first])]
    got = [(s.name, s.correlation_id, s.causation_id) for s in to_stored_all(batch)]
    assert got == [("ab", "cd", "ef"), ("abcd", "", "ef"), ("ab", "cd", "ef")]


def test_more_meta_lengths_than_parsers_kept_all_decode() -> None:
    for length in range(records._PACKERS_KEPT + 20):
        event = NewEvent(uuid.uuid4(), "n" * length, 1, b"{}", 5, "c", "d")
        (stored,) = to_stored_all([stored_record(0, event)])
        assert stored.name == event.name
    assert len(records._meta_parsers) <= records._PACKERS_KEPT


def with_meta(meta: bytes, key: bytes = b"s") -> LogRecord:
    return LogRecord("events", 1, 9, 1, key, b"{}", ((META, meta),))


@pytest.mark.parametrize(
    "meta",
    [
        pack_meta(1, NewEvent(uuid.uuid4(), "a.B", 1, b"", 0, "c", "d"), 1)[:-1],
        pack_meta(1, NewEvent(uuid.uuid4(), "a.B", 1, b"", 0, "c", "d"), 1) + b"x",
        pack_meta(1, NewEvent(uuid.uuid4(), "a.B", 1, b"", 0, "c", "d"), 1).replace(
            b"a.B", b"a\xffB"
        ),
        struct.pack("<IH16s", 1, 1, bytes(16)),
    ],
    ids=["a text cut short", "bytes left over", "not UTF-8", "no texts"],
)
def test_damaged_packed_metadata_is_a_corrupt_log_error_naming_the_record(
    meta: bytes,
) -> None:
    good = stored_record(0, NewEvent(uuid.uuid4(), "a.B", 1, b"{}", 5, "c", "d"))
    with pytest.raises(CorruptLogError, match="events/1 offset 9"):
        to_stored_all([good, with_meta(meta)])
    with pytest.raises(CorruptLogError, match="events/1 offset 9"):
        to_stored(with_meta(meta))


def test_a_stream_key_or_user_header_not_in_utf8_is_a_corrupt_log_error() -> None:
    meta = pack_meta(1, NewEvent(uuid.uuid4(), "a.B", 1, b"", 0, "c", "d"), 1)
    with pytest.raises(CorruptLogError, match="offset 9"):
        to_stored_all([with_meta(meta, key=b"\xff")])
    record = LogRecord("events", 1, 9, 1, b"s", b"{}", ((META, meta), ("h", b"\xff")))
    with pytest.raises(CorruptLogError, match="offset 9"):
        to_stored_all([record])
    per_field = per_field_record(9)
    damaged = per_field._replace(headers=(*per_field.headers, ("h", b"\xff")))
    with pytest.raises(CorruptLogError, match="offset 9"):
        to_stored_all([damaged])


def test_records_without_a_key_or_metadata_are_corrupt() -> None:
    with pytest.raises(CorruptLogError, match="no stream key"):
        to_stored_all([LogRecord("events", 0, 0, 0, None, b"{}", ())])
    with pytest.raises(CorruptLogError, match="missing header"):
        to_stored_all([LogRecord("events", 0, 0, 0, b"s", b"{}", ())])
