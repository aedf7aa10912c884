"""Key-to-partition routing that agrees with Kafka's default partitioner.

A keyed record lands on the partition a Java producer would pick for the same key.
"""

from __future__ import annotations

import struct

from framework.errors import ConfigurationError

__all__ = ["murmur2", "partition_for", "to_positive"]

# Kafka's constants; any change moves every existing key to another partition.
_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24

# Python ints never overflow, so every product is cut back to 32 bits by hand to
# reproduce Java's silent int wraparound.
_MASK32 = 0xFFFFFFFF
_SIGN_BIT = 0x80000000
_WORD = struct.Struct("<I")


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: the same signed 32-bit int the Java client returns."""
    length = len(data)
    # Kept unsigned throughout so that ``>>`` behaves like Java's ``>>>``.
    h = (_SEED ^ length) & _MASK32
    aligned = length & ~3

    # One C-level unpack per word beats assembling each word from single bytes.
    for (word,) in _WORD.iter_unpack(memoryview(data)[:aligned]):
        k = (word * _M) & _MASK32
        k ^= k >> _R
        k = (k * _M) & _MASK32
        # k < 2**32, so masking after the xor equals masking before it.
        h = ((h * _M) ^ k) & _MASK32

    # Java's switch falls through: three trailing bytes also mix in the second and
    # the first, and only a non-empty tail pays for the extra multiply.
    remaining = length & 3
    if remaining == 3:
        h ^= data[aligned + 2] << 16
    if remaining >= 2:
        h ^= data[aligned + 1] << 8
    if remaining >= 1:
        h ^= data[aligned]
        h = (h * _M) & _MASK32

    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & _SIGN_BIT else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit rather than take ``abs``."""
    # Not abs(): Kafka masks, so -1 becomes 2**31 - 1, and a key routed any other
    # way would land on a different partition than a Java producer picks.
    return n & 0x7FFFFFFF


def partition_for(key: bytes | str, num_partitions: int) -> int:
    """The partition in ``range(num_partitions)`` Kafka's producer picks for ``key``.

    A ``str`` key is hashed as its UTF-8 bytes, which is what Kafka's
    ``StringSerializer`` puts on the wire.
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif not isinstance(key, bytes):
        raise TypeError(
            f"partition key must be bytes or str, got {type(key).__name__} "
            f"({key!r}); convert it to bytes first (a record without a key is not "
            "routed by key)"
        )
    if num_partitions < 1:
        raise ConfigurationError(
            f"num_partitions must be at least 1, got {num_partitions!r}; "
            "give the topic one or more partitions"
        )
    return to_positive(murmur2(key)) % num_partitions
