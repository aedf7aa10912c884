"""File consumer groups split partitions, move them cooperatively, and never apply an
event twice."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from example_ledger.commands import Deposit, OpenAccount, router
from example_ledger.projections import Balances
from framework import Application
from framework.projections import ProjectionRunner, ReadModel, RunnerSettings
from framework.projections.assignment import target_assignment
from framework.projections.backends.file_group import FileGroup
from framework.projections.backends.sqlite import SQLiteReadModelStore
from framework.projections.member import GroupMember


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


def test_three_members_build_the_model_once_while_one_leaves(tmp_path: Path) -> None:
    app = Application("memory://", router=router)
    accounts = [app.handle(OpenAccount(f"o{n}")).value for n in range(30)]
    read_models = SQLiteReadModelStore(tmp_path / "read.sqlite")
    stops = [threading.Event() for _ in range(3)]
    members = [
        GroupMember(
            ProjectionRunner(
                app.store,
                app.codec,
                Balances(),
                read_models,
                settings=RunnerSettings(batch_size=3),
            ),
            FileGroup(tmp_path / "group", app.store.partitions, member_id=f"m{n}"),
            heartbeat=0.02,
        )
        for n in range(3)
    ]
    threads = [
        threading.Thread(target=m.run, args=(s,))
        for m, s in zip(members, stops, strict=True)
    ]
    for thread in threads:
        thread.start()
    expected = dict.fromkeys(accounts, 0)
    try:
        for round_ in range(6):
            for n, account in enumerate(accounts):
                app.handle(Deposit(account, n + 1))
                expected[account] += n + 1
            if round_ == 2:
                stops[1].set()  # one member leaves mid-way
        deadline = time.monotonic() + 20
        read = ReadModel("balances", read_models, app.store)
        while time.monotonic() < deadline and not read.position().covers(
            app.end_position()
        ):
            time.sleep(0.01)
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(10)
    got = {
        k: v["balance"] for k, v in read_models.table("balances", "balances").items()
    }
    assert got == expected
