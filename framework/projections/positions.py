"""Push consistency: runners announce the positions they reach; callers await them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from framework.projections.errors import UnknownProjectionError
from framework.store.position import Position

#: ``listener(projection_name, position)``: the projection's whole position so
#: far (every partition it announced), not only what the last commit moved.
Listener = Callable[[str, Position], None]


class PositionBoard:
    """In-process announcements of how far each projection has applied the log.

    A runner ``publish``es after each commit; ``wait_for`` blocks until a projection
    covers a position; ``subscribe`` calls a listener with every new position.
    A ``strict`` board (an application's) knows the projections ``declare``d on
    it and refuses to wait for any other name. Thread-safe.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self._condition = threading.Condition()
        self._positions: dict[str, Position] = {}
        self._listeners: list[Listener] = []
        self._strict = strict
        self._declared: set[str] = set()

    def declare(self, projection: str) -> None:
        """Make ``projection`` known to a strict board."""
        with self._condition:
            self._declared.add(projection)

    def publish(self, projection: str, offsets: Mapping[int, int]) -> None:
        with self._condition:
            position = self._positions.get(projection, Position()).merge(offsets)
            self._positions[projection] = position
            listeners = list(self._listeners)
            self._condition.notify_all()
        for listener in listeners:
            listener(projection, position)

    def forget(self, projection: str) -> None:
        """Drop what was announced (after a reset or a rebuild's swap)."""
        with self._condition:
            self._positions.pop(projection, None)

    def position(self, projection: str) -> Position:
        with self._condition:
            return self._positions.get(projection, Position())

    def wait_for(
        self, projection: str, position: Mapping[int, int], timeout: float
    ) -> bool:
        """Whether ``projection`` covered ``position`` within ``timeout`` seconds.

        Raises ``UnknownProjectionError`` on a strict board for a projection
        that was not declared (a misspelt name would only ever time out)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            if self._strict and projection not in self._declared:
                raise UnknownProjectionError(projection, self._declared)
            while not self._positions.get(projection, Position()).covers(position):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
            return True

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(projection, position)`` after every publish; returns a
        function that unsubscribes.

        ``projection`` is the projection's name and ``position`` everything it
        has announced so far (all its partitions, merged). The listener runs on
        the publishing runner's thread, after its commit and outside the
        board's lock: keep it short, and do not block (the runner waits for
        it). An exception from it propagates into that runner."""
        with self._condition:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._condition:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe
