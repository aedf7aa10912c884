"""The causal merge: several partitions' events in one order consistent with
causality, for the projections that ask for it (``order="causal"``).

Every event carries a Lamport stamp: above the stamps of the events its command
loaded or was caused by, and above the last stamp in its partition. So an event
comes after everything it depends on in (stamp, partition, offset) order, and a
partition's stamps only grow. The merge hands out the smallest buffered event by
that order once no partition can still produce a smaller one: every other
partition either has a buffered event (its later ones are larger) or was read to
its end after this event was read (anything it depends on was stored before it,
so that read would have seen it).

A partition that cannot be read on (its end is an undecided transaction, or the
reader is slow) would hold everything back; a bounded window (a count of
buffered events and an age) then lets the smallest event go anyway. An event
handed out after one with a larger stamp from another partition is counted in
``out_of_order``, exactly.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class _Buffered(Generic[T]):
    __slots__ = ("item", "read_at", "stamp", "tick")

    def __init__(self, stamp: int, item: T, tick: int, read_at: float) -> None:
        self.stamp = stamp
        self.item = item
        self.tick = tick
        self.read_at = read_at


class CausalMerge(Generic[T]):
    """Merges partitions fed in offset order (``offer``, ``read_to_end``) into
    one causal order (``release``). Not thread-safe: one reader feeds it."""

    def __init__(
        self,
        partitions: Iterable[int],
        *,
        window_events: int = 10_000,
        window_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``window_events`` and ``window_seconds`` bound how many events wait,
        and how long the oldest one waits, for a partition that is not read on."""
        if window_events < 0 or window_seconds < 0:
            raise ValueError(
                "the reordering window's events and seconds must be 0 or more, got "
                f"{window_events} and {window_seconds}"
            )
        self._buffers: dict[int, deque[_Buffered[T]]] = {p: deque() for p in partitions}
        if not self._buffers:
            raise ValueError("a causal merge needs at least one partition")
        #: Per partition: the tick of its last read to the end (-1: none yet).
        self._ended: dict[int, int] = dict.fromkeys(self._buffers, -1)
        #: Partition heads, as (stamp, partition): the next candidate is the least.
        self._heads: list[tuple[int, int]] = []
        self._tick = 0
        self._buffered = 0
        self.window_events = window_events
        self.window_seconds = window_seconds
        self._clock = clock
        #: The largest stamp handed out so far, and by which partition.
        self._high: tuple[int, int] = (-1, -1)
        #: Events handed out after a larger stamp from another partition.
        self.out_of_order = 0
        #: Events the window let go before every partition had moved past them.
        self.forced = 0

    @property
    def buffered(self) -> int:
        """Events read and not yet handed out."""
        return self._buffered

    def offer(self, partition: int, events: Sequence[tuple[int, T]]) -> None:
        """The partition's next events as (stamp, event), in offset order."""
        buffer = self._buffers.get(partition)
        if buffer is None:
            raise ValueError(
                f"partition {partition} is not one of this merge's "
                f"{sorted(self._buffers)}"
            )
        if not events:
            return
        self._tick += 1
        now = self._clock()
        was_empty = not buffer
        for stamp, event in events:
            buffer.append(_Buffered(stamp, event, self._tick, now))
        self._buffered += len(events)
        if was_empty:
            heapq.heappush(self._heads, (buffer[0].stamp, partition))

    def read_to_end(self, partition: int) -> None:
        """The partition was read to its end just now (after every ``offer`` so
        far): events read before it cannot depend on one it has yet to show."""
        if partition not in self._ended:
            raise ValueError(
                f"partition {partition} is not one of this merge's "
                f"{sorted(self._buffers)}"
            )
        self._tick += 1
        self._ended[partition] = self._tick

    def release(self) -> list[tuple[int, T]]:
        """The events that may be handed out now, in causal order, as (partition,
        event); those the window forces out are counted in ``forced``."""
        out: list[tuple[int, T]] = []
        heads = self._heads
        while heads:
            stamp, partition = heads[0]
            head = self._buffers[partition][0]
            if not self._safe(partition, head) and not self._window_over(head):
                break
            if not self._safe(partition, head):
                self.forced += 1
            heapq.heappop(heads)
            buffer = self._buffers[partition]
            buffer.popleft()
            self._buffered -= 1
            if buffer:
                heapq.heappush(heads, (buffer[0].stamp, partition))
            high_stamp, high_partition = self._high
            if stamp < high_stamp and partition != high_partition:
                self.out_of_order += 1
            if stamp >= high_stamp:
                self._high = (stamp, partition)
            out.append((partition, head.item))
        return out

    def _safe(self, partition: int, head: _Buffered[T]) -> bool:
        """No other partition can still show an event below ``head``: each has
        one buffered (so its later ones are larger: the heap put ``head``
        first) or was read to its end after ``head`` was read."""
        for other, buffer in self._buffers.items():
            if other != partition and not buffer and self._ended[other] <= head.tick:
                return False
        return True

    def _window_over(self, head: _Buffered[T]) -> bool:
        return (
            self._buffered > self.window_events
            or self._clock() - head.read_at >= self.window_seconds
        )
