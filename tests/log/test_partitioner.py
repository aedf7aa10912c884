"""Key routing must match Kafka's Java client or a key splits across clients."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.errors import ConfigurationError
from framework.log import partitioner
from framework.log.partitioner import murmur2, partition_for, to_positive

Hash = Callable[[bytes], int]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# testMurmur2: the expected values are Java ints, copied verbatim.
KAFKA_UTILS_TEST_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
]


def _as_java_int(bits: int) -> int:
    return bits - 2**32 if bits & 0x80000000 else bits


_SHORT = b"1234"
_UNALIGNED = b"PreAmbleWillBeRemoved,ThePrePartThatIs"

# confluentinc/librdkafka, src/rdmurmur2.c, unittest_murmur2: the table it calls
# java_murmur2_results, written there as hex int32_t. The suffixes of "1234" cover
# every tail length (0, 3, 2, 1 trailing bytes) and "" covers the empty key.
LIBRDKAFKA_TEST_VECTORS = [
    (b"kafka", _as_java_int(0xD067CF64)),
    (b"giberish123456789", _as_java_int(0x8F552B0C)),
    (_SHORT, _as_java_int(0x9FC97B14)),
    (_SHORT[1:], _as_java_int(0xE7C009CA)),
    (_SHORT[2:], _as_java_int(0x873930DA)),
    (_SHORT[3:], _as_java_int(0x5A4B5CA1)),
    (_UNALIGNED, _as_java_int(0x78424F1C)),
    (_UNALIGNED[1:], _as_java_int(0x4A62B377)),
    (_UNALIGNED[2:], _as_java_int(0xE0E4E09E)),
    (_UNALIGNED[3:], _as_java_int(0x62B8B43F)),
    (b"", _as_java_int(0x106E08D9)),
]


# --- A deliberately literal transliteration of Utils.murmur2 -----------------------
# Slow on purpose: every Java int operation is spelled out with its wraparound, bytes
# are signed as in Java, and the switch keeps its fall-through, so that it shares no
# shortcut with the fast implementation it checks.


def _java_int(value: int) -> int:
    """Wrap an arbitrary Python int to a Java int (two's complement, 32 bits)."""
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value >= 0x80000000 else value


def _java_byte(value: int) -> int:
    """A Java byte is signed: 0x80..0xFF read back as -128..-1."""
    return value - 0x100 if value >= 0x80 else value


def _imul(a: int, b: int) -> int:
    return _java_int(a * b)


def _iadd(a: int, b: int) -> int:
    return _java_int(a + b)


def _ishl(a: int, n: int) -> int:
    return _java_int(a << n)


def _iushr(a: int, n: int) -> int:
    """Java's ``>>>``: shift in zeros, whatever the sign."""
    return _java_int((a & 0xFFFFFFFF) >> n)


def reference_murmur2(raw: bytes) -> int:
    data = [_java_byte(b) for b in raw]
    length = len(data)
    seed = _java_int(0x9747B28C)
    m = 0x5BD1E995
    r = 24

    h = _java_int(seed ^ length)
    length4 = length // 4

    for i in range(length4):
        i4 = i * 4
        k = _iadd(
            _iadd(
                _iadd(data[i4 + 0] & 0xFF, _ishl(data[i4 + 1] & 0xFF, 8)),
                _ishl(data[i4 + 2] & 0xFF, 16),
            ),
            _ishl(data[i4 + 3] & 0xFF, 24),
        )
        k = _imul(k, m)
        k ^= _iushr(k, r)
        k = _imul(k, m)
        h = _imul(h, m)
        h ^= k

    case = length % 4
    falling_through = False
    if case == 3:
        h ^= _ishl(data[(length & ~3) + 2] & 0xFF, 16)
        falling_through = True
    if falling_through or case == 2:
        h ^= _ishl(data[(length & ~3) + 1] & 0xFF, 8)
        falling_through = True
    if falling_through or case == 1:
        h ^= data[length & ~3] & 0xFF
        h = _imul(h, m)

    h ^= _iushr(h, 13)
    h = _imul(h, m)
    h ^= _iushr(h, 15)
    return h


def _compiled_murmur2() -> Hash:
    compiled = partitioner._compiled
    if compiled is None:
        if os.environ.get("FRAMEWORK_REQUIRE_SERVICES") == "1":
            pytest.fail("framework.log._murmur2 was not built; is a C compiler there?")
        pytest.skip("framework.log._murmur2 was not built (no C compiler)")
    return compiled


@pytest.fixture(scope="module", params=["python", "c"])
def murmur(request: pytest.FixtureRequest) -> Hash:
    """Each implementation: the pure-Python reference and fallback, and the C one
    that ``partition_for`` uses where it was built (it must be, under CI)."""
    if request.param == "python":
        return murmur2
    return _compiled_murmur2()


@pytest.fixture(scope="module")
def compiled() -> Hash:
    """The C ``murmur2`` that ``partition_for`` uses where it was built."""
    return _compiled_murmur2()


# --- Published vectors ---------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), KAFKA_UTILS_TEST_VECTORS)
def test_murmur2_matches_kafka_java_client_vectors(
    murmur: Hash, data: bytes, expected: int
) -> None:
    assert murmur(data) == expected


@pytest.mark.parametrize(("data", "expected"), LIBRDKAFKA_TEST_VECTORS)
def test_murmur2_matches_librdkafka_java_compatibility_vectors(
    murmur: Hash, data: bytes, expected: int
) -> None:
    assert murmur(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"), KAFKA_UTILS_TEST_VECTORS + LIBRDKAFKA_TEST_VECTORS
)
def test_the_reference_transliteration_also_reproduces_the_published_vectors(
    data: bytes, expected: int
) -> None:
    assert reference_murmur2(data) == expected


@pytest.mark.parametrize(("data", "expected"), KAFKA_UTILS_TEST_VECTORS)
@pytest.mark.parametrize("num_partitions", [1, 2, 3, 6, 7, 12, 100, 2**31 - 1])
def test_partition_for_is_kafkas_positive_hash_modulo_the_partition_count(
    data: bytes, expected: int, num_partitions: int
) -> None:
    assert partition_for(data, num_partitions) == (
        (expected & 0x7FFFFFFF) % num_partitions
    )


def test_a_str_key_routes_like_its_utf8_bytes_for_a_published_vector() -> None:
    assert partition_for("foobar", 10) == partition_for(b"foobar", 10) == 6


# --- Cross-check against the reference -----------------------------------------------


@given(st.binary(max_size=64))
def test_murmur2_equals_the_literal_java_transliteration_for_any_bytes(
    murmur: Hash,
    data: bytes,
) -> None:
    assert murmur(data) == reference_murmur2(data)


@given(st.binary(max_size=300))
def test_the_c_murmur2_agrees_with_the_reference_on_any_bytes(
    compiled: Hash, data: bytes
) -> None:
    assert compiled(data) == murmur2(data)


@pytest.mark.parametrize("length", range(8))
@given(data=st.data())
def test_murmur2_equals_the_reference_for_every_tail_length(
    murmur: Hash, length: int, data: st.DataObject
) -> None:
    raw = data.draw(st.binary(min_size=length, max_size=length))
    assert murmur(raw) == reference_murmur2(raw)


@pytest.mark.parametrize("byte", [0x00, 0x7F, 0x80, 0xFF])
@pytest.mark.parametrize("length", range(8))
def test_murmur2_treats_high_bytes_as_unsigned_in_every_position(
    murmur: Hash, byte: int, length: int
) -> None:
    raw = bytes([byte]) * length
    assert murmur(raw) == reference_murmur2(raw)


@given(st.binary(max_size=256))
def test_murmur2_always_returns_a_signed_32_bit_int(murmur: Hash, data: bytes) -> None:
    result = murmur(data)
    assert isinstance(result, int)
    assert INT32_MIN <= result <= INT32_MAX


def test_the_empty_key_hashes_as_java_does(murmur: Hash) -> None:
    assert murmur(b"") == reference_murmur2(b"") == 275646681
    assert partition_for(b"", 7) == partition_for("", 7) == 275646681 % 7


def test_murmur2_does_not_depend_on_the_buffers_alignment(murmur: Hash) -> None:
    # A slice of a larger buffer starts mid-word in memory; the hash must not care.
    backing = b"x" + b"a-little-bit-long-string"
    assert murmur(backing[1:]) == -985981536


# --- to_positive ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, 0),
        (5, 5),
        (INT32_MAX, INT32_MAX),
        (-1, INT32_MAX),
        (INT32_MIN, 0),
        (-790332482, 1357151166),
    ],
)
def test_to_positive_clears_the_sign_bit_like_kafka(n: int, expected: int) -> None:
    assert to_positive(n) == expected


