"""The ``$e`` header is packed in one step by a packer kept per length of its texts;
the packers kept are bounded, and starting over changes no byte."""

from __future__ import annotations

import uuid

from framework.log.records import LogRecord
from framework.store import records
from framework.store.events import NewEvent
from framework.store.records import pack_meta, to_record, to_stored


def event_named(name: str) -> NewEvent:
    return NewEvent(uuid.uuid4(), name, 2, b"{}", 1_700_000_000_000, "corr", "caus")


def test_more_text_lengths_than_packers_kept_all_round_trip() -> None:
    for length in range(records._PACKERS_KEPT + 50):
        event = event_named("n" * length)
        record = to_record(b"s", 7, event, 9)
        stored = to_stored(
            LogRecord("events", 0, 5, 1, record.key, record.value, record.headers)
        )
        assert (stored.name, stored.stream_version) == (event.name, 7)
        assert (stored.correlation_id, stored.causation_id) == ("corr", "caus")
    assert len(records._meta_packers) <= records._PACKERS_KEPT


def test_a_kept_packer_and_a_fresh_one_give_the_same_bytes() -> None:
    event = event_named("ledger.AccountOpened")
    first = pack_meta(3, event, 5)
    records._meta_packers.clear()
    assert pack_meta(3, event, 5) == first
