"""A child process for the event-store crash tests: four threads append to a file
store, each printing every acknowledged append, until the process is killed.

``threads DIR RUN``: each thread appends 1-3 events to streams of its own (new ones
and ones it made before), and all threads also race on one shared stream with the
version they last read, so that conflicts happen too. A line is
``stream first_version last_version first_offset`` per acknowledged append.
"""

from __future__ import annotations

import random
import sys
import threading
import uuid

from framework.errors import ConcurrencyError
from framework.log.backends.segments import SegmentLog
from framework.log.config import TopicConfig
from framework.store.event_store import LogEventStore
from framework.store.events import NewEvent

SHARED = "shared"
#: Small segments, so that kills also land around rolls.
CONFIG = TopicConfig(partitions=1, segment_bytes=64 * 1024)
_print_lock = threading.Lock()


def event(tag: str) -> NewEvent:
    return NewEvent(uuid.uuid4(), "t.E", 1, tag.encode(), 0, "c", "d", {})


def writer(store: LogEventStore, run: int, thread: int) -> None:
    rng = random.Random(run * 10 + thread)
    mine: dict[str, int] = {}
    number = 0
    while True:
        if rng.random() < 0.25:
            stream = SHARED
            seen = store.stream_version(SHARED)
        elif mine and rng.random() < 0.5:
            stream = rng.choice(list(mine))
            seen = mine[stream]
        else:
            stream = f"r{run}t{thread}n{number}"
            number += 1
            seen = 0
        count = rng.randint(1, 3)
        try:
            appended = store.append(
                stream, [event(f"{stream}:{seen + i}") for i in range(count)], seen
            )
        except ConcurrencyError:
            assert stream == SHARED, stream
            continue
        if stream != SHARED:
            mine[stream] = appended.last_version
        with _print_lock:
            print(
                stream,
                appended.first_version,
                appended.last_version,
                appended.first_offset,
                flush=True,
            )


def threads(path: str, run: int) -> None:
    log = SegmentLog(path)
    store = LogEventStore(log, config=CONFIG)
    print("ready", flush=True)
    workers = [
        threading.Thread(target=writer, args=(store, run, t), daemon=True)
        for t in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    mode, directory, run = sys.argv[1:]
    if mode == "threads":
        threads(directory, int(run))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
