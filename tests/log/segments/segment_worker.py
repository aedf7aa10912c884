"""A child process for the segment-log tests: appends and reports, or holds a lock.

``crash DIR RUN``   append batches forever, printing each acknowledged one
``crash-small DIR RUN`` the same with small batches only, into preallocated space
``crash-threads DIR RUN`` the same from four threads (group commit)
``append DIR TAG N`` append N one-record batches tagged TAG, then exit
``cas DIR TAG N``    the same with conditional appends, retried on a stale end offset
``hold DIR``        take partition 0's writer lock of topic ``c``, say so, and sleep
``txn DIR RUN``     atomic appends to 2-3 of topic ``x``'s partitions and single
                    appends, two threads, forever, printing each acknowledged one
``txn-stall DIR``   start an atomic append, say so once its batches are written,
                    and wait before committing (to be killed)
``synced DIR N``    append N batches, wait until the recovery point covers them, say
                    so, and sleep (to be killed)
"""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

from framework.errors import EndOffsetMismatchError
from framework.log.backends.segments import SegmentLog, recoverypoint
from framework.log.backends.segments.lock import FileLock
from framework.log.backends.segments.partition import LOCK_FILE
from framework.log.backends.segments.topics import partition_dir
from framework.log.config import TopicConfig
from framework.log.records import PartitionBatch, Record

#: Small segments, so that crashes also land around rolls.
CONFIG = TopicConfig(partitions=1, segment_bytes=64 * 1024)


def batch_values(run: int, number: int, count: int, pad: int) -> list[bytes]:
    """Values that say which batch they belong to and how big it is."""
    return [f"{run}:{number}:{j}/{count}:".encode() + b"x" * pad for j in range(count)]


def crash(path: str, run: int, pads: tuple[int, ...]) -> None:
    log = SegmentLog(path)
    log.ensure_topic("c", CONFIG)
    rng = random.Random(run)
    print("ready", flush=True)
    number = 0
    while True:
        count = rng.randint(1, 4)
        pad = rng.choice(pads)
        values = batch_values(run, number, count, pad)
        result = log.append("c", 0, [Record(value=v) for v in values])
        print(f"{result.base_offset} {result.last_offset} {run}:{number}", flush=True)
        number += 1


def crash_threads(path: str, run: int, threads: int) -> None:
    """``crash`` from several threads at once, so that kills land inside group
    commits; a thread's batches are numbered from ``thread * 1,000,000``."""
    log = SegmentLog(path)
    log.ensure_topic("c", CONFIG)
    printing = threading.Lock()

    def writer(thread: int) -> None:
        rng = random.Random(run * 100 + thread)
        number = thread * 1_000_000
        while True:
            count = rng.randint(1, 4)
            values = batch_values(run, number, count, rng.choice((10, 100, 1000)))
            result = log.append("c", 0, [Record(value=v) for v in values])
            with printing:
                print(
                    f"{result.base_offset} {result.last_offset} {run}:{number}",
                    flush=True,
                )
            number += 1

    workers = [
        threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads)
    ]
    print("ready", flush=True)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def append(path: str, tag: str, count: int) -> None:
    log = SegmentLog(path, lock_timeout=30)
    log.ensure_topic("c", CONFIG)
    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other process
    for i in range(count):
        result = log.append("c", 0, [Record(value=f"{tag}:{i}".encode())])
        print(result.base_offset, flush=True)
    log.close()


def cas(path: str, tag: str, count: int) -> None:
    log = SegmentLog(path, lock_timeout=30)
    log.ensure_topic("c", CONFIG)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        while True:
            end = log.end_offset("c", 0)
            record = Record(value=f"{tag}:{i}".encode())
            try:
                result = log.append("c", 0, [record], expected_end_offset=end)
            except EndOffsetMismatchError:
                continue  # the other process got in first: look again
            break
        assert result.base_offset == end
        print(result.base_offset, flush=True)
    log.close()


