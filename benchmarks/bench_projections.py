"""Projection benchmarks: catch-up of a balance-per-account projection into SQLite."""

from __future__ import annotations

import time

from benchmarks.core import Context, Measurement, bench
from example_ledger.domain import Account
from example_ledger.projections import Balances
from framework import Application, AppSettings
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


class _CausalBalances(Balances):
    name = "balances_causal"
    order = "causal"


@bench("projection_catch_up_causal", ("memory", "file"))
def projection_catch_up_causal(ctx: Context) -> Measurement:
    """The balances projection in causal order over eight partitions, against the
    same projection in partition order on the same store in the same run; the rate
    is the causal one, and ``ratio`` divides it by the partition-order rate."""
    with Application(ctx.url(), settings=AppSettings(partitions=8)) as app:
        for _ in range(ctx.n(1_000)):
            account = Account.open("owner")
            for _ in range(49):
                account.deposit(5)
            app.save(account)
        events = sum(e + 1 for e in app.end_position().values())
        seconds: dict[str, float] = {}
        for projection in (Balances(), _CausalBalances()):
            read_models = SQLiteReadModelStore(
                ctx.workdir / f"read-{projection.name}.sqlite"
            )
            runner = ProjectionRunner(
                app.store,
                app.codec,
                projection,
                read_models,
                settings=RunnerSettings(batch_size=2_000),
            )
            started = time.perf_counter()
            applied = runner.catch_up()
            seconds[projection.order] = time.perf_counter() - started
            read_models.close()
            if applied < events:
                raise RuntimeError(f"applied {applied} of {events} events")
    return Measurement(
        events=events,
        seconds=seconds["causal"],
        extra={
            "partition_order_events_per_s": round(events / seconds["partition"], 1),
            "ratio": round(seconds["partition"] / seconds["causal"], 3),
        },
    )
