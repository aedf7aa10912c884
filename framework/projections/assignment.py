"""Which member of a consumer group owns which partitions: the one assignment every
member computes alike from the sorted live members."""

from __future__ import annotations


def target_assignment(members: list[str], partitions: int) -> dict[str, list[int]]:
    """Partitions per member: contiguous ranges over the sorted members, sizes
    differing by at most one (Kafka's range assignor)."""
    ordered = sorted(members)
    plan: dict[str, list[int]] = {m: [] for m in ordered}
    if not ordered:
        return plan
    size, extra = divmod(partitions, len(ordered))
    start = 0
    for i, member in enumerate(ordered):
        count = size + (1 if i < extra else 0)
        plan[member] = list(range(start, start + count))
        start += count
    return plan
