"""The ledger demo: every step prints what happened; the balances must add up.

On a file store the data stays under the store's folder, and running the demo again
continues from it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

import attrs

from example_ledger.commands import (
    Deposit,
    OpenAccount,
    Transfer,
    Withdraw,
    router,
)
from example_ledger.domain import (
    Account,
    FundsDeposited,
    FundsWithdrawn,
    InsufficientFundsError,
)
from example_ledger.projections import Balances
from framework import (
    Application,
    CommandRouter,
    ConcurrencyError,
    UnitOfWork,
)

DEFAULT_URL = "file:./var/ledger"
OWNERS = ("alice", "bob", "carol")


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


def run(url: str = DEFAULT_URL, out: TextIO | None = None) -> dict[str, int]:
    """Run the demo against ``url``; return the final balances by owner."""

    def say(text: str) -> None:
        print(text, file=out or sys.stdout)

    app = build_app(url)
    balances = app.project(Balances(), inline=True)
    ids = {owner: f"acct-{owner}" for owner in OWNERS}
    stored = sum(offset + 1 for offset in app.end_position().values())
    say(f"Ledger demo on {url}")
    if app.store.stream_version(ids["alice"]):
        say(f"continuing from the stored state: {stored} events already stored")
    else:
        for owner, account_id in ids.items():
            app.handle(OpenAccount(owner, account_id))
        say(f"opened accounts for {', '.join(ids)}")

    for owner, amount in (("alice", 10_000), ("bob", 2_500), ("carol", 700)):
        app.handle(Deposit(ids[owner], amount))
        say(f"deposit   {owner:<5} +{amount:>6}")

    app.handle(Withdraw(ids["bob"], 500))
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
        app.handle(Withdraw(ids["carol"], carol.balance + 5_000))
    except InsufficientFundsError as exc:
        say(f"rejected  {exc}")
    after = app.load(Account, ids["carol"])
    say(f"  carol is still at version {after.version} (was {carol.version})")

    _conflicts(app, ids["alice"], say)

    then = app.load(Account, ids["alice"], version=2)
    say(f"history   alice at version 2 held {then.balance}")

    final = {owner: app.load(Account, i).balance for owner, i in ids.items()}
    projected = {
        owner: balances.get("balances", i)["balance"] for owner, i in ids.items()
    }
    paid_in = paid_out = 0
    for envelope in app.iter_all_events():
        if isinstance(envelope.event, FundsDeposited):
            paid_in += envelope.event.amount
        elif isinstance(envelope.event, FundsWithdrawn):
            paid_out += envelope.event.amount
    say("final balances (aggregates / read model):")
    for owner, balance in final.items():
        say(f"  {owner:<5} {balance:>8} / {projected[owner]:>8}")
    total = sum(final.values())
    adds_up = total == paid_in - paid_out and projected == final
    say(
        f"  total {total:>8} = paid in {paid_in} - paid out {paid_out} over the "
        f"whole log: {'adds up' if adds_up else 'DOES NOT ADD UP'}"
    )
    if url.startswith("file:"):
        say(f"data kept in {url[len('file:') :]}; run again to continue from it")
    app.close()
    if not adds_up:
        raise SystemExit("the ledger does not add up")
    return final


def _conflicts(app: Application, alice: str, say: Callable[[str], None]) -> None:
    """A stale save that is refused, then a command that conflicts and is retried."""
    mine = app.load(Account, alice)
    theirs = app.load(Account, alice)
    theirs.deposit(100)
    app.save(theirs)
    mine.deposit(200)
    try:
        app.save(mine)
    except ConcurrencyError as exc:
        say(
            f"conflict  saving a stale copy of alice: expected version "
            f"{exc.expected_version}, stored {exc.actual_version}; nothing written"
        )

    retried = app.handle(SlowDeposit(alice, 250))
    say(
        f"retried   a deposit to alice that conflicted succeeded on try "
        f"{retried.attempts}"
    )
