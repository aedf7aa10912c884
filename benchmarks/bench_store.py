"""Application-level benchmarks: saves of 1 and 100 events, stream loads, replay."""

from __future__ import annotations

import random
import statistics
import time

from benchmarks.core import Context, Measurement, bench
from example_ledger.domain import Account
from framework import Application

BACKENDS = ("memory", "file")


def _app(ctx: Context) -> Application:
    return Application(ctx.url())


@bench("save_1", BACKENDS)
def save_1(ctx: Context) -> Measurement:
    """Single-event saves: create an account (one event) and save it."""
    n = ctx.n(20_000 if ctx.backend == "memory" else 3_000)
    with _app(ctx) as app:
        accounts = [Account.open("owner") for _ in range(n)]
        started = time.perf_counter()
        for account in accounts:
            app.save(account)
        seconds = time.perf_counter() - started
    return Measurement(events=n, seconds=seconds)


@bench("save_100", BACKENDS)
def save_100(ctx: Context) -> Measurement:
    """100-event saves: an account opened and given 99 deposits, saved at once."""
    n = ctx.n(1_000)
    with _app(ctx) as app:
        accounts = []
        for _ in range(n):
            account = Account.open("owner")
            for _ in range(99):
                account.deposit(5)
            accounts.append(account)
        started = time.perf_counter()
        for account in accounts:
            app.save(account)
        seconds = time.perf_counter() - started
    return Measurement(events=n * 100, seconds=seconds)


def _populate(app: Application, streams: int, per_stream: int) -> list[str]:
    ids = []
    for _ in range(streams):
        account = Account.open("owner")
        for _ in range(per_stream - 1):
            account.deposit(5)
        app.save(account)
        ids.append(account.id)
    return ids


@bench("load_20", BACKENDS)
def load_20(ctx: Context) -> Measurement:
    """Loading 20-event aggregates (decoded and replayed) among 2,000 streams."""
    with _app(ctx) as app:
        ids = _populate(app, ctx.n(2_000), 20)
        rng = random.Random(7)
        picks = [rng.choice(ids) for _ in range(ctx.n(5_000))]
        app.load(Account, picks[0])  # warm the stream index
        latencies = []
        started = time.perf_counter()
        for account_id in picks:
            t0 = time.perf_counter()
            app.load(Account, account_id)
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - started
    return Measurement(
        events=len(picks) * 20,
        seconds=seconds,
        extra={"load_median_us": round(statistics.median(latencies) * 1e6, 1)},
    )


@bench("replay", BACKENDS)
def replay(ctx: Context) -> Measurement:
    """Replay every partition through the application, decoded to domain events."""
    with _app(ctx) as app:
        _populate(app, ctx.n(2_000), 100)
        started = time.perf_counter()
        count = sum(1 for _ in app.iter_all_events())
        seconds = time.perf_counter() - started
    return Measurement(events=count, seconds=seconds)
