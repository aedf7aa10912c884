"""Every member computes the same assignment: each partition to exactly one member,
sizes differing by at most one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from framework.projections.assignment import target_assignment


@given(
    st.sets(st.text("abcdef0123", min_size=1, max_size=6), max_size=8),
    st.integers(1, 40),
)
def test_every_partition_goes_to_exactly_one_member(
    members: set[str], partitions: int
) -> None:
    plan = target_assignment(list(members), partitions)
    assigned = sorted(p for ps in plan.values() for p in ps)
    if members:
        assert assigned == list(range(partitions))
        sizes = [len(ps) for ps in plan.values()]
        assert max(sizes) - min(sizes) <= 1
    assert plan == target_assignment(sorted(members, reverse=True), partitions)
