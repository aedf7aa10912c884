"""File consumer groups split partitions and move them cooperatively, taking over
from a member that dies."""

from __future__ import annotations

import os
from pathlib import Path

from framework.projections.backends.file_group import FileGroup


def test_members_split_partitions_and_take_over_from_one_that_dies(
    tmp_path: Path,
) -> None:
    groups = [FileGroup(tmp_path, 12, member_id=f"m{n}") for n in range(3)]
    for group in groups:
        group.join()
    for _ in range(2):
        for group in groups:
            group.rebalance()
    assert [g.owned for g in groups] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
    ]
    # m1 dies: its locks vanish with its descriptors.
    for fd in groups[1]._owned.values():
        os.close(fd)
    assert groups[1]._member_fd is not None
    os.close(groups[1]._member_fd)
    for _ in range(2):
        for group in (groups[0], groups[2]):
            group.rebalance()
    assert groups[0].owned == list(range(6))
    assert groups[2].owned == list(range(6, 12))
    assert groups[0].live_members() == ["m0", "m2"]
    # A partition stays with its owner across a rebalance that does not move it.
    taken, released = groups[0].rebalance()
    assert (taken, released) == ([], [])
