"""Projection benchmarks: catch-up of a balance-per-account projection into SQLite."""

from __future__ import annotations

import time

from benchmarks.core import Context, Measurement, bench
from example_ledger.domain import Account
from example_ledger.projections import Balances
from framework import Application
from framework.projections import ProjectionRunner, RunnerSettings
from framework.projections.backends.sqlite import SQLiteReadModelStore


@bench("projection_catch_up_sqlite", ("memory", "file"))
def projection_catch_up_sqlite(ctx: Context) -> Measurement:
    """Apply 200,000 ledger events (2,000 accounts) to a SQLite read model."""
    with Application(ctx.url()) as app:
        for _ in range(ctx.n(2_000)):
            account = Account.open("owner")
            for _ in range(99):
                account.deposit(5)
            app.save(account)
        events = sum(e + 1 for e in app.end_position().values())
        read_models = SQLiteReadModelStore(ctx.workdir / "read.sqlite")
        runner = ProjectionRunner(
            app.store,
            app.codec,
            Balances(),
            read_models,
            settings=RunnerSettings(batch_size=2_000),
        )
        started = time.perf_counter()
        applied = runner.catch_up()
        seconds = time.perf_counter() - started
        read_models.close()
    if applied != events:
        raise RuntimeError(f"applied {applied} of {events} events")
    return Measurement(events=applied, seconds=seconds)
