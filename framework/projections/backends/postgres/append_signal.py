"""The append signal of PostgreSQL group members: LISTEN on the event store's
channel, so that an idle member wakes when its partitions get events."""

from __future__ import annotations

import logging
import time

from framework.errors import StoreError
from framework.postgres.notify import Listener
from framework.store.backends.postgres import PostgresEventStore

logger = logging.getLogger("framework.projections")


class PostgresAppendSignal:
    """An ``AppendSignal`` for group members: LISTENs on the event store's channel
    and names the partitions of its topic that got events.

    Writers coalesce their notices (``LINGER_SECONDS``), which would add up to
    that much to every read-your-write. So for ``hot_seconds`` after events came,
    it also compares the partitions' ends every ``hot_poll`` seconds (one small
    query); idle, it only listens.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        *,
        hot_seconds: float = 0.25,
        hot_poll: float = 0.001,
    ) -> None:
        self._store = store
        self._db = store.db
        self._hot_seconds = hot_seconds
        self._hot_poll = hot_poll
        self._last_seen = float("-inf")
        self._ends: dict[int, int] = {}
        self._listener: Listener | None = Listener(self._db.url, self._db.channel)

    def wait(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        topic = self._store.topic
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                return []
            hot = now - self._last_seen < self._hot_seconds
            try:
                if self._listener is None:
                    self._listener = Listener(self._db.url, self._db.channel)
                notices = self._listener.wait(
                    min(left, self._hot_poll) if hot else left
                )
                partitions = {n.partition for n in notices if n.topic == topic}
                if not partitions and hot:
                    partitions = self._moved()
            except StoreError as exc:
                # The member reads every partition at each heartbeat meanwhile.
                logger.warning("append listener failed (%s); reconnecting", exc)
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
                time.sleep(min(left, 0.5))
                return []
            if partitions:
                self._last_seen = time.monotonic()
                return sorted(partitions)

    def _moved(self) -> set[int]:
        ends = self._store.log.end_offsets(self._store.topic)
        moved = {p for p, end in ends.items() if self._ends.get(p) != end}
        self._ends = ends
        return moved

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
