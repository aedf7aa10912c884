"""Both murmur2s, the reference and the C one ``partition_for`` runs, equal Kafka's
word-at-a-time loop for long keys and for the words whose products carry the most."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.log import partitioner
from framework.log.partitioner import murmur2

#: The reference, and what ``partition_for`` runs (C where it was built).
IMPLEMENTATIONS = pytest.mark.parametrize(
    "murmur", [murmur2, partitioner._hash], ids=["reference", "partition_for"]
)

_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def word_at_a_time(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` as written, one little-endian word per round."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK32
    aligned = length - length % 4
    for i in range(0, aligned, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail = data[aligned:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def test_the_word_at_a_time_loop_reproduces_a_published_kafka_vector() -> None:
    assert word_at_a_time(b"a-little-bit-longer-string") == -1486304829


@IMPLEMENTATIONS
@settings(max_examples=30)
@given(st.binary(min_size=1020, max_size=1100))
def test_a_key_of_a_kilobyte_hashes_as_word_at_a_time(
    murmur: Callable[[bytes], int], data: bytes
) -> None:
    assert murmur(data) == word_at_a_time(data)


@IMPLEMENTATIONS
@pytest.mark.parametrize("byte", [0x00, 0x80, 0xFF])
@pytest.mark.parametrize("length", [*range(13), 35, 36, 37, 1023, 1024, 1028, 4099])
def test_words_with_the_largest_products_hash_as_word_at_a_time(
    murmur: Callable[[bytes], int], byte: int, length: int
) -> None:
    raw = bytes([byte]) * length
    assert murmur(raw) == word_at_a_time(raw)


@IMPLEMENTATIONS
@given(st.binary(max_size=200))
def test_hashing_a_key_again_gives_the_same_result(
    murmur: Callable[[bytes], int], data: bytes
) -> None:
    assert murmur(data) == murmur(data) == word_at_a_time(data)
