"""A member of a projection's consumer group: runs the projection on the partitions
its group gives it, rebalancing at every heartbeat; and the group's settings."""

from __future__ import annotations

import threading
import time

import attrs

from framework.projections.ports import AppendSignal, ConsumerGroup
from framework.projections.runner import ProjectionRunner


@attrs.frozen(kw_only=True)
class GroupSettings:
    """``heartbeat``: seconds between a member's rebalances (and lease renewals).
    ``lease``: seconds a PostgreSQL group member may miss heartbeats before the
    others take its partitions (a file group's lease is its process's life)."""

    heartbeat: float = 0.2
    lease: float = 10.0


class GroupMember:
    """Runs a projection runner as one member of a consumer group.

    Every ``heartbeat`` seconds it rebalances; in between it applies batches of the
    partitions it owns. A partition that moves is released only between batches.
    Idle, it polls with backoff, or, given a ``signal``, waits for it and then reads
    only the partitions it names (plus all of its own at every heartbeat).
    """

    def __init__(
        self,
        runner: ProjectionRunner,
        group: ConsumerGroup,
        *,
        heartbeat: float = 0.2,
        signal: AppendSignal | None = None,
    ) -> None:
        self.runner = runner
        self.group = group
        self.heartbeat = heartbeat
        self.signal = signal
        #: Set once the member has joined its group (and is applying batches).
        self.joined = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.group.join()
        self.joined.set()
        self.runner.running += 1
        try:
            next_beat = 0.0
            interval = self.runner.settings.poll_interval
            hinted: list[int] | None = None  # None: every owned partition
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_beat:
                    self.group.rebalance()
                    next_beat = now + self.heartbeat
                    hinted = None
                owned = self.group.owned
                targets = owned if hinted is None else [p for p in hinted if p in owned]
                if targets and self.runner.step_logging_failures(targets):
                    interval = self.runner.settings.poll_interval
                    hinted = targets  # until they are drained
                    continue
                left = max(0.0, next_beat - time.monotonic())
                if self.signal is not None:
                    hinted = self.signal.wait(left) or None
                    continue
                stop.wait(min(interval, left))
                interval = min(interval * 2, self.runner.settings.max_poll_interval)
                hinted = None
        finally:
            self.runner.running -= 1
            self.group.leave()
            if self.signal is not None:
                self.signal.close()
