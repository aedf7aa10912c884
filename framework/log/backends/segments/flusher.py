"""The background flush of topics with ``fsync="interval"``: one daemon thread per
``SegmentLog`` makes written batches durable every ``fsync_interval_ms``.

Appends to such topics return before their bytes reach the disk; a power failure
(not a process crash: the page cache survives that) loses what was written since the
last flush, at most about one interval of acknowledged appends.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

logger = logging.getLogger("framework.log")


class Flushable(Protocol):
    def flush_if_due(self, now: float) -> float:
        """Flush if the interval has passed; return when the next flush is due."""


class Flusher:
    """Started on the first interval-mode append; stopped by ``close``."""

    def __init__(self) -> None:
        self._parts: list[Flushable] = []
        self._watched: set[int] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def watch(self, part: Flushable) -> None:
        if id(part) in self._watched:  # every interval-mode append calls this
            return
        with self._lock:
            if self._stopped or id(part) in self._watched:
                return
            self._watched.add(id(part))
            self._parts.append(part)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="segment-log-flusher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                parts = list(self._parts)
            now = time.monotonic()
            due = now + 1.0
            for part in parts:
                try:
                    due = min(due, part.flush_if_due(now))
                except (
                    Exception
                ):  # a failed flush must not end the thread; appends report it
                    logger.exception("background flush of a segment log failed")
            self._wake.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()
