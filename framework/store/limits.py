"""The event store's limits, and the one check every backend runs before it writes,
so that memory, files and PostgreSQL refuse the same inputs with the same error.

The limits are what every backend can store and index: a stream id is part of
PostgreSQL's unique (stream, version) index, whose entries must stay well under a
third of a page; names and ids are PostgreSQL ``text`` (no NUL); header names and
the packed metadata carry 16-bit lengths in the segment format; versions are 32-bit
columns; timestamps are milliseconds that every backend and ``datetime`` can hold.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Mapping, Sequence

from framework.errors import StoreInputError, shortened
from framework.store.events import NewEvent

#: A stream id is 1 to this many bytes of UTF-8, without NUL.
MAX_STREAM_ID_BYTES = 1024
#: An event name is 1 to this many bytes of UTF-8, without NUL.
MAX_EVENT_NAME_BYTES = 255
#: Correlation and causation ids: at most this many bytes of UTF-8, without NUL.
MAX_ID_BYTES = 1024
#: An event's schema version is 1 to this.
MAX_EVENT_VERSION = 65_535
#: A stream holds at most this many events (versions are 32-bit signed).
MAX_STREAM_VERSION = 2**31 - 1
#: Event timestamps are UTC milliseconds from 1970-01-01 to the end of year 9999.
MAX_TIMESTAMP_MS = 253_402_300_799_999
#: Lamport stamps: far below the 64 bits they are stored in, so that a partition
#: can count on from the largest for as long as anyone appends.
MAX_STAMP = 2**62
#: An event's encoded payload is at most this many bytes (16 MiB).
MAX_EVENT_DATA_BYTES = 16 * 1024 * 1024
#: User headers per event, and the size of each name and value (UTF-8 bytes).
MAX_HEADERS = 64
MAX_HEADER_NAME_BYTES = 255
MAX_HEADER_VALUE_BYTES = 65_536

#: Event names already found valid: a few distinct names come back on every save.
_valid_names: set[str] = set()
_NAMES_KEPT = 4096
_UUID = uuid.UUID
_INT = operator.attrgetter("int")
_JUST_UUID = {_UUID}
_JUST_INT = {int}
_JUST_BYTES = {bytes}


def check_append(
    stream_id: str, events: Sequence[NewEvent], expected_version: int | None
) -> None:
    """Raise ``StoreInputError`` naming the first value of one stream's append that
    breaks a limit; return if every value is within them."""
    # The usual id is short ASCII text: valid UTF-8 of its own length, checked in C.
    if not (
        type(stream_id) is str
        and stream_id.isascii()
        and 0 < len(stream_id) <= MAX_STREAM_ID_BYTES
        and "\x00" not in stream_id
    ):
        _check_text("stream id", stream_id, MAX_STREAM_ID_BYTES, stream_id=None)
    if not events:
        raise StoreInputError(
            "events",
            "an append needs at least one event",
            stream_id=stream_id,
        )
    if expected_version is not None and (
        type(expected_version) is not int
        or not 0 <= expected_version <= MAX_STREAM_VERSION - len(events)
    ):
        raise StoreInputError(
            "expected_version",
            f"got {expected_version!r}; it is None (any version) or a whole number "
            f"from 0 (the stream must not exist yet) to "
            f"{MAX_STREAM_VERSION - len(events):,} (streams hold at most "
            f"{MAX_STREAM_VERSION:,} events)",
            stream_id=stream_id,
        )
    if len(events) == 1:
        _check_event(stream_id, events[0])
    elif not _all_fine(events):
        for event in events:  # find the first bad value, to name it
            _check_event(stream_id, event)
        _refuse_repeated_ids(stream_id, [e.event_id for e in events])


def _all_fine(events: Sequence[NewEvent]) -> bool:
    """Whether every event of a long append is within the limits and no event id
    comes twice, checked a field at a time in C-level passes: the events are
    turned into columns with one ``zip``, and a column whose values repeat (names,
    versions, the ids of one command) is reduced to its distinct values first.
    Event by event in Python this cost a 100-event append 70 µs, a tenth of its
    whole save; this costs a fifth of that. ``False`` only says that some value
    needs a closer look (``check_append`` then finds and names it)."""
    try:
        ids, names, versions, data, times, correlations, causations, headers = zip(
            *events, strict=True
        )
        stamps = set(times)
        texts = {*correlations, *causations}
        fine = (
            _valid_names.issuperset(names)
            and set(map(type, ids)) == _JUST_UUID
            and len(set(map(_INT, ids))) == len(ids)
            and all(
                type(v) is int and 1 <= v <= MAX_EVENT_VERSION for v in set(versions)
            )
            and set(map(type, stamps)) == _JUST_INT
            and min(stamps) >= 0
            and max(stamps) <= MAX_TIMESTAMP_MS
            and set(map(type, data)) == _JUST_BYTES
            and max(map(len, data)) <= MAX_EVENT_DATA_BYTES
            and all(
                type(t) is str
                and t.isascii()
                and len(t) <= MAX_ID_BYTES
                and "\x00" not in t
                for t in texts
            )
            and not any(headers)
        )
    except (TypeError, ValueError):  # an unhashable or ill-shaped value
        return False
    return fine


def check_appends(
    appends: Sequence[tuple[str, Sequence[NewEvent], int | None]],
) -> None:
    """``check_append`` of every stream of a multi-stream append, and no event id
    twice among them: all of it is checked before any of it is written."""
    for stream_id, events, expected in appends:
        check_append(stream_id, events, expected)
    if len(appends) > 1:
        ids = [e.event_id for _, events, _ in appends for e in events]
        if len(set(map(_INT, ids))) != len(ids):
            _refuse_repeated_ids(None, ids)


def check_versions(from_version: int, to_version: int | None) -> None:
    """A stream read's version range: versions count from 1."""
    if type(from_version) is not int or from_version < 1:
        raise StoreInputError(
            "from_version",
            f"got {from_version!r}; stream versions count from 1",
            appending=False,
        )
    if to_version is not None and (type(to_version) is not int or to_version < 1):
        raise StoreInputError(
            "to_version",
            f"got {to_version!r}; stream versions count from 1 (None reads to the "
            "end of the stream)",
            appending=False,
        )


