"""PostgreSQL benchmarks: the raw limits, our store, and the ``eventsourcing`` peer.

Run ``python -m benchmarks --runs 3 pg_save_1 ...``. Backends: ``raw`` (psycopg
alone), ``postgres`` (ours) and ``peer`` (``eventsourcing`` 9.5.6, the ``peers``
extra). Each run gets a schema of its own, dropped afterwards; the peer's are in a
database of its own on the same server (``framework_bench_peer``, made on first
use). The server comes from ``FRAMEWORK_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1/test``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from benchmarks.bench_store import pairs_against_singles
from benchmarks.core import Context, Measurement, bench
from example_ledger.domain import Account
from framework import Application, AppSettings

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
APP = ("postgres", "peer")
RAW = ("raw",)


def server_url() -> str:
    return os.environ.get("FRAMEWORK_DATABASE_URL") or DEFAULT_URL


#: The peer's database: its tables live apart from ours, on the same server.
PEER_DATABASE = "framework_bench_peer"


def peer_url() -> str:
    """``server_url`` with the peer's database in place of ours."""
    parts = urlsplit(server_url())
    return urlunsplit(parts._replace(path=f"/{PEER_DATABASE}"))


def _ensure_peer_database() -> None:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (PEER_DATABASE,)
        ).fetchone()
        if found is None:
            # Another run may make it at the same moment: that is what we wanted.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PEER_DATABASE))
                )


def backend_url(backend: str) -> str:
    """Where a backend's tables go: the peer in a database of its own (made on
    first use), the raw limits and ours in the server URL's database."""
    if backend == "peer":
        _ensure_peer_database()
        return peer_url()
    return server_url()


@contextmanager
def fresh_schema(url: str | None = None) -> Iterator[str]:
    """A new schema in ``url``'s database (the server URL's by default), dropped
    afterwards."""
    url = url or server_url()
    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def our_url(schema: str) -> str:
    url = server_url()
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


# -- the peer ------------------------------------------------------------------


def _peer_app(schema: str, *, create_table: bool = True) -> Any:
    from eventsourcing.application import Application as PeerApplication

    parts = urlsplit(peer_url())
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": PEER_DATABASE,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_SCHEMA": schema,
        # Racing CREATE TABLE IF NOT EXISTS from several processes fails.
        "CREATE_TABLE": "yes" if create_table else "no",
    }
    return PeerApplication(env=env)


def _peer_account() -> type[Any]:
    from eventsourcing.domain import Aggregate, event

    class PeerAccount(Aggregate):  # type: ignore[misc]
        @event("Opened")  # type: ignore[misc]
        def __init__(self, owner: str) -> None:
            self.owner = owner
            self.balance = 0

        @event("Deposited")  # type: ignore[misc]
        def deposit(self, amount: int) -> None:
            self.balance += amount

    return PeerAccount


_PEER_ACCOUNT: type[Any] | None = None


def peer_account() -> type[Any]:
    global _PEER_ACCOUNT  # noqa: PLW0603 - one class per process, built lazily
    if _PEER_ACCOUNT is None:
        _PEER_ACCOUNT = _peer_account()
    return _PEER_ACCOUNT


# -- raw limits ----------------------------------------------------------------


def _raw_table(conn: psycopg.Connection[Any], schema: str) -> sql.Composed:
    table = sql.Identifier(schema, "raw")
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, data bytea)"
        ).format(table)
    )
    return sql.SQL("INSERT INTO {} (data) VALUES (%s)").format(table)


@bench("pg_raw_insert", RAW)
def raw_insert(ctx: Context) -> Measurement:
    """One single-row INSERT per commit on one connection."""
    n = ctx.n(5_000)
    payload = b"x" * 100
    with fresh_schema() as schema, psycopg.connect(server_url(), autocommit=True) as c:
        insert = _raw_table(c, schema)
        started = time.perf_counter()
        for _ in range(n):
            c.execute(insert, (payload,))
        seconds = time.perf_counter() - started
    return Measurement(events=n, seconds=seconds)


@bench("pg_raw_executemany_100", RAW)
def raw_executemany(ctx: Context) -> Measurement:
    """executemany of 100 rows per commit."""
    n = ctx.n(300)
    rows = [(b"x" * 100,)] * 100
    with fresh_schema() as schema, psycopg.connect(server_url()) as c:
        insert = _raw_table(c, schema)
        c.commit()
        started = time.perf_counter()
        for _ in range(n):
            with c.cursor() as cur:
                cur.executemany(insert, rows)
            c.commit()
        seconds = time.perf_counter() - started
    return Measurement(events=n * 100, seconds=seconds)


