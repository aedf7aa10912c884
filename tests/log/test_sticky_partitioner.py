"""``StickyPartitioner``: keyless records fill a batch on one partition, then move
to another; keyed ones go where Kafka's default partitioner sends them."""

from __future__ import annotations

import itertools
import random
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from framework.errors import ConfigurationError
from framework.log.partitioner import StickyPartitioner, partition_for

sizes = st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300)


@given(
    partitions=st.integers(min_value=1, max_value=64),
    batch_bytes=st.integers(min_value=1, max_value=20_000),
    sizes=sizes,
    seed=st.integers(),
)
def test_every_partition_is_valid_and_a_batch_stays_on_one_partition(
    partitions: int, batch_bytes: int, sizes: list[int], seed: int
) -> None:
    sticky = StickyPartitioner(
        partitions, batch_bytes=batch_bytes, rng=random.Random(seed)
    )
    chosen = [sticky.partition(None, size) for size in sizes]
    assert all(0 <= p < partitions for p in chosen)
    # Cut the records into batches where they fill batch_bytes: each batch is on
    # one partition, and the next on another (when there is another).
    batches: list[list[int]] = [[]]
    filled = 0
    for partition, size in zip(chosen, sizes, strict=True):
        batches[-1].append(partition)
        filled += size
        if filled >= batch_bytes:
            batches.append([])
            filled = 0
    batches = [b for b in batches if b]
    for batch in batches:
        assert len(set(batch)) == 1
    for one, other in itertools.pairwise(batches):
        assert one[0] != other[0] or partitions == 1


@given(partitions=st.integers(min_value=2, max_value=16), seed=st.integers())
def test_over_many_batches_every_partition_is_used(partitions: int, seed: int) -> None:
    sticky = StickyPartitioner(partitions, batch_bytes=100, rng=random.Random(seed))
    used = {sticky.partition(None, 100) for _ in range(200 * partitions)}
    assert used == set(range(partitions))


@given(
    partitions=st.integers(min_value=1, max_value=64),
    keys=st.lists(st.binary(max_size=40) | st.none(), max_size=200),
    seed=st.integers(),
)
def test_keyed_records_go_where_the_default_partitioner_says_and_leave_the_batch(
    partitions: int, keys: list[bytes | None], seed: int
) -> None:
    sticky = StickyPartitioner(partitions, batch_bytes=10**9, rng=random.Random(seed))
    keyless: set[int] = set()
    for key in keys:
        partition = sticky.partition(key, 10)
        if key is None:
            keyless.add(partition)
        else:
            assert partition == partition_for(key, partitions)
    # The batch never fills, so keyed records in between do not move it.
    assert len(keyless) <= 1


def test_threads_sharing_one_partitioner_fill_each_batch_exactly() -> None:
    sticky = StickyPartitioner(8, batch_bytes=1000, rng=random.Random(1))
    chosen: list[int] = []
    lock = threading.Lock()

    def produce() -> None:
        mine = [sticky.partition(None, 10) for _ in range(2000)]
        with lock:
            chosen.extend(mine)

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 8,000 records of 10 bytes: 80 batches of 100 records each.
    counts: dict[int, int] = {}
    for partition in chosen:
        counts[partition] = counts.get(partition, 0) + 1
    assert sum(counts.values()) == 8000
    assert all(count % 100 == 0 for count in counts.values())


@pytest.mark.parametrize(
    ("partitions", "batch_bytes", "match"),
    [(0, 10, "num_partitions"), (4, 0, "batch_bytes")],
)
def test_bad_settings_are_refused_by_name(
    partitions: int, batch_bytes: int, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        StickyPartitioner(partitions, batch_bytes=batch_bytes)