def _check_event(stream_id: str, event: NewEvent) -> None:
    """Raise ``StoreInputError`` naming the first value of ``event`` past a limit."""
    # The usual event, in one expression over its unpacked fields: this runs once
    # per single-event save, and so costs a quarter less than the walk below,
    # which names what is wrong.
    (event_id, name, version, data, timestamp, correlation, causation, headers,
     stamp) = event  # fmt: skip
    if (
        name in _valid_names
        and type(event_id) is _UUID
        and type(version) is int
        and 1 <= version <= MAX_EVENT_VERSION
        and type(timestamp) is int
        and 0 <= timestamp <= MAX_TIMESTAMP_MS
        and type(data) is bytes
        and len(data) <= MAX_EVENT_DATA_BYTES
        and type(correlation) is str
        and correlation.isascii()
        and len(correlation) <= MAX_ID_BYTES
        and "\x00" not in correlation
        and type(causation) is str
        and causation.isascii()
        and len(causation) <= MAX_ID_BYTES
        and "\x00" not in causation
        and not headers
        and type(stamp) is int
        and 0 <= stamp <= MAX_STAMP
    ):
        return
    _check_event_closely(stream_id, event)


def _check_event_closely(stream_id: str, event: NewEvent) -> None:
    name = event.name
    if name not in _valid_names:
        _check_text("event name", name, MAX_EVENT_NAME_BYTES, stream_id=stream_id)
        if len(_valid_names) >= _NAMES_KEPT:
            _valid_names.clear()
        _valid_names.add(name)
    if type(event.event_id) is not _UUID:
        raise StoreInputError(
            "event id",
            f"got {event.event_id!r} ({type(event.event_id).__name__}); event ids are "
            "uuid.UUID values",
            stream_id=stream_id,
        )
    version = event.version
    if type(version) is not int or not 1 <= version <= MAX_EVENT_VERSION:
        raise StoreInputError(
            "event version",
            f"{name!r} has schema version {version!r}; versions are whole numbers "
            f"from 1 to {MAX_EVENT_VERSION:,}",
            stream_id=stream_id,
        )
    timestamp = event.timestamp_ms
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP_MS:
        raise StoreInputError(
            "timestamp",
            f"got {timestamp!r}; timestamps are whole UTC milliseconds from 0 "
            f"(1970-01-01) to {MAX_TIMESTAMP_MS:,} (the end of year 9999)",
            stream_id=stream_id,
        )
    stamp = event.stamp
    if type(stamp) is not int or not 0 <= stamp <= MAX_STAMP:
        raise StoreInputError(
            "stamp",
            f"got {stamp!r}; a Lamport stamp is a whole number from 0 to {MAX_STAMP:,}",
            stream_id=stream_id,
        )
    data = event.data
    if type(data) is not bytes or len(data) > MAX_EVENT_DATA_BYTES:
        shown = (
            f"{len(data):,} bytes"
            if isinstance(data, bytes)
            else f"a {type(data).__name__}"
        )
        raise StoreInputError(
            "event data",
            f"{name!r} is {shown}; an event's encoded payload is bytes, at most "
            f"{MAX_EVENT_DATA_BYTES:,} of them",
            stream_id=stream_id,
        )
    for what, text in (
        ("correlation id", event.correlation_id),
        ("causation id", event.causation_id),
    ):
        if not (
            type(text) is str
            and text.isascii()
            and len(text) <= MAX_ID_BYTES
            and "\x00" not in text
        ):
            _check_text(what, text, MAX_ID_BYTES, stream_id=stream_id, empty=True)
    if event.headers:
        _check_headers(stream_id, event.headers)


