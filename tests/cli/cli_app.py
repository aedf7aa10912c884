"""An application for the command-line tests, as users write one for ``--app``.

``build`` is a factory taking ``url`` (the ``--url`` of the command); ``app`` is an
instance built from ``FRAMEWORK_STORE_URL``; ``fixed`` opens ``CLI_FIXED_URL``
whatever ``--url`` says. Environment: ``CLI_PARTITIONS`` (default 2),
``CLI_FIXED=1`` repairs the failing handlers, ``CLI_BLOCK_AT=N`` makes the
``blocking`` projection print ``blocked`` on stdout at its N-th event in this
process and wait there until interrupted.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from example_ledger.commands import router
from example_ledger.domain import FundsDeposited
from example_ledger.projections import Balances
from framework import Application, AppSettings
from framework.domain import EventEnvelope
from framework.projections import RunnerSettings, Transaction, on
from framework.retry import RetryPolicy

FAST = RunnerSettings(
    batch_size=5, retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=False)
)


class Unlucky(Balances):
    """Fails on deposits of exactly 13 cents unless ``CLI_FIXED=1``."""

    name = "unlucky"

    @on(FundsDeposited)
    def _deposited(self, e: EventEnvelope[FundsDeposited], tx: Transaction) -> None:
        if e.event.amount == 13 and os.environ.get("CLI_FIXED") != "1":
            raise ValueError("unlucky amount")
        self._change(tx, e.stream_id, e.event.amount)


class Parking(Unlucky):
    name = "parking"
    failure = "park"


class Blocking(Balances):
    """Balances that, given ``CLI_BLOCK_AT=N``, stops at its N-th event until
    the process is interrupted (so that a test interrupts it mid-rebuild)."""

    name = "blocking"
    seen = 0

    @on(FundsDeposited)
    def _deposited(self, e: EventEnvelope[FundsDeposited], tx: Transaction) -> None:
        Blocking.seen += 1
        if Blocking.seen == int(os.environ.get("CLI_BLOCK_AT", "0")):
            print("blocked", flush=True)
            threading.Event().wait()
        self._change(tx, e.stream_id, e.event.amount)


PROJECTIONS = {"balances": Balances, "unlucky": Unlucky, "parking": Parking}


def build(url: str | None = None, projections: str | None = None) -> Application:
    """The application on ``url`` with the ``projections`` named (default:
    ``CLI_PROJECTIONS``, else balances), comma-separated."""
    settings = AppSettings(partitions=int(os.environ.get("CLI_PARTITIONS", "2")))
    app = Application(url, router=router, settings=settings)
    names = projections or os.environ.get("CLI_PROJECTIONS", "balances")
    for name in names.split(","):
        if name == "blocking":
            app.project(Blocking(), settings=FAST)
        else:
            app.project(PROJECTIONS[name](), settings=FAST)
    return app


def fixed() -> Application:
    return build(os.environ["CLI_FIXED_URL"])


def __getattr__(name: str) -> Any:
    # ``app`` is built when the command asks for it, so that importing this
    # module for ``build`` opens nothing.
    if name == "app":
        return build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