def _raw_worker(schema: str, count: int, start_at: float) -> tuple[float, float]:
    with psycopg.connect(server_url(), autocommit=True) as c:
        insert = sql.SQL("INSERT INTO {} (data) VALUES (%s)").format(
            sql.Identifier(schema, "raw")
        )
        time.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        for _ in range(count):
            c.execute(insert, (b"x" * 100,))
        return began, time.time()


def _in_processes(
    worker: Callable[..., tuple[float, float]], args: list[tuple[Any, ...]]
) -> float:
    """Run ``worker`` in one process per args tuple, started together; return the
    wall-clock seconds from the first start to the last finish."""
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(len(args)) as pool:
        spans = pool.starmap(worker, args)
    return max(end for _, end in spans) - min(begin for begin, _ in spans)


@bench("pg_raw_insert_4", RAW)
def raw_insert_4(ctx: Context) -> Measurement:
    """Single-row INSERT per commit from 4 processes at once."""
    per = ctx.n(2_500)
    with fresh_schema() as schema:
        with psycopg.connect(server_url(), autocommit=True) as c:
            _raw_table(c, schema)
        start_at = time.time() + 3
        seconds = _in_processes(_raw_worker, [(schema, per, start_at)] * 4)
    return Measurement(events=4 * per, seconds=seconds)


# -- ours and the peer ---------------------------------------------------------


@bench("pg_save_1", APP)
def save_1(ctx: Context) -> Measurement:
    """Single-event saves (a new account) from one writer."""
    n = ctx.n(3_000 if ctx.backend == "postgres" else 1_500)
    with fresh_schema(backend_url(ctx.backend)) as schema:
        if ctx.backend == "postgres":
            with Application(our_url(schema)) as app:
                accounts = [Account.open("owner") for _ in range(n)]
                app.save(Account.open("warm-up"))
                started = time.perf_counter()
                for account in accounts:
                    app.save(account)
                seconds = time.perf_counter() - started
        else:
            peer = _peer_app(schema)
            cls = peer_account()
            accounts = [cls("owner") for _ in range(n)]
            peer.save(cls("warm-up"))
            started = time.perf_counter()
            for account in accounts:
                peer.save(account)
            seconds = time.perf_counter() - started
            peer.close()
    return Measurement(events=n, seconds=seconds)


def _writer(
    backend: str, schema: str, count: int, start_at: float
) -> tuple[float, float]:
    if backend == "postgres":
        with Application(our_url(schema)) as app:
            app.save(Account.open("warm-up"))
            accounts = [Account.open("owner") for _ in range(count)]
            time.sleep(max(0.0, start_at - time.time()))
            began = time.time()
            for account in accounts:
                app.save(account)
            return began, time.time()
    peer = _peer_app(schema, create_table=False)
    cls = peer_account()
    peer.save(cls("warm-up"))
    peer_accounts = [cls("owner") for _ in range(count)]
    time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    for peer_account_ in peer_accounts:
        peer.save(peer_account_)
    ended = time.time()
    peer.close()
    return began, ended


@bench("pg_save_1_4procs", APP)
def save_1_4procs(ctx: Context) -> Measurement:
    """Single-event saves from 4 writer processes at once."""
    per = ctx.n(2_000 if ctx.backend == "postgres" else 600)
    with fresh_schema(backend_url(ctx.backend)) as schema:
        # Create the tables before the race, as a deployment's migrate step would.
        if ctx.backend == "postgres":
            Application(our_url(schema)).close()
        else:
            _peer_app(schema).close()
        start_at = time.time() + 4
        seconds = _in_processes(_writer, [(ctx.backend, schema, per, start_at)] * 4)
    return Measurement(events=4 * per, seconds=seconds)


@bench("pg_command", APP)
def command(ctx: Context) -> Measurement:
    """Load-change-save commands: load an account, deposit, save."""
    n = ctx.n(2_000 if ctx.backend == "postgres" else 1_000)
    rng = random.Random(3)
    with fresh_schema(backend_url(ctx.backend)) as schema:
        if ctx.backend == "postgres":
            with Application(our_url(schema)) as app:
                ids = []
                for _ in range(200):
                    account = Account.open("owner")
                    for _ in range(9):
                        account.deposit(1)
                    app.save(account)
                    ids.append(account.id)
                picks = [rng.choice(ids) for _ in range(n)]
                started = time.perf_counter()
                for account_id in picks:
                    account = app.load(Account, account_id)
                    account.deposit(1)
                    app.save(account)
                seconds = time.perf_counter() - started
        else:
            peer = _peer_app(schema)
            cls = peer_account()
            peer_ids = []
            for _ in range(200):
                peer_acc = cls("owner")
                for _ in range(9):
                    peer_acc.deposit(1)
                peer.save(peer_acc)
                peer_ids.append(peer_acc.id)
            picks_ = [rng.choice(peer_ids) for _ in range(n)]
            started = time.perf_counter()
            for peer_id in picks_:
                peer_acc = peer.repository.get(peer_id)
                peer_acc.deposit(1)
                peer.save(peer_acc)
            seconds = time.perf_counter() - started
            peer.close()
    return Measurement(events=n, seconds=seconds)


@bench("pg_save_100", APP)
def save_100(ctx: Context) -> Measurement:
    """100-event saves: an account opened and given 99 deposits, saved at once."""
    n = ctx.n(300)
    with fresh_schema(backend_url(ctx.backend)) as schema:
        if ctx.backend == "postgres":
            with Application(our_url(schema)) as app:
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
        else:
            peer = _peer_app(schema)
            cls = peer_account()
            peer_accounts = []
            for _ in range(n):
                peer_acc = cls("owner")
                for _ in range(99):
                    peer_acc.deposit(5)
                peer_accounts.append(peer_acc)
            started = time.perf_counter()
            for peer_acc in peer_accounts:
                peer.save(peer_acc)
            seconds = time.perf_counter() - started
            peer.close()
    return Measurement(events=n * 100, seconds=seconds)


@bench("pg_replay", APP)
def replay(ctx: Context) -> Measurement:
    """Replay every stored event, decoded to domain events (1,000 x 100 events)."""
    streams = ctx.n(1_000)
    with fresh_schema(backend_url(ctx.backend)) as schema:
        if ctx.backend == "postgres":
            with Application(our_url(schema)) as app:
                for _ in range(streams):
                    account = Account.open("owner")
                    for _ in range(99):
                        account.deposit(5)
                    app.save(account)
                started = time.perf_counter()
                count = sum(1 for _ in app.iter_all_events())
                seconds = time.perf_counter() - started
        else:
            peer = _peer_app(schema)
            cls = peer_account()
            for _ in range(streams):
                peer_acc = cls("owner")
                for _ in range(99):
                    peer_acc.deposit(5)
                peer.save(peer_acc)
            started = time.perf_counter()
            count = 0
            start = 1
            to_domain_event = peer.mapper.to_domain_event
            while True:
                notifications = peer.recorder.select_notifications(start, 5_000)
                if not notifications:
                    break
                for notification in notifications:
                    to_domain_event(notification)
                    count += 1
                start = notifications[-1].id + 1
            seconds = time.perf_counter() - started
            peer.close()
    return Measurement(events=count, seconds=seconds)


# -- writers, paired block by block ----------------------------------------------

#: The block kinds of ``pg_writers_paired``: (who writes, how many processes).
_KINDS = (("raw", 1), ("ours", 1), ("raw", 4), ("ours", 4))


def _paired_worker(
    schema: str, index: int, *, rounds: int, per_one: int, per_four: int, barrier: Any
) -> None:
    """One of four writer processes: for every block, wait for the start, write
    (if the block is its kind), wait for the end. A failure breaks the barrier, so
    that the others stop at once instead of waiting for its timeout."""
    insert = sql.SQL("INSERT INTO {} (data) VALUES (%s)").format(
        sql.Identifier(schema, "raw")
    )
    payload = b"x" * 100
    try:
        with (
            Application(our_url(schema)) as app,
            psycopg.connect(server_url(), autocommit=True) as raw,
        ):
            app.save(Account.open("warm-up"))
            raw.execute(insert, (payload,))
            blocks = [
                (kind, per_one if procs == 1 else per_four, procs == 4 or index == 0)
                for kind, procs in _paired_order(rounds)
            ]
            # Every aggregate is built before the first block, as the other
            # benchmarks build theirs before the clock starts: none is saved
            # fresh from the cache the building left it in.
            accounts = iter(
                [
                    Account.open("owner")
                    for kind, count, writes in blocks
                    if writes and kind == "ours"
                    for _ in range(count)
                ]
            )
            for kind, count, writes in blocks:
                barrier.wait()
                if writes:
                    if kind == "raw":
                        for _ in range(count):
                            raw.execute(insert, (payload,))
                    else:
                        for _ in range(count):
                            app.save(next(accounts))
                barrier.wait()
    except BaseException:
        barrier.abort()
        raise


def _paired_order(rounds: int) -> list[tuple[str, int]]:
    """The blocks: each kind once per round, in reverse order every other round
    (ABCD DCBA ...), so that no kind always follows the same neighbour."""
    order: list[tuple[str, int]] = []
    for r in range(rounds):
        order += list(_KINDS) if r % 2 == 0 else list(reversed(_KINDS))
    return order


