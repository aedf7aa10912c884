"""A lone record's batch (``encode_record``, the usual append) is byte for byte the
batch ``encode_batch`` writes for it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.log.backends.segments.batch import encode_batch, encode_record
from framework.log.records import Headers

TIMESTAMPS = st.integers(-(2**40), 2**45)
HEADERS = st.lists(
    st.tuples(st.sampled_from(["$e", "$id", "ünï", "x", ""]), st.binary(max_size=12)),
    max_size=4,
).map(tuple)


@given(TIMESTAMPS, st.none() | st.binary(max_size=10), st.binary(max_size=40), HEADERS)
def test_a_lone_record_encodes_as_a_batch_of_one(
    timestamp: int, key: bytes | None, value: bytes, headers: Headers
) -> None:
    expected = encode_batch([(0, timestamp, key, value, headers)], last_offset_delta=0)
    assert encode_record(timestamp, key, value, headers) == expected


@pytest.mark.parametrize(
    ("key", "value", "headers"),
    [
        (None, "text", ()),
        ("key", b"v", ()),
        (None, b"v", (("h", "text"),)),
    ],
)
def test_a_lone_record_of_the_wrong_types_is_refused_as_encode_batch_refuses_it(
    key: object, value: object, headers: object
) -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        encode_batch([(0, 1, key, value, headers)], last_offset_delta=0)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be bytes"):
        encode_record(1, key, value, headers)  # type: ignore[arg-type]
