"""A projection with ``order="causal"`` sees a debit before the credit it caused in
another partition, with its runner killed and restarted."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from causal_app import TransferOrder, open_app

from example_ledger.commands import Deposit, OpenAccount, Transfer
from framework import Application
from framework.errors import ConfigurationError
from tests.children import RunScript

HERE = Path(__file__).parent


def open_accounts(app: Application, count: int) -> list[str]:
    accounts = [app.handle(OpenAccount(f"owner{n}")).value for n in range(count)]
    for account in accounts:
        app.handle(Deposit(account, 1_000_000))
    return accounts


def transfer_between_partitions(
    app: Application, accounts: list[str], count: int, seed: int
) -> None:
    rng = random.Random(seed)
    pairs = [
        (a, b)
        for a in accounts
        for b in accounts
        if app.store.partition_of(a) != app.store.partition_of(b)
    ]
    for _ in range(count):
        source, target = rng.choice(pairs)
        app.handle(Transfer(source, target, 1))


def check(app: Application, transfers: int) -> None:
    runner = app.runner("transfer_order")
    runner.catch_up()
    model = app.read_model("transfer_order")
    assert dict(model.table("early").items()) == {}
    sent = dict(model.table("sent").items())
    received = dict(model.table("received").items())
    assert len(sent) == len(received) == transfers
    for transfer_id, row in received.items():
        assert row["stamp"] > sent[transfer_id]["stamp"]


@pytest.fixture(params=["file", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"file:{tmp_path / 'store'}"


def test_a_causal_projection_sees_each_debit_before_its_credit(store_url: str) -> None:
    with open_app(store_url) as app:
        accounts = open_accounts(app, 8)
        transfer_between_partitions(app, accounts, 60, 1)
        check(app, 60)
        assert app.runner("transfer_order").causal_out_of_order == 0


def test_a_killed_and_restarted_causal_runner_keeps_causal_order(
    store_url: str, run_script: RunScript
) -> None:
    rng = random.Random(7)
    transfers = 0
    with open_app(store_url) as app:
        accounts = open_accounts(app, 8)
        for round_number in range(8):
            transfer_between_partitions(app, accounts, 15, round_number)
            transfers += 15
            process = run_script(
                HERE / "causal_app.py", env={"CAUSAL_STORE": store_url}
            )
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n", process.communicate()[1]
            # Killed a few steps in: inside batches, between them, or idle.
            for _ in range(rng.randint(1, 6)):
                process.stdout.readline()
            process.kill()
            process.communicate(timeout=30)
        check(app, transfers)


def test_a_causal_projection_refuses_to_run_on_part_of_the_partitions(
    tmp_path: Path,
) -> None:
    from framework.projections.runner import ProjectionRunner

    with (
        open_app(f"file:{tmp_path / 'store'}") as app,
        pytest.raises(ConfigurationError, match="every partition"),
    ):
        ProjectionRunner(
            app.store,
            app.codec,
            TransferOrder(),
            app.read_models,
            partitions=[0, 1],
        )
