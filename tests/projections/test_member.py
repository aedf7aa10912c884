"""Members of a consumer group never apply an event twice while members come and
go."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from example_ledger.commands import Deposit, OpenAccount, router
from example_ledger.projections import Balances
from framework import Application
from framework.projections import ProjectionRunner, ReadModel, RunnerSettings
from framework.projections.backends.file_group import FileGroup
from framework.projections.backends.sqlite import SQLiteReadModelStore
from framework.projections.member import GroupMember


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