# --- partition_for -------------------------------------------------------------------


@given(st.text(alphabet=st.characters(codec="utf-8")), st.integers(1, 10_000))
def test_partition_for_is_in_range_deterministic_and_str_matches_its_utf8_bytes(
    key: str, num_partitions: int
) -> None:
    partition = partition_for(key, num_partitions)
    assert 0 <= partition < num_partitions
    assert partition_for(key, num_partitions) == partition
    assert partition_for(key.encode("utf-8"), num_partitions) == partition


@given(st.binary(max_size=64), st.integers(1, 10_000))
def test_partition_for_bytes_is_the_reference_hash_routed_as_kafka_does(
    key: bytes, num_partitions: int
) -> None:
    expected = (reference_murmur2(key) & 0x7FFFFFFF) % num_partitions
    assert partition_for(key, num_partitions) == expected


def test_a_single_partition_takes_every_key() -> None:
    assert {partition_for(f"key-{i}", 1) for i in range(100)} == {0}


@pytest.mark.parametrize("num_partitions", [0, -1, -100])
def test_partition_for_rejects_fewer_than_one_partition_naming_the_value(
    num_partitions: int,
) -> None:
    with pytest.raises(ConfigurationError, match="num_partitions") as caught:
        partition_for(b"key", num_partitions)
    assert str(num_partitions) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("key", [None, 42, 1.5, bytearray(b"key"), ["k"]])
def test_partition_for_rejects_a_key_that_is_neither_bytes_nor_str(
    key: object,
) -> None:
    with pytest.raises(TypeError, match="bytes or str") as caught:
        partition_for(key, 3)  # type: ignore[arg-type]
    assert type(key).__name__ in str(caught.value)
