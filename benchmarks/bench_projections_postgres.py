"""Projection benchmarks on PostgreSQL: catch-up into PostgreSQL read models, and
read-your-write latency of a pull query with the runner in another process.

``python -m benchmarks --runs 3 projection_catch_up_postgres projection_pull_latency``.
Each run gets a schema of its own (``FRAMEWORK_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1/test``), dropped afterwards.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.bench_postgres import fresh_schema, our_url
from benchmarks.core import Context, Measurement, bench
from example_ledger.domain import Account
from example_ledger.projections import Balances
from framework import Application
from framework.projections import ProjectionRunner, RunnerSettings

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def _store_url(ctx: Context) -> Iterator[str]:
    if ctx.backend == "postgres":
        with fresh_schema() as schema:
            yield our_url(schema)
    else:
        yield ctx.url()


@bench("projection_catch_up_postgres", ("postgres",))
def projection_catch_up_postgres(ctx: Context) -> Measurement:
    """Apply 200,000 ledger events (2,000 accounts of 100) from the PostgreSQL
    store to PostgreSQL read models, batches of 2,000."""
    with _store_url(ctx) as url, Application(url) as app:
        for _ in range(ctx.n(2_000)):
            account = Account.open("owner")
            for _ in range(99):
                account.deposit(5)
            app.save(account)
        events = sum(e + 1 for e in app.end_position().values())
        runner = ProjectionRunner(
            app.store,
            app.codec,
            Balances(),
            app.read_models,
            settings=RunnerSettings(batch_size=2_000),
        )
        started = time.perf_counter()
        applied = runner.catch_up()
        seconds = time.perf_counter() - started
    if applied != events:
        raise RuntimeError(f"applied {applied} of {events} events")
    return Measurement(events=applied, seconds=seconds)


@bench("projection_pull_latency", ("postgres", "file"))
def projection_pull_latency(ctx: Context) -> Measurement:
    """Save one deposit, then ``get(after=position)`` while the runner is another
    process (``python -m framework projections run``): 300 times; ``extra`` has
    the median milliseconds of the whole round and of its wait."""
    n = ctx.n(300)
    with _store_url(ctx) as url:
        with Application(url) as setup:  # creates the store before the runner
            setup.project(Balances())
        runner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "framework",
                "projections",
                "run",
                "--app",
                "benchmarks.projection_app:app",
            ],
            env={**os.environ, "BENCH_STORE_URL": url},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with Application(url) as app:
                read = app.read_model("balances")
                account = Account.open("owner")
                position = app.save(account)
                # Warm up: the runner process starts and catches up.
                read.get("balances", account.id, after=position, timeout=60)
                rounds: list[float] = []
                waits: list[float] = []
                started = time.perf_counter()
                for _ in range(n):
                    account.deposit(1)
                    begin = time.perf_counter()
                    position = app.save(account)
                    saved = time.perf_counter()
                    row = read.get("balances", account.id, after=position, timeout=5)
                    end = time.perf_counter()
                    rounds.append(end - begin)
                    waits.append(end - saved)
                seconds = time.perf_counter() - started
                if row["balance"] != n:
                    raise RuntimeError(f"balance {row['balance']}, expected {n}")
        finally:
            runner.terminate()
            runner.wait(10)
    return Measurement(
        events=n,
        seconds=seconds,
        extra={
            "median_ms": round(statistics.median(rounds) * 1000, 3),
            "median_wait_ms": round(statistics.median(waits) * 1000, 3),
            "p90_ms": round(statistics.quantiles(rounds, n=10)[-1] * 1000, 3),
        },
    )