@bench("pg_writers_paired", ("postgres",))
def writers_paired(ctx: Context) -> Measurement:
    """Raw single-row INSERTs and our single-event saves, from one process and
    from four, in alternating blocks of a second or less: the four rates of a run
    are measured within the same few seconds, where the separate benchmarks run
    minutes apart. ``events_per_s`` is ours from four processes; the extras give
    all four rates and the targets' ratios between them."""
    rounds = 8
    per_one, per_four = ctx.n(600), ctx.n(400)
    spawn = multiprocessing.get_context("spawn")
    with fresh_schema() as schema:
        Application(our_url(schema)).close()
        with psycopg.connect(server_url(), autocommit=True) as c:
            _raw_table(c, schema)
        barrier = spawn.Barrier(5)
        workers = [
            spawn.Process(
                target=_paired_worker,
                args=(schema, i),
                kwargs={
                    "rounds": rounds,
                    "per_one": per_one,
                    "per_four": per_four,
                    "barrier": barrier,
                },
            )
            for i in range(4)
        ]
        for worker in workers:
            worker.start()
        seconds = dict.fromkeys(_KINDS, 0.0)
        events = dict.fromkeys(_KINDS, 0)
        try:
            for kind in _paired_order(rounds):
                barrier.wait(timeout=120)
                started = time.perf_counter()
                barrier.wait(timeout=120)
                seconds[kind] += time.perf_counter() - started
                events[kind] += per_one if kind[1] == 1 else 4 * per_four
        finally:
            for worker in workers:
                worker.join(timeout=60)
        failed = [w.exitcode for w in workers if w.exitcode != 0]
        if failed:
            raise RuntimeError(f"pg_writers_paired: writer processes exited {failed}")
    rate = {kind: events[kind] / seconds[kind] for kind in _KINDS}
    raw_1, ours_1 = rate["raw", 1], rate["ours", 1]
    raw_4, ours_4 = rate["raw", 4], rate["ours", 4]
    return Measurement(
        events=events["ours", 4],
        seconds=seconds["ours", 4],
        extra={
            "raw_1_per_s": round(raw_1, 1),
            "ours_1_per_s": round(ours_1, 1),
            "raw_4_per_s": round(raw_4, 1),
            "ours_4_per_s": round(ours_4, 1),
            "ours_1_to_raw_1": round(ours_1 / raw_1, 4),
            "ours_4_to_ours_1": round(ours_4 / ours_1, 4),
            "ours_4_to_raw_4": round(ours_4 / raw_4, 4),
            "raw_4_to_raw_1": round(raw_4 / raw_1, 4),
        },
    )


@bench("pg_save_pair_across", ("postgres",))
def save_pair_across(ctx: Context) -> Measurement:
    """Saves of two aggregates in different partitions (one transaction), against
    saves of one aggregate, in alternating blocks of the same run; the rate is
    pair saves per second, ``ratio`` that over one-aggregate saves per second."""
    n = ctx.n(1_500)
    with (
        fresh_schema(backend_url(ctx.backend)) as schema,
        Application(our_url(schema)) as app,
    ):
        single_seconds, pair_seconds = pairs_against_singles(app, n)
    return Measurement(
        events=n,
        seconds=pair_seconds,
        extra={
            "single_saves_per_s": round(n / single_seconds, 1),
            "ratio": round(single_seconds / pair_seconds, 3),
        },
    )


@bench("save_1_sequenced", ("file",))
def save_1_sequenced(ctx: Context) -> Measurement:
    """Single-event saves on the file store with four partitions, stamped from a
    PostgreSQL sequence (``AppSettings(sequencer=...)``, a global order), against
    the same saves without it, in alternating blocks of the same run; the rate is
    the sequenced one, ``ratio`` that over the plain one."""
    n = ctx.n(2_000)
    with fresh_schema() as schema:
        rates: dict[bool, float] = {}
        apps = {
            sequenced: Application(
                f"file:{ctx.workdir / f'store-{sequenced}'}",
                settings=AppSettings(
                    partitions=4, sequencer=our_url(schema) if sequenced else None
                ),
            )
            for sequenced in (False, True)
        }
        try:
            seconds = dict.fromkeys(apps, 0.0)
            block = max(1, n // 10)
            for _ in range(0, n, block):
                for sequenced, app in apps.items():
                    accounts = [Account.open("owner") for _ in range(block)]
                    started = time.perf_counter()
                    for account in accounts:
                        app.save(account)
                    seconds[sequenced] += time.perf_counter() - started
            rates = {s: n / seconds[s] for s in apps}
        finally:
            for app in apps.values():
                app.close()
    return Measurement(
        events=n,
        seconds=seconds[True],
        extra={
            "plain_events_per_s": round(rates[False], 1),
            "ratio": round(rates[True] / rates[False], 3),
        },
    )
