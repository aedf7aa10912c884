"""A hypothesis state machine drives the file-group members of one projection
through joins, clean leaves, deaths, rebalances and steps in any order, with
saves in between: no partition ever has two owners, the projection never sees
an event of a stream out of order, and once the members settle they own the
target assignment and the read model holds every stream at its version."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from example_ledger.domain import Account
from framework import Application, AppSettings
from framework.projections import ProjectionRunner, RunnerSettings
from framework.projections.assignment import target_assignment
from framework.projections.backends.file_group import FileGroup
from framework.projections.backends.memory import MemoryReadModelStore
from tests.projections.rebalance_worker import PARTITIONS, StreamOrder

MEMBERS = st.sampled_from(["m0", "m1", "m2"])


class RebalanceModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="rebalance-model-"))
        self.app = Application("memory://", settings=AppSettings(partitions=PARTITIONS))
        self.read_models = MemoryReadModelStore()
        self.accounts: dict[int, Account] = {}
        self.members: dict[str, tuple[FileGroup, ProjectionRunner]] = {}

    def teardown(self) -> None:
        for group, _ in self.members.values():
            group.leave()
        self.app.close()
        shutil.rmtree(self.directory)

    @rule(account=st.integers(0, 7), deposits=st.integers(1, 3))
    def save(self, account: int, deposits: int) -> None:
        if account not in self.accounts:
            self.accounts[account] = Account.open(f"owner{account}")
        for amount in range(deposits):
            self.accounts[account].deposit(amount + 1)
        self.app.save(self.accounts[account])

    @rule(member=MEMBERS)
    def join(self, member: str) -> None:
        if member in self.members:
            return
        group = FileGroup(self.directory, PARTITIONS, member_id=member)
        group.join()
        runner = ProjectionRunner(
            self.app.store,
            self.app.codec,
            StreamOrder(),
            self.read_models,
            settings=RunnerSettings(batch_size=2),
        )
        self.members[member] = (group, runner)

    @rule(member=MEMBERS)
    def leave(self, member: str) -> None:
        if member in self.members:
            self.members.pop(member)[0].leave()

    @rule(member=MEMBERS)
    def die(self, member: str) -> None:
        # As when its process is killed: the kernel drops its locks, its files stay.
        if member not in self.members:
            return
        group, _ = self.members.pop(member)
        for fd in group._owned.values():
            os.close(fd)
        assert group._member_fd is not None
        os.close(group._member_fd)

    @rule(member=MEMBERS)
    def rebalance(self, member: str) -> None:
        if member in self.members:
            self.members[member][0].rebalance()

    @rule(member=MEMBERS)
    def step(self, member: str) -> None:
        if member in self.members:
            group, runner = self.members[member]
            runner.step(group.owned)

    @rule()
    def settle(self) -> None:
        """Every member rebalances twice (the first releases, the second takes),
        then catches up on what it owns."""
        if not self.members:
            return
        for _ in range(2):
            for member in sorted(self.members):
                self.members[member][0].rebalance()
        target = target_assignment(list(self.members), PARTITIONS)
        assert {m: g.owned for m, (g, _) in self.members.items()} == target
        for group, runner in self.members.values():
            runner.catch_up(group.owned)
        streams = dict(self.read_models.table(StreamOrder.name, "streams").items())
        versions = {
            a.id: self.app.store.stream_version(a.id) for a in self.accounts.values()
        }
        assert {s: row["last"] for s, row in streams.items()} == versions
        assert {s: row["applied"] for s, row in streams.items()} == versions

    @invariant()
    def no_partition_has_two_owners(self) -> None:
        owned = [p for group, _ in self.members.values() for p in group.owned]
        assert len(owned) == len(set(owned))

    @invariant()
    def no_stream_was_seen_out_of_order(self) -> None:
        if self.members:
            table = self.read_models.table(StreamOrder.name, "violations")
            assert dict(table.items()) == {}


TestRebalanceModel = RebalanceModel.TestCase
TestRebalanceModel.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None
)