def hold(path: str) -> None:
    log = SegmentLog(path)
    log.ensure_topic("c", CONFIG)
    lock = FileLock(partition_dir(Path(path), "c", 0) / LOCK_FILE)
    if not lock.acquire(10):
        raise SystemExit("could not take the lock")
    print("locked", flush=True)
    time.sleep(60)


#: The topic of the transaction workers: small segments, so that kills land
#: around rolls too.
TXN_CONFIG = TopicConfig(partitions=3, segment_bytes=32 * 1024)


def txn(path: str, run: int) -> None:
    """Values are ``run:number:partition/partitions:``; an acknowledged append
    prints ``run:number partition:base ...``."""
    log = SegmentLog(path)
    log.ensure_topic("x", TXN_CONFIG)
    printing = threading.Lock()

    def writer(thread: int) -> None:
        rng = random.Random(run * 10 + thread)
        number = thread * 1_000_000
        while True:
            name = f"{run}:{number}"
            if rng.random() < 0.3:
                partitions = [rng.randrange(3)]
            else:
                partitions = rng.sample(range(3), rng.choice((2, 3)))
            batches = [
                PartitionBatch(
                    p,
                    [
                        Record(
                            value=f"{name}:{p}/{len(partitions)}:".encode() + b"x" * pad
                        )
                        for pad in rng.choices((10, 200, 3000), k=rng.randint(1, 3))
                    ],
                )
                for p in partitions
            ]
            if len(batches) == 1:
                results = [log.append("x", partitions[0], batches[0].records)]
            else:
                results = log.append_atomic("x", batches)
            with printing:
                print(
                    name,
                    *(f"{r.partition}:{r.base_offset}" for r in results),
                    flush=True,
                )
            number += 1

    workers = [
        threading.Thread(target=writer, args=(t,), daemon=True) for t in range(2)
    ]
    print("ready", flush=True)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def txn_stall(path: str) -> None:
    from framework.log.backends.segments import log as segment_log

    log = SegmentLog(path)
    log.ensure_topic("x", TXN_CONFIG)
    real = segment_log.commit_record

    def stalled(topic: str, parts: list[tuple[int, int, int]]) -> bytes:
        print("written", flush=True)
        sys.stdin.readline()
        return real(topic, parts)

    segment_log.commit_record = stalled  # type: ignore[assignment]
    log.append_atomic(
        "x",
        [
            PartitionBatch(0, [Record(value=b"stalled:0")]),
            PartitionBatch(2, [Record(value=b"stalled:2")]),
        ],
    )
    print("committed", flush=True)
    time.sleep(600)


def synced(path: str, count: int) -> None:
    log = SegmentLog(path)
    log.ensure_topic("c", CONFIG)
    for i in range(count):
        log.append("c", 0, [Record(value=f"synced:{i}".encode() + b"." * 50)])
        print(f"acknowledged {i}", flush=True)
    point_file = partition_dir(Path(path), "c", 0) / recoverypoint.FILE_NAME
    # The point is written lazily, by a background thread: wait for it here, so
    # that the test can rely on what it says.
    while True:
        point, _ = recoverypoint.read(point_file)
        if point is not None and point.offset == count:
            break
        time.sleep(0.01)
    print(f"synced {point.offset} {point.position}", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    mode, directory, *rest = sys.argv[1:]
    if mode == "crash":
        # Mostly small batches, some spanning many pages so that a kill can tear one.
        crash(directory, int(rest[0]), (10, 100, 1000, 20_000, 300_000))
    elif mode == "crash-small":
        crash(directory, int(rest[0]), (10, 100, 1000))
    elif mode == "crash-threads":
        crash_threads(directory, int(rest[0]), 4)
    elif mode == "append":
        append(directory, rest[0], int(rest[1]))
    elif mode == "cas":
        cas(directory, rest[0], int(rest[1]))
    elif mode == "hold":
        hold(directory)
    elif mode == "txn":
        txn(directory, int(rest[0]))
    elif mode == "txn-stall":
        txn_stall(directory)
    elif mode == "synced":
        synced(directory, int(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
