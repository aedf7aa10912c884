"""Segment-file log benchmarks: durable appends against the raw fsync limit, group
commit under four threads, replay decoding and scattered reads."""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
import uuid

from benchmarks.core import Context, Measurement, bench
from framework.log.backends.segments import SegmentLog
from framework.log.config import TopicConfig
from framework.log.records import Record

FILE = ("file",)
#: A 100-byte record value, as in the raw loop.
VALUE = b"v" * 100
#: The same call the log makes to make an append durable.
_sync = getattr(os, "fdatasync", os.fsync)


@bench("segments_raw_fsync_loop", FILE)
def raw_fsync_loop(ctx: Context) -> Measurement:
    """The limit: a plain loop writing 100-byte records, fdatasync after each."""
    n = ctx.n(3_000)
    path = ctx.workdir / "raw.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        started = time.perf_counter()
        for _ in range(n):
            os.write(fd, VALUE)
            _sync(fd)
        seconds = time.perf_counter() - started
    finally:
        os.close(fd)
    return Measurement(events=n, seconds=seconds)


@bench("segments_raw_fsync_preallocated", FILE)
def raw_fsync_preallocated(ctx: Context) -> Measurement:
    """The same loop into a file preallocated with ``posix_fallocate``, as the log
    writes segments: the fsyncs then need not record a new file size."""
    n = ctx.n(3_000)
    path = ctx.workdir / "raw.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, n * len(VALUE))
        started = time.perf_counter()
        for i in range(n):
            os.pwrite(fd, VALUE, i * len(VALUE))
            _sync(fd)
        seconds = time.perf_counter() - started
    finally:
        os.close(fd)
    return Measurement(events=n, seconds=seconds)


@bench("segments_append_1", FILE)
def append_1(ctx: Context) -> Measurement:
    """Single-record durable appends from one thread, straight on SegmentLog."""
    n = ctx.n(3_000)
    with SegmentLog(ctx.workdir / "log") as log:
        log.create_topic("t", TopicConfig())
        record = [Record(value=VALUE)]
        log.append("t", 0, record)  # open the partition outside the timing
        latencies = []
        started = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            log.append("t", 0, record)
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - started
        fsyncs = log.fsync_count - 1
    return Measurement(
        events=n,
        seconds=seconds,
        extra={
            "append_median_us": round(statistics.median(latencies) * 1e6, 1),
            "fsyncs": fsyncs,
        },
    )


@bench("segments_append_1_threads4", FILE)
def append_1_threads4(ctx: Context) -> Measurement:
    """Single-record durable appends from four threads to one partition: group
    commit lets them share fsyncs."""
    per_thread = ctx.n(3_000)
    with SegmentLog(ctx.workdir / "log") as log:
        log.create_topic("t", TopicConfig())
        record = [Record(value=VALUE)]
        log.append("t", 0, record)
        start = threading.Barrier(5)

        def writer() -> None:
            start.wait()
            for _ in range(per_thread):
                log.append("t", 0, record)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        start.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        fsyncs = log.fsync_count - 1
    appends = 4 * per_thread
    return Measurement(
        events=appends,
        seconds=seconds,
        extra={"fsyncs": fsyncs, "appends_per_fsync": round(appends / fsyncs, 2)},
    )


def _event_record(rng: random.Random, version: int) -> Record:
    """A record shaped like the event store's: stream key, JSON value, six headers."""
    return Record(
        key=str(uuid.UUID(int=rng.getrandbits(128))).encode(),
        value=b'{"amount": %d}' % rng.randrange(10_000),
        headers=(
            ("$v", str(version).encode()),
            ("$id", rng.randbytes(16)),
            ("$type", b"ledger.FundsDeposited"),
            ("$tv", b"1"),
            ("$corr", str(uuid.UUID(int=rng.getrandbits(128))).encode()),
            ("$caus", str(uuid.UUID(int=rng.getrandbits(128))).encode()),
        ),
    )


@bench("segments_replay", FILE)
def replay(ctx: Context) -> Measurement:
    """Reading back one-record batches of event-store-shaped records (six headers),
    checked and decoded into LogRecords: the log's share of an event-store replay."""
    n = ctx.n(200_000)
    rng = random.Random(3)
    with SegmentLog(ctx.workdir / "log") as log:
        log.create_topic("t", TopicConfig(fsync="interval"))
        for i in range(n):
            log.append("t", 0, [_event_record(rng, i % 50 + 1)])
    with SegmentLog(ctx.workdir / "log") as log:
        started = time.perf_counter()
        offset = 0
        while records := log.read("t", 0, offset, 5_000):
            offset = records[-1].offset + 1
        seconds = time.perf_counter() - started
    assert offset == n
    return Measurement(
        events=n, seconds=seconds, extra={"us_per_record": round(seconds / n * 1e6, 2)}
    )


@bench("segments_read_at_20", FILE)
def read_at_20(ctx: Context) -> Measurement:
    """20 scattered offsets (one aggregate's events) read from a 1,000,000-record
    partition, as the event store loads a stream."""
    batches = ctx.n(100_000)
    rng = random.Random(5)
    with SegmentLog(ctx.workdir / "log") as log:
        log.create_topic("t", TopicConfig(fsync="interval"))
        for i in range(batches):
            log.append("t", 0, [_event_record(rng, i) for _ in range(10)])
    total = batches * 10
    loads = ctx.n(2_000)
    picks = [sorted(rng.sample(range(total), 20)) for _ in range(loads)]
    with SegmentLog(ctx.workdir / "log") as log:
        log.read_at("t", 0, picks[0])
        latencies = []
        started = time.perf_counter()
        for offsets in picks:
            t0 = time.perf_counter()
            log.read_at("t", 0, offsets)
            latencies.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - started
    return Measurement(
        events=loads * 20,
        seconds=seconds,
        extra={
            "records_in_partition": total,
            "read_at_20_median_us": round(statistics.median(latencies) * 1e6, 1),
        },
    )
