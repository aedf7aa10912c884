"""An application for the causal-order tests: the ledger on ``CAUSAL_STORE`` with
four partitions, and a projection that records every transfer received before
its sending was seen (which causal order never lets happen).

``python causal_app.py`` runs the projection's runner in steps, printing the
events applied by each, until it is killed.
"""

from __future__ import annotations

import os
from typing import Any

from example_ledger.commands import router
from example_ledger.domain import TransferReceived, TransferSent
from framework import Application, AppSettings
from framework.domain.envelope import EventEnvelope
from framework.projections import Projection, RunnerSettings, Transaction, on


class TransferOrder(Projection):
    """``sent`` and ``received`` per transfer id; ``early`` for every credit
    handled before its debit."""

    name = "transfer_order"
    tables = ("sent", "received", "early")
    order = "causal"

    @on(TransferSent)
    def _sent(self, e: EventEnvelope[Any], tx: Transaction) -> None:
        tx.table("sent").put(e.event.transfer_id, {"stamp": e.stamp})

    @on(TransferReceived)
    def _received(self, e: EventEnvelope[Any], tx: Transaction) -> None:
        transfer_id = e.event.transfer_id
        tx.table("received").put(transfer_id, {"stamp": e.stamp})
        if tx.table("sent").get(transfer_id) is None:
            tx.table("early").put(transfer_id, {"partition": e.partition})


def open_app(url: str) -> Application:
    app = Application(url, router=router, settings=AppSettings(partitions=4))
    app.project(TransferOrder(), settings=RunnerSettings(batch_size=7))
    return app


if __name__ == "__main__":
    with open_app(os.environ["CAUSAL_STORE"]) as app:
        runner = app.runner("transfer_order")
        print("ready", flush=True)
        while True:
            print(runner.step(), flush=True)
