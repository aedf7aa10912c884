"""Writer processes for the multi-process tests:
``python -m tests.log.postgres.workers``.

Each prints one JSON line per event it got stored, so the test can compare what
the writers were told with what the store holds.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid

from framework.errors import ConcurrencyError
from framework.log.config import TopicConfig
from framework.store.backends.postgres import PostgresEventStore
from framework.store.events import NewEvent
from framework.store.ports import StreamAppend


def event() -> NewEvent:
    event_id = uuid.uuid4()
    return NewEvent(
        event_id=event_id,
        name="test.Happened",
        version=1,
        data=b"{}",
        timestamp_ms=int(time.time() * 1000),
        correlation_id=str(event_id),
        causation_id=str(event_id),
    )


def open_store(url: str, partitions: int) -> PostgresEventStore:
    return PostgresEventStore(url, config=TopicConfig(partitions=partitions))


def random_writer(url: str, count: int, streams: int, seed: int) -> None:
    """Append ``count`` single events to random streams with expected versions,
    retrying each on conflict with a fresh version."""
    rng = random.Random(seed)
    store = open_store(url, 4)
    for _ in range(count):
        stream = f"stream-{rng.randrange(streams)}"
        new = event()
        while True:
            version = store.stream_version(stream)
            try:
                appended = store.append(stream, [new], expected_version=version)
            except ConcurrencyError:
                continue
            break
        print(json.dumps([str(new.event_id), stream, appended.last_version]))
    store.close()


def steady_writer(url: str, stream: str, count: int) -> None:
    """Append ``count`` events to one stream, as fast as it goes."""
    store = open_store(url, 2)
    for _ in range(count):
        store.append(stream, [event()], expected_version=None)
        time.sleep(0.002)
    store.close()


def slow_writer(url: str, stream: str, hold: float) -> None:
    """Append one event in a transaction kept open for ``hold`` seconds after the
    partition is locked (the real append statement, just a late commit)."""
    store = open_store(url, 2)
    append = StreamAppend(stream_id=stream, events=[event()], expected_version=None)
    with store.db.cursor() as cur, cur.connection.transaction():
        store._write_one(cur, 0, append, store.partition_of(stream))
        print("locked", flush=True)
        time.sleep(hold)
    print("committed", flush=True)
    store.close()


def main(argv: list[str]) -> None:
    role, url, *rest = argv
    if role == "random":
        random_writer(url, int(rest[0]), int(rest[1]), int(rest[2]))
    elif role == "steady":
        steady_writer(url, rest[0], int(rest[1]))
    elif role == "slow":
        slow_writer(url, rest[0], float(rest[1]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
