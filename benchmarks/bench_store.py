"""Application-level benchmarks: saves of 1 and 100 events, stream loads, replay."""

from __future__ import annotations

import random
import statistics
import threading
import time

from benchmarks.core import Context, Measurement, bench
from example_ledger.domain import Account
from framework import Application, AppSettings

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


def _save_all(
    app: Application, accounts: list[Account], start: threading.Barrier
) -> None:
    start.wait()
    for account in accounts:
        app.save(account)


@bench("save_1_threads4", ("file",))
def save_1_threads4(ctx: Context) -> Measurement:
    """Single-event saves from four threads, each saving new accounts, with the
    default partitions (one on files) and with eight: on one partition the threads
    share group commits, on eight they mostly fsync different files."""
    per_thread = ctx.n(1_500)
    rates: dict[int | None, tuple[float, float]] = {}
    for partitions in (None, 8):
        url = f"file:{ctx.workdir / f'store-{partitions}'}"
        with Application(url, settings=AppSettings(partitions=partitions)) as app:
            accounts = [
                [Account.open("owner") for _ in range(per_thread)] for _ in range(4)
            ]
            start = threading.Barrier(5)

            threads = [
                threading.Thread(target=_save_all, args=(app, a, start))
                for a in accounts
            ]
            for thread in threads:
                thread.start()
            start.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
        rates[partitions] = (4 * per_thread / seconds, seconds)
    seconds = rates[None][1]
    return Measurement(
        events=4 * per_thread,
        seconds=seconds,
        extra={"partitions_8_events_per_s": round(rates[8][0], 1)},
    )


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


@bench("open_load_1m", ("file",))
def open_load_1m(ctx: Context) -> Measurement:
    """A log of 1,000,000 events (50,000 accounts of 20): time to open it, and the
    median time to load one 20-event aggregate from it."""
    streams = ctx.n(50_000)
    with _app(ctx) as app:
        batch = []
        for _ in range(streams):
            account = Account.open("owner")
            for _ in range(19):
                account.deposit(5)
            batch.append(account)
            if len(batch) == 100:
                app.save(*batch)
                batch = []
        if batch:
            app.save(*batch)
        ids = [a.id for a in batch] or [account.id]
    started = time.perf_counter()
    app = _app(ctx)
    app.load(Account, ids[0])  # the first load reads the partition's index
    opened = time.perf_counter() - started
    rng = random.Random(3)
    with app:
        all_ids = _sample_ids(app, rng, 2_000)
        latencies = []
        started = time.perf_counter()
        for account_id in all_ids:
            t0 = time.perf_counter()
            app.load(Account, account_id)
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - started
    return Measurement(
        events=len(all_ids) * 20,
        seconds=seconds,
        extra={
            "log_events": streams * 20,
            "open_s": round(opened, 3),
            "load_median_us": round(statistics.median(latencies) * 1e6, 1),
            "load_p99_us": round(
                sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1e6, 1
            ),
        },
    )


def _sample_ids(app: Application, rng: random.Random, count: int) -> list[str]:
    """Stream ids from random offsets of random partitions."""
    ids: list[str] = []
    while len(ids) < count:
        partition = rng.randrange(app.store.partitions)
        ends = app.store.end_position()
        if partition not in ends:
            continue
        offset = rng.randrange(ends[partition] + 1)
        ids.append(app.store.read_partition(partition, offset, 1)[0].stream_id)
    return ids


def pairs_against_singles(app: Application, n: int) -> tuple[float, float]:
    """Seconds of ``n`` one-aggregate saves and of ``n`` saves of two aggregates
    in different partitions, in alternating blocks, so that drift during the run
    hits both alike."""
    singles = [Account.open("owner") for _ in range(n)]
    pairs: list[tuple[Account, Account]] = []
    while len(pairs) < n:
        a, b = Account.open("owner"), Account.open("owner")
        if app.store.partition_of(a.id) != app.store.partition_of(b.id):
            pairs.append((a, b))
    app.save(Account.open("warm-up"))
    single_seconds = pair_seconds = 0.0
    block = max(1, n // 10)
    for start in range(0, n, block):
        started = time.perf_counter()
        for account in singles[start : start + block]:
            app.save(account)
        single_seconds += time.perf_counter() - started
        started = time.perf_counter()
        for a, b in pairs[start : start + block]:
            app.save(a, b)
        pair_seconds += time.perf_counter() - started
    return single_seconds, pair_seconds


@bench("save_pair_across", BACKENDS)
def save_pair_across(ctx: Context) -> Measurement:
    """Saves of two aggregates in different partitions (one atomic append across
    partitions), against saves of one aggregate on the same four-partition store
    in the same run; the rate is pair saves per second, and ``ratio`` divides it
    by the one-aggregate saves per second."""
    n = ctx.n(5_000 if ctx.backend == "memory" else 1_000)
    with Application(ctx.url(), settings=AppSettings(partitions=4)) as app:
        single_seconds, pair_seconds = pairs_against_singles(app, n)
    return Measurement(
        events=n,
        seconds=pair_seconds,
        extra={
            "single_saves_per_s": round(n / single_seconds, 1),
            "ratio": round(single_seconds / pair_seconds, 3),
        },
    )
