"""Committed projection checkpoints heard through LISTEN (push and pull on
PostgreSQL).

Read-model stores NOTIFY ``[projection:generation, partition, offset]`` after each
commit; ``Announcements`` listens on that channel from one background thread
(started by the first waiter) and keeps what it heard on a ``PositionBoard``, so a
pull query waits for exactly its position instead of sleeping. Notifications are
hints: if the listener cannot connect, waiters fall back to polling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from framework.errors import StoreError
from framework.postgres.database import Database
from framework.postgres.notify import Listener, payload
from framework.projections.positions import PositionBoard

logger = logging.getLogger("framework.projections")

#: Where a waiter without a working listener sleeps between checks.
_POLL_SECONDS = 0.005
#: The notice ``close`` sends to wake its own listener thread.
_BYE = ("", -1, -1)


class Announcements:
    """Announced checkpoints of every projection in one schema, by
    ``projection:generation``. Thread-safe."""

    def __init__(self, db: Database, channel: str) -> None:
        self._db = db
        self._channel = channel
        self.board = PositionBoard()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None
        self._closing = False
        self._broken = False

    def _start(self) -> bool:
        """Listen (once); whether a listener is up. LISTEN is in place when this
        returns, so a commit after it is heard."""
        with self._lock:
            if self._closing or self._broken:
                return False
            if self._thread is not None:
                return True
            try:
                self._listener = Listener(self._db.url, self._channel)
            except StoreError as exc:
                logger.warning(
                    "cannot LISTEN for projection checkpoints (%s); polling instead",
                    exc,
                )
                self._broken = True
                return False
            self._thread = threading.Thread(
                target=self._run, name=f"listen {self._channel}", daemon=True
            )
            self._thread.start()
            return True

    def _run(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closing:
            try:
                notices = listener.wait(1.0)
            except StoreError as exc:
                if self._closing:
                    break
                logger.warning("lost the checkpoint listener (%s); reconnecting", exc)
                time.sleep(0.5)
                try:
                    listener.close()
                    listener = self._listener = Listener(self._db.url, self._channel)
                except StoreError:
                    continue
                continue
            for notice in notices:
                if notice.partition >= 0:
                    self.board.publish(
                        notice.topic, {notice.partition: notice.last_offset}
                    )

    def wait_for(self, key: str, position: Mapping[int, int], timeout: float) -> bool:
        """Whether announcements for ``key`` covered ``position`` within
        ``timeout``. The first call starts listening and returns ``True`` at once
        (the caller looks again, now that it will hear what commits next). A
        writer that found no listener in the last 0.1 s may still drop a notice
        (``framework.postgres.notify``); callers wait in short slices and look
        at the store between them, so that costs one slice."""
        if self._thread is None:
            if self._start():
                return True
            time.sleep(min(timeout, _POLL_SECONDS))
            return False
        return self.board.wait_for(key, position, timeout)

    def close(self) -> None:
        """Stop the listener thread. Idempotent."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            thread = self._thread
        if thread is None:
            return
        # Wake the thread out of its wait with a notice of our own.
        try:
            with self._db.cursor() as cur:
                cur.execute("SELECT pg_notify(%s, %s)", (self._channel, payload(*_BYE)))
        except StoreError:
            pass  # it wakes within a second anyway
        thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
