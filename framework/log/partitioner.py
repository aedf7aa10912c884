"""Key-to-partition routing that agrees with Kafka's default partitioner.

A keyed record lands on the partition a Java producer would pick for the same key;
a keyless one, with ``StickyPartitioner``, where Kafka's sticky partitioner would
put it: on one partition until a batch is full, then on another.
"""

from __future__ import annotations

import importlib
import random
import threading
from collections.abc import Callable

from framework.errors import ConfigurationError

__all__ = [
    "ACCELERATED",
    "DEFAULT_BATCH_BYTES",
    "StickyPartitioner",
    "murmur2",
    "partition_for",
    "to_positive",
    "utf8_key",
]

# Kafka's constants; any change moves every existing key to another partition.
_SEED = 0x9747B28C
_M = 0x5BD1E995
_R = 24

# Python ints never overflow, so every product is cut back to 32 bits by hand to
# reproduce Java's silent int wraparound.
_MASK32 = 0xFFFFFFFF
_SIGN_BIT = 0x80000000


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: the same signed 32-bit int the Java client returns.

    The reference, written step for step as the Java is so that the two can be read
    side by side; ``partition_for`` runs the C version where it was built.
    """
    length = len(data)
    m = _M
    r = _R

    # Kept unsigned throughout, so that ``>>`` behaves like Java's ``>>>``; Python's
    # bytes are unsigned already, so Java's ``& 0xff`` has nothing to do here.
    h = (_SEED ^ length) & _MASK32
    length4 = length // 4

    for i in range(length4):
        i4 = i * 4
        k = (
            data[i4 + 0]
            + (data[i4 + 1] << 8)
            + (data[i4 + 2] << 16)
            + (data[i4 + 3] << 24)
        )
        k = (k * m) & _MASK32
        k ^= k >> r
        k = (k * m) & _MASK32
        h = (h * m) & _MASK32
        h ^= k

    # Java's switch falls through: three trailing bytes also mix in the second and
    # the first.
    remaining = length % 4
    if remaining == 3:
        h ^= data[(length & ~3) + 2] << 16
    if remaining >= 2:
        h ^= data[(length & ~3) + 1] << 8
    if remaining >= 1:
        h ^= data[length & ~3]
        h = (h * m) & _MASK32

    h ^= h >> 13
    h = (h * m) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & _SIGN_BIT else h


def _compiled_murmur2() -> Callable[[bytes], int] | None:
    try:
        # By name: the import-layer check reads source files, and this module is
        # compiled (it would take it for an import of the whole package).
        compiled = importlib.import_module("framework.log._murmur2")
    except ImportError:  # installed without a C compiler: ``murmur2`` above runs
        return None
    hash_: Callable[[bytes], int] = compiled.murmur2
    return hash_


_compiled = _compiled_murmur2()
#: Whether ``partition_for`` hashes in C (``framework/log/_murmur2.c``, built on
#: install where a C compiler is) rather than with ``murmur2`` above: about
#: 0.3 µs against 4.5 for a 36-character stream id, paid on every append of a
#: stream whose partition the event store does not remember.
ACCELERATED = _compiled is not None
_hash = murmur2 if _compiled is None else _compiled


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit rather than take ``abs``."""
    # Not abs(): Kafka masks, so -1 becomes 2**31 - 1, and a key routed any other
    # way would land on a different partition than a Java producer picks.
    return n & 0x7FFFFFFF


def utf8_key(key: str) -> bytes:
    """``key`` as UTF-8, the bytes a stream id or record key is hashed and stored
    as; ``ValueError`` naming it if it holds a lone surrogate, which UTF-8 lacks."""
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"key {key!r} cannot be encoded as UTF-8 ({exc.reason}); a stream id "
            "or record key must be text without lone surrogates"
        ) from exc


def partition_for(key: bytes | str, num_partitions: int) -> int:
    """The partition in ``range(num_partitions)`` Kafka's producer picks for ``key``.

    A ``str`` key is hashed as its UTF-8 bytes, which is what Kafka's
    ``StringSerializer`` puts on the wire.
    """
    if isinstance(key, str):
        key = utf8_key(key)
    elif not isinstance(key, bytes):
        raise TypeError(
            f"partition key must be bytes or str, got {type(key).__name__} "
            f"({key!r}); convert it to bytes first (a record without a key is not "
            "routed by key)"
        )
    _check_partitions(num_partitions)
    return to_positive(_hash(key)) % num_partitions


#: Kafka's ``batch.size`` default: the bytes a keyless batch fills before the
#: sticky partitioner moves on.
DEFAULT_BATCH_BYTES = 16384


def _check_partitions(num_partitions: int) -> None:
    if num_partitions < 1:
        raise ConfigurationError(
            f"num_partitions must be at least 1, got {num_partitions!r}; "
            "give the topic one or more partitions"
        )


class StickyPartitioner:
    """Kafka's sticky partitioner (KIP-480): a keyed record goes where
    ``partition_for`` says; keyless records all go to one partition until they
    fill ``batch_bytes``, then to another chosen at random among the others.
    Keyless producers so make few full batches (one append and one fsync each)
    rather than a small one per partition, and over many batches every
    partition gets its share.

    ``partition(key, size)`` is thread-safe; ``size`` is the record's bytes.
    ``rng`` (default: a fresh ``random.Random``) makes the choice reproducible.
    """

    def __init__(
        self,
        num_partitions: int,
        *,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        _check_partitions(num_partitions)
        if batch_bytes < 1:
            raise ConfigurationError(
                f"batch_bytes must be at least 1, got {batch_bytes!r}"
            )
        self.num_partitions = num_partitions
        self.batch_bytes = batch_bytes
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._current = self._rng.randrange(num_partitions)
        self._filled = 0

    def partition(self, key: bytes | str | None, size: int) -> int:
        """The partition of a record of ``size`` bytes with ``key`` (None: no
        key). A keyless record that fills the batch is its last: the next one
        starts a batch on another partition."""
        if key is not None:
            return partition_for(key, self.num_partitions)
        with self._lock:
            partition = self._current
            self._filled += size
            if self._filled >= self.batch_bytes:
                self._filled = 0
                self._current = self._other(partition)
            return partition

    def _other(self, partition: int) -> int:
        """A partition other than ``partition``, each as likely (the same one
        when there is no other)."""
        if self.num_partitions == 1:
            return partition
        # One of the n - 1 others, without a loop that redraws.
        pick = self._rng.randrange(self.num_partitions - 1)
        return pick if pick < partition else pick + 1
