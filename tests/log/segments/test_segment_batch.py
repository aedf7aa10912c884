"""The batch format: records survive encoding, and damaged bytes never decode."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.log.backends.segments.batch import (
    CRC_START,
    HEADER_SIZE,
    Entry,
    encode_batch,
    parse_header,
)
from framework.log.backends.segments.decode import FAST, decode_batches
from framework.log.records import LogRecord

TIMESTAMPS = st.integers(-(2**40), 2**45)
HEADERS = st.lists(
    st.tuples(st.sampled_from(["$v", "$id", "ünï", "x", ""]), st.binary(max_size=12)),
    max_size=4,
).map(tuple)
ENTRY_PARTS = st.tuples(
    TIMESTAMPS, st.none() | st.binary(max_size=10), st.binary(max_size=40), HEADERS
)


def framed(entries: list[Entry], base: int) -> bytes:
    last_delta = max(e[0] for e in entries)
    return b"".join(encode_batch(entries, last_offset_delta=last_delta).framed(base))


def decode(buf: bytes, expected: int, min_offset: int = 0) -> list[LogRecord]:
    out: list[LogRecord] = []
    reached, _, problem = decode_batches(
        buf, 0, expected, min_offset, 1 << 30, out, "t", 3, _no_codec, len(buf)
    )
    assert problem is None
    assert reached == len(buf)
    return out


def _no_codec(code: int, rel: int) -> Callable[[bytes], bytes]:  # pragma: no cover
    raise AssertionError(f"no batch here is compressed ({code} at {rel})")


@given(st.lists(st.lists(ENTRY_PARTS, min_size=1, max_size=5), min_size=1, max_size=4))
def test_batches_decode_to_the_records_encoded(
    batches: list[list[tuple[int, bytes | None, bytes, tuple[tuple[str, bytes], ...]]]],
) -> None:
    buf = b""
    expected: list[LogRecord] = []
    offset = 7
    for parts in batches:
        entries: list[Entry] = [(i, *p) for i, p in enumerate(parts)]
        buf += framed(entries, offset)
        for i, (ts, key, value, headers) in enumerate(parts):
            expected.append(
                LogRecord(
                    topic="t",
                    partition=3,
                    offset=offset + i,
                    timestamp=ts,
                    key=key,
                    value=value,
                    headers=headers,
                )
            )
        offset += len(parts)
    assert decode(buf, 7) == expected
    assert decode(buf, 7, min_offset=9) == [r for r in expected if r.offset >= 9]


def test_decoded_records_are_real_log_records() -> None:
    (record,) = decode(framed([(0, 5, b"k", b"v", (("a", b"1"),))], 0), 0)
    assert FAST, "the fast path should apply to the current LogRecord"
    assert type(record) is LogRecord
    assert record == LogRecord(
        topic="t",
        partition=3,
        offset=0,
        timestamp=5,
        key=b"k",
        value=b"v",
        headers=(("a", b"1"),),
    )


@given(
    parts=st.lists(ENTRY_PARTS, min_size=1, max_size=3),
    where=st.integers(min_value=0),
    bit=st.integers(0, 7),
)
def test_any_flipped_bit_after_the_crc_field_is_detected(
    parts: list[tuple[int, bytes | None, bytes, tuple[tuple[str, bytes], ...]]],
    where: int,
    bit: int,
) -> None:
    buf = bytearray(framed([(i, *p) for i, p in enumerate(parts)], 0))
    buf[CRC_START + where % (len(buf) - CRC_START)] ^= 1 << bit
    out: list[LogRecord] = []
    _, _, problem = decode_batches(
        bytes(buf), 0, 0, 0, 1 << 30, out, "t", 0, _no_codec, len(buf)
    )
    assert problem is not None
    assert out == []


def test_a_batch_cut_short_by_the_buffer_is_left_for_the_next_read() -> None:
    whole = framed([(0, 1, None, b"v" * 100, ())], 0)
    out: list[LogRecord] = []
    reached, expected, problem = decode_batches(
        whole[:-10], 0, 0, 0, 10, out, "t", 0, _no_codec, len(whole) - 10
    )
    assert (reached, expected, problem, out) == (0, 0, None, [])


def test_a_batch_at_an_unexpected_offset_is_refused() -> None:
    buf = framed([(0, 1, None, b"v", ())], 5)
    out: list[LogRecord] = []
    _, _, problem = decode_batches(buf, 0, 4, 0, 10, out, "t", 0, _no_codec, len(buf))
    assert problem == "the batch starts at offset 5 where 4 was expected"


def test_the_header_carries_counts_timestamps_and_unused_producer_fields() -> None:
    entries: list[Entry] = [(0, 50, None, b"a", ()), (1, 20, None, b"b", ())]
    buf = framed(entries, 42)
    header = parse_header(buf, 0)
    assert header.size == len(buf)
    assert (header.base_offset, header.record_count, header.last_offset) == (42, 2, 43)
    assert (header.first_timestamp, header.max_timestamp) == (50, 50)
    assert (header.producer_id, header.producer_sequence) == (-1, -1)
    assert len(buf) > HEADER_SIZE


def test_values_that_are_not_bytes_are_refused_with_a_clear_message() -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        encode_batch([(0, 1, None, "text", ())], last_offset_delta=0)  # type: ignore[list-item]
