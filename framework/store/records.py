"""How an event sits in a log record: key = stream id, metadata in ``$``-headers."""

from __future__ import annotations

import uuid

from framework.errors import CorruptLogError
from framework.log.records import Headers, LogRecord, Record
from framework.store.events import NewEvent, StoredEvent

# The version header comes first so that indexing a record reads one header only.
VERSION = "$v"
EVENT_ID = "$id"
NAME = "$type"
SCHEMA_VERSION = "$tv"
CORRELATION = "$corr"
CAUSATION = "$caus"


def to_record(stream_key: bytes, stream_version: int, event: NewEvent) -> Record:
    headers: list[tuple[str, bytes]] = [
        (VERSION, str(stream_version).encode()),
        (EVENT_ID, event.event_id.bytes),
        (NAME, event.name.encode()),
        (SCHEMA_VERSION, str(event.version).encode()),
        (CORRELATION, event.correlation_id.encode()),
        (CAUSATION, event.causation_id.encode()),
    ]
    for name, value in event.headers.items():
        headers.append((name, value.encode()))
    return Record(
        key=stream_key,
        value=event.data,
        headers=tuple(headers),
        timestamp=event.timestamp_ms,
    )


def _corrupt(record: LogRecord, why: str) -> CorruptLogError:
    return CorruptLogError(
        f"record {record.topic}/{record.partition} offset {record.offset} is not an "
        f"event-store record ({why}); only the event store may write to its topic"
    )


def stream_version_of(record: LogRecord) -> tuple[str, int]:
    """The (stream id, stream version) of a record, reading as little as possible."""
    headers: Headers = record.headers
    if record.key is None or not headers or headers[0][0] != VERSION:
        raise _corrupt(record, "no stream key or version header")
    return record.key.decode(), int(headers[0][1])


_new_object = object.__new__
_set_attribute = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def uuid_from_bytes(raw: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=raw)`` without its argument parsing: a quarter of the cost on
    the replay path. Relies on UUID's two slots, unchanged since Python 3.8."""
    if len(raw) != 16:
        raise ValueError(f"an event id is 16 bytes, got {len(raw)}")
    value = _new_object(uuid.UUID)
    _set_attribute(value, "int", int.from_bytes(raw, "big"))
    _set_attribute(value, "is_safe", _UNKNOWN)
    return value


def event_id_of(record: LogRecord) -> uuid.UUID:
    for name, value in record.headers:
        if name == EVENT_ID:
            return uuid_from_bytes(value)
    raise _corrupt(record, "no event id header")


def to_stored(record: LogRecord) -> StoredEvent:
    headers = record.headers
    key = record.key
    if key is None:
        raise _corrupt(record, "no stream key")
    if (
        len(headers) >= 6
        and headers[0][0] == VERSION
        and headers[1][0] == EVENT_ID
        and headers[2][0] == NAME
        and headers[3][0] == SCHEMA_VERSION
        and headers[4][0] == CORRELATION
        and headers[5][0] == CAUSATION
    ):
        # The layout this module writes: read by position, no dictionary.
        version, event_id, name, schema_version, correlation, causation = headers[:6]
        user = {n: v.decode() for n, v in headers[6:]} if len(headers) > 6 else {}
        return StoredEvent(
            event_id=uuid_from_bytes(event_id[1]),
            stream_id=key.decode(),
            stream_version=int(version[1]),
            name=name[1].decode(),
            version=int(schema_version[1]),
            data=record.value,
            timestamp_ms=record.timestamp,
            correlation_id=correlation[1].decode(),
            causation_id=causation[1].decode(),
            headers=user,
            partition=record.partition,
            offset=record.offset,
        )
    return _to_stored_any_order(record, key)


def _to_stored_any_order(record: LogRecord, key: bytes) -> StoredEvent:
    meta: dict[str, bytes] = {}
    user: dict[str, str] = {}
    for name, value in record.headers:
        if name[:1] == "$":
            meta[name] = value
        else:
            user[name] = value.decode()
    try:
        return StoredEvent(
            event_id=uuid_from_bytes(meta[EVENT_ID]),
            stream_id=key.decode(),
            stream_version=int(meta[VERSION]),
            name=meta[NAME].decode(),
            version=int(meta[SCHEMA_VERSION]),
            data=record.value,
            timestamp_ms=record.timestamp,
            correlation_id=meta[CORRELATION].decode(),
            causation_id=meta[CAUSATION].decode(),
            headers=user,
            partition=record.partition,
            offset=record.offset,
        )
    except KeyError as exc:
        raise _corrupt(record, f"missing header {exc.args[0]}") from None