def _check_headers(stream_id: str, headers: Mapping[str, str]) -> None:
    if len(headers) > MAX_HEADERS:
        raise StoreInputError(
            "headers",
            f"an event has {len(headers)} headers; at most {MAX_HEADERS} are stored",
            stream_id=stream_id,
        )
    for name, value in headers.items():
        _check_text("header name", name, MAX_HEADER_NAME_BYTES, stream_id=stream_id)
        if type(value) is not str:
            raise StoreInputError(
                "header value",
                f"header {name!r} holds a {type(value).__name__}; header values "
                "are text",
                stream_id=stream_id,
            )
        size = len(value) if value.isascii() else _utf8_size("header value", value)
        if size > MAX_HEADER_VALUE_BYTES:
            raise StoreInputError(
                "header value",
                f"header {name!r} is {size:,} bytes of UTF-8; at most "
                f"{MAX_HEADER_VALUE_BYTES:,} are stored",
                stream_id=stream_id,
            )


def _check_text(
    what: str,
    text: object,
    limit: int,
    *,
    stream_id: object,
    empty: bool = False,
) -> None:
    """Text that names something: a str of valid UTF-8 (no lone surrogates), without
    NUL (PostgreSQL text cannot hold it), of at most ``limit`` bytes, and not empty
    unless ``empty`` allows it."""
    rule = f"{what}s are {'' if empty else '1 to '}{limit:,} bytes of UTF-8 without NUL"
    if type(text) is not str:
        raise StoreInputError(
            what, f"got a {type(text).__name__}; {rule}", stream_id=stream_id
        )
    if not text and not empty:
        raise StoreInputError(what, f"it is empty; {rule}", stream_id=stream_id)
    size = _utf8_size(what, text, stream_id=stream_id)
    if size > limit:
        raise StoreInputError(
            what,
            f"{shortened(text)} is {size:,} bytes of UTF-8; {rule}",
            stream_id=stream_id,
        )
    if "\x00" in text:
        raise StoreInputError(
            what,
            f"{shortened(text)} holds a NUL character at index {text.index(chr(0))}; "
            f"{rule}",
            stream_id=stream_id,
        )


def _utf8_size(what: str, text: str, *, stream_id: object = None) -> int:
    try:
        return len(text.encode())
    except UnicodeEncodeError as exc:
        raise StoreInputError(
            what,
            f"{shortened(text)} holds a lone surrogate at index {exc.start}, which "
            "UTF-8 cannot encode; pass text without lone surrogates",
            stream_id=stream_id,
        ) from None


def _refuse_repeated_ids(stream_id: str | None, ids: list[uuid.UUID]) -> None:
    """Raise naming an event id that comes twice in ``ids``, if one does."""
    seen: set[uuid.UUID] = set()
    for repeated in ids:
        if repeated in seen:
            break
        seen.add(repeated)
    else:
        return
    raise StoreInputError(
        "event id",
        f"{repeated} appears twice in one append; every event needs an id of its own",
        stream_id=stream_id,
    )
