"""A member of a projection's consumer group: runs the projection on the partitions
its group gives it, rebalancing at every heartbeat; and the group's settings."""

from __future__ import annotations

import logging
import threading
import time

import attrs

from framework.errors import StoreError
from framework.projections.ports import AppendSignal, ConsumerGroup
from framework.projections.runner import ProjectionRunner

logger = logging.getLogger("framework.projections")


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
    A step cut short by a retriable store error (a lost connection) is logged,
    and the member rebalances at its next heartbeat before it steps again; any
    other error ends ``run``, after the member leaves its group.
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
                try:
                    stepped = bool(targets) and self.runner.step_logging_failures(
                        targets
                    )
                except StoreError as exc:
                    if not exc.retriable:
                        raise
                    self._stalled(exc)
                    # Its partitions may have moved meanwhile: rebalance before
                    # the next step, at the next heartbeat (no busy retry).
                    stop.wait(max(0.0, next_beat - time.monotonic()))
                    hinted = None
                    continue
                if stepped:
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

    def _stalled(self, error: StoreError) -> None:
        """Log a step that a retriable store error cut short. Nothing of its
        batch counts unless it committed; if it did, its checkpoint says so, and
        the next step starts after it (a batch is never applied twice). On
        PostgreSQL this is how a member that stalled past its lease wakes: the
        database ended its open transaction, and the others took its partitions."""
        logger.warning(
            "projection %s: member %s could not finish a batch (%s); it rebalances "
            "and goes on from the committed checkpoints",
            self.runner.name,
            self.group.member_id,
            error,
        )
