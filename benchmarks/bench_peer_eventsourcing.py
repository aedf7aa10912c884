"""The peer: the `eventsourcing` package (9.5.6) on SQLite (WAL), measured like ours.

Only the benchmarks import it (``pip install -e '.[peers]'``); without it these
benchmarks report that they were skipped.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from benchmarks.core import Context, Measurement, bench


@functools.cache
def _account_class() -> Any:
    # Declared once: eventsourcing registers aggregate classes by topic and refuses
    # a second class under the same one.
    from eventsourcing.domain import Aggregate, event

    class PeerAccount(Aggregate):  # type: ignore[misc]
        @event("Opened")  # type: ignore[untyped-decorator]
        def __init__(self, owner: str) -> None:
            self.owner = owner
            self.balance = 0

        @event("Deposited")  # type: ignore[untyped-decorator]
        def deposit(self, amount: int) -> None:
            self.balance += amount

    return PeerAccount


def _peer(ctx: Context) -> tuple[Any, Any]:
    from eventsourcing.application import Application

    app = Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(ctx.workdir / "peer.sqlite"),
        }
    )
    return app, _account_class()


def _available() -> bool:
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        return False
    return True


@bench("peer_save_1", ("file",))
def peer_save_1(ctx: Context) -> Measurement:
    """eventsourcing + SQLite: create an aggregate (one event) and save it, durably."""
    if not _available():
        return Measurement(events=0, seconds=1.0, extra={"skipped": "no eventsourcing"})
    n = ctx.n(3_000)
    app, account_cls = _peer(ctx)
    accounts = [account_cls("owner") for _ in range(n)]
    started = time.perf_counter()
    for account in accounts:
        app.save(account)
    seconds = time.perf_counter() - started
    app.close()
    return Measurement(events=n, seconds=seconds, extra={"peer": "eventsourcing 9.5.6"})


@bench("peer_save_100", ("file",))
def peer_save_100(ctx: Context) -> Measurement:
    """eventsourcing + SQLite: an aggregate with 100 events saved at once."""
    if not _available():
        return Measurement(events=0, seconds=1.0, extra={"skipped": "no eventsourcing"})
    n = ctx.n(300)
    app, account_cls = _peer(ctx)
    accounts = []
    for _ in range(n):
        account = account_cls("owner")
        for _ in range(99):
            account.deposit(5)
        accounts.append(account)
    started = time.perf_counter()
    for account in accounts:
        app.save(account)
    seconds = time.perf_counter() - started
    app.close()
    return Measurement(events=n * 100, seconds=seconds)
