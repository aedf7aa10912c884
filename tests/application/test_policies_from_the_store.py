"""Policies run from the store: each event's commands are handled exactly once,
through SIGKILLs of the runner and with two runners at once."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

import pytest
from policy_worker import SETTINGS

from example_ledger.commands import Deposit, OpenAccount, Transfer, router
from example_ledger.domain import TransferReceived, TransferSent
from framework import Application
from framework.domain.events import DomainEvent, event
from framework.errors import ConfigurationError, EventRegistrationError
from tests.children import RunScript

HERE = Path(__file__).parent


def open_app(url: str) -> Application:
    return Application(url, router=router, settings=SETTINGS)


def transfers(app: Application, accounts: list[str], count: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(count):
        source, target = rng.sample(accounts, 2)
        app.handle(Transfer(source, target, 1))


def open_accounts(app: Application, count: int) -> list[str]:
    accounts = [app.handle(OpenAccount(f"owner{n}")).value for n in range(count)]
    for account in accounts:
        app.handle(Deposit(account, 1_000))
    return accounts


def received_per_transfer(
    app: Application, accounts: list[str]
) -> tuple[set[str], Counter[str]]:
    sent: set[str] = set()
    received: Counter[str] = Counter()
    for account in accounts:
        for envelope in app.read_stream(account):
            if isinstance(envelope.event, TransferSent):
                sent.add(envelope.event.transfer_id)
            elif isinstance(envelope.event, TransferReceived):
                received[envelope.event.transfer_id] += 1
    return sent, received


def test_a_transfer_is_credited_once_the_runner_has_run_and_only_once() -> None:
    with open_app("memory://") as app:
        accounts = open_accounts(app, 4)
        transfers(app, accounts, 10, 1)
        sent, received = received_per_transfer(app, accounts)
        assert len(sent) == 10
        assert not received
        app.policies.catch_up()
        app.policies.catch_up()
        sent, received = received_per_transfer(app, accounts)
        assert set(received) == sent
        assert set(received.values()) == {1}
        # Projections and replays pass the checkpoints by.
        names = {e.name for e in app.iter_all_events()}
        assert not any(n.startswith("$") for n in names)


def test_two_runners_at_once_handle_each_event_once() -> None:
    with open_app("memory://") as app:
        accounts = open_accounts(app, 6)
        transfers(app, accounts, 40, 2)
        runners = [app.policies, _second_runner(app)]
        threads = [threading.Thread(target=r.catch_up) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for runner in runners:
            runner.catch_up()
        sent, received = received_per_transfer(app, accounts)
        assert set(received) == sent
        assert set(received.values()) == {1}


def _second_runner(app: Application) -> object:
    from framework.application.policies import PolicyRunner

    return PolicyRunner(
        store=app.store,
        codec=app.codec,
        router=app.router,
        repository=app.repository,
        load=app.load,
        retry=app.settings.command_retry,
    )


def test_the_runner_is_refused_when_policies_run_inline() -> None:
    with (
        Application("memory://", router=router) as app,
        pytest.raises(ConfigurationError, match='policies="log"'),
    ):
        app.policies  # noqa: B018


def test_event_names_starting_with_a_dollar_are_the_frameworks() -> None:
    with pytest.raises(EventRegistrationError, match="framework's own"):

        @event("$mine.Happened")
        class Happened(DomainEvent):
            pass


def kill_runners(url: str, run_script: RunScript, kills: int) -> None:
    rng = random.Random(kills)
    with open_app(url) as app:
        accounts = open_accounts(app, 8)
        for round_number in range(kills):
            transfers(app, accounts, 10, round_number)
            process = run_script(HERE / "policy_worker.py", url)
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n", process.communicate()[1]
            for _ in range(rng.randint(0, 4)):
                process.stdout.readline()
            process.kill()
            process.communicate(timeout=30)
        app.policies.catch_up()
        sent, received = received_per_transfer(app, accounts)
        assert len(sent) == 10 * kills
        assert set(received) == sent, "a transfer was never credited"
        assert set(received.values()) == {1}, "a transfer was credited twice"


def test_a_killed_policy_runner_credits_every_transfer_exactly_once(
    tmp_path: Path, run_script: RunScript
) -> None:
    kill_runners(f"file:{tmp_path / 'store'}", run_script, 12)


@pytest.mark.postgres
def test_a_killed_policy_runner_on_postgresql_credits_exactly_once(
    pg_url: str, run_script: RunScript
) -> None:
    kill_runners(pg_url, run_script, 12)
