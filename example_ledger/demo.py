"""The ledger demo: every step prints what happened; the balances must add up."""

from __future__ import annotations

import sys

import attrs

from example_ledger.commands import (
    Deposit,
    OpenAccount,
    Transfer,
    Withdraw,
    router,
)
from example_ledger.domain import Account, InsufficientFundsError
from framework import (
    Application,
    CommandRouter,
    ConcurrencyError,
    UnitOfWork,
)

DEFAULT_URL = "memory://"


@attrs.frozen
class SlowDeposit:
    """A deposit by a clerk who is slow to press save: someone else saves first."""

    account_id: str
    amount: int


def build_app(url: str) -> Application:
    demo_router = CommandRouter()
    demo_router.include(router)
    app = Application(url, router=demo_router)

    @demo_router.handles(SlowDeposit)
    def slow_deposit(command: SlowDeposit, uow: UnitOfWork) -> int:
        account = uow.load(Account, command.account_id)
        account.deposit(command.amount)
        if uow.attempt == 1:
            # Between this clerk's load and save, a colleague deposits 1 cent.
            app.handle(Deposit(command.account_id, 1))
        return account.balance

    return app


def run(url: str = DEFAULT_URL, out: object = None) -> dict[str, int]:
    """Run the demo against ``url``; return the final balances by owner."""

    def say(text: str) -> None:
        print(text, file=out or sys.stdout)

    app = build_app(url)
    say(f"Ledger demo on {url}")
    ids = {
        owner: app.handle(OpenAccount(owner)).value
        for owner in ("alice", "bob", "carol")
    }
    say(f"opened accounts for {', '.join(ids)}")

    paid_in = 0
    for owner, amount in (("alice", 10_000), ("bob", 2_500), ("carol", 700)):
        app.handle(Deposit(ids[owner], amount))
        paid_in += amount
        say(f"deposit   {owner:<5} +{amount:>6}")

    app.handle(Withdraw(ids["bob"], 500))
    paid_out = 500
    say("withdraw  bob   -   500")

    result = app.handle(Transfer(ids["alice"], ids["bob"], 3_000))
    sent = result.events[0]
    received = app.read_stream(ids["bob"])[-1]
    say("transfer  alice -> bob 3000")
    say(
        f"  the credit to bob was caused by alice's {sent.name} "
        f"(causation {received.causation_id == str(sent.event_id)}, same "
        f"correlation {received.correlation_id == sent.correlation_id})"
    )

    carol = app.load(Account, ids["carol"])
    try:
        app.handle(Withdraw(ids["carol"], 5_000))
    except InsufficientFundsError as exc:
        say(f"rejected  {exc}")
    after = app.load(Account, ids["carol"])
    say(f"  carol is still at version {after.version} (was {carol.version})")

    mine = app.load(Account, ids["alice"])
    theirs = app.load(Account, ids["alice"])
    theirs.deposit(100)
    app.save(theirs)
    paid_in += 100
    mine.deposit(200)
    try:
        app.save(mine)
    except ConcurrencyError as exc:
        say(
            f"conflict  saving a stale copy of alice: expected version "
            f"{exc.expected_version}, stored {exc.actual_version}; nothing written"
        )

    retried = app.handle(SlowDeposit(ids["alice"], 250))
    paid_in += 250 + 1
    say(
        f"retried   a deposit to alice that conflicted succeeded on try "
        f"{retried.attempts}"
    )

    then = app.load(Account, ids["alice"], version=2)
    say(f"history   alice at version 2 held {then.balance}")

    balances = {owner: app.load(Account, i).balance for owner, i in ids.items()}
    say("final balances:")
    for owner, balance in balances.items():
        say(f"  {owner:<5} {balance:>8}")
    total = sum(balances.values())
    adds_up = total == paid_in - paid_out
    say(
        f"  total {total:>8} = paid in {paid_in} - paid out {paid_out}: "
        f"{'adds up' if adds_up else 'DOES NOT ADD UP'}"
    )
    app.close()
    if not adds_up:
        raise SystemExit("the ledger does not add up")
    return balances
