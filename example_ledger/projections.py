"""The ledger's read side: a balance per account, kept by a projection."""

from __future__ import annotations

from typing import Any

from example_ledger.domain import (
    AccountOpened,
    FundsDeposited,
    FundsWithdrawn,
    TransferReceived,
    TransferSent,
)
from framework.domain import EventEnvelope
from framework.projections import Projection, Transaction, on


class Balances(Projection):
    """``balances[account id] = {"owner": ..., "balance": cents, "events": n}``."""

    name = "balances"
    version = 1
    tables = ("balances",)

    @on(AccountOpened)
    def _opened(self, e: EventEnvelope[AccountOpened], tx: Transaction) -> None:
        tx.table("balances").put(
            e.stream_id, {"owner": e.event.owner, "balance": 0, "events": 1}
        )

    @on(FundsDeposited, TransferReceived)
    def _credited(self, e: EventEnvelope[Any], tx: Transaction) -> None:
        self._change(tx, e.stream_id, e.event.amount)

    @on(FundsWithdrawn, TransferSent)
    def _debited(self, e: EventEnvelope[Any], tx: Transaction) -> None:
        self._change(tx, e.stream_id, -e.event.amount)

    @staticmethod
    def _change(tx: Transaction, account_id: str, amount: int) -> None:
        table = tx.table("balances")
        row = table.get(account_id)
        if row is None:
            raise LookupError(f"no opening event seen for account {account_id}")
        row["balance"] += amount
        row["events"] += 1
        table.put(account_id, row)
