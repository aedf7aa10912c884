"""Policies run from the store, exactly once: the commands an event causes are
saved together with the runner's checkpoint in one atomic append.

With ``AppSettings(policies="log")`` a command's policies do not run in the
process that handled it. A ``PolicyRunner`` reads the events topic from its
checkpoints instead, and for each event that has policies handles the commands
they return on one unit of work. The aggregates those commands change and the
event's offset, as the next version of the runner's checkpoint stream for that
partition (``$policy-<name>-<partition>``), are one ``append_streams``: all of it
is stored or none of it, on every backend. A crash before the append leaves the
event to be handled again; after it, the event is never handled again. Two
runners on one store fence each other through the checkpoint stream's expected
version.

Checkpoint events are named ``$policy.Checkpoint``; names starting with ``$`` are
the framework's own (``framework.domain.events`` refuses them for user events),
and projections and ``Application.iter_events`` pass them by.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable

from framework.application.commands import (
    _as_commands,
    _context_for,
    _Load,
    _UnitOfWork,
)
from framework.application.repository import Repository
from framework.domain.commands import CommandRouter
from framework.domain.context import message_context
from framework.domain.events import event_name
from framework.errors import ConcurrencyError
from framework.retry import RetryPolicy, compute_backoff
from framework.schema.envelopes import EnvelopeDecoder
from framework.schema.ports import EventCodec
from framework.store.events import NewEvent, StoredEvent
from framework.store.ports import EventStore, StreamAppend

logger = logging.getLogger("framework.application")

#: The name of a policy runner's checkpoint events.
CHECKPOINT = "$policy.Checkpoint"


def checkpoint_stream(name: str, partition: int) -> str:
    """The stream that holds runner ``name``'s checkpoints for ``partition``."""
    return f"$policy-{name}-{partition}"


class _Moved(Exception):
    """Another runner advanced the checkpoint: read it again."""


class PolicyRunner:
    """Runs a router's policies over the events topic, exactly once per event.

    Thread-safe; ``step`` reads at most ``batch_size`` events per partition.
    """

    def __init__(
        self,
        *,
        store: EventStore,
        codec: EventCodec,
        router: CommandRouter,
        repository: Repository,
        load: _Load,
        retry: RetryPolicy,
        name: str = "policies",
        batch_size: int = 500,
    ) -> None:
        self.store = store
        self.router = router
        self.name = name
        self.batch_size = batch_size
        self._repository = repository
        self._load = load
        self._retry = retry
        self._decoder = EnvelopeDecoder(codec, store.topic)
        self._lock = threading.Lock()
        #: Per partition: (offset of the last event handled, checkpoint version).
        self._checkpoints: dict[int, tuple[int, int]] = {}
        # The event names some policy reacts to: the others are passed by
        # without decoding.
        self._reacting = {
            event_name(event_type)[0] for event_type in router.policy_event_types()
        }

    def checkpoints(self) -> dict[int, int]:
        """The offset of the last event handled, per partition (-1: none)."""
        with self._lock:
            return {p: self._checkpoint(p)[0] for p in range(self.store.partitions)}

    def _checkpoint(self, partition: int) -> tuple[int, int]:
        found = self._checkpoints.get(partition)
        if found is None:
            found = self._checkpoints[partition] = self._read_checkpoint(partition)
        return found

    def _read_checkpoint(self, partition: int) -> tuple[int, int]:
        stream = checkpoint_stream(self.name, partition)
        version = self.store.stream_version(stream)
        if version == 0:
            return -1, 0
        (last,) = self.store.read_stream(stream, from_version=version)
        return int(json.loads(last.data)["offset"]), version

    def step(self) -> int:
        """Handle at most ``batch_size`` events of each partition; return how
        many were read."""
        with self._lock:
            return sum(self._step(p) for p in range(self.store.partitions))

    def catch_up(self) -> int:
        """Handle everything up to the end of every partition (as it moves)."""
        total = 0
        while read := self.step():
            total += read
        return total

    def run(self, stop: threading.Event, poll_interval: float = 0.01) -> None:
        """Step until ``stop`` is set, waiting ``poll_interval`` while idle."""
        while not stop.is_set():
            if not self.step():
                stop.wait(poll_interval)

    def _step(self, partition: int) -> int:
        offset, version = self._checkpoint(partition)
        batch = self.store.read_partition(partition, offset + 1, self.batch_size)
        passed = False
        try:
            for stored in batch:
                commands = self._commands_for(stored)
                if commands:
                    version = self._handle(partition, stored, commands, version)
                    passed = False
                elif stored.name != CHECKPOINT:
                    passed = True
                self._checkpoints[partition] = (stored.offset, version)
            if passed:
                # Events no policy reacts to: one checkpoint for all of them.
                self._save(partition, batch[-1].offset, version, [])
                self._checkpoints[partition] = (batch[-1].offset, version + 1)
        except _Moved:
            self._checkpoints.pop(partition, None)
        return len(batch)

    def _commands_for(self, stored: StoredEvent) -> list[object]:
        if stored.name not in self._reacting:
            return []
        envelope = self._decoder.envelope(stored)
        return [
            command
            for policy in self.router.policies_for(type(envelope.event))
            for command in _as_commands(policy(envelope))
        ]

    def _handle(
        self, partition: int, stored: StoredEvent, commands: list[object], version: int
    ) -> int:
        """Handle ``commands`` on one unit of work and save what they changed with
        the checkpoint at ``stored``; retried on conflicts. Returns the new
        checkpoint version."""
        envelope = self._decoder.envelope(stored)
        attempt = 0
        while True:
            attempt += 1
            work = _UnitOfWork(self._load, attempt)
            with message_context(_context_for(envelope, None)):
                for command in commands:
                    self.router.handler_for(command)(command, work)
                try:
                    self._save(partition, stored.offset, version, work.aggregates)
                except ConcurrencyError as exc:
                    if attempt >= self._retry.max_attempts:
                        exc.add_note(
                            f"the commands caused by {stored.name} at "
                            f"{self.store.topic}/{partition} offset {stored.offset} "
                            f"gave up after {attempt} tries; the event is handled "
                            "again from the checkpoint"
                        )
                        raise
                    time.sleep(compute_backoff(attempt, self._retry))
                    continue
            return version + 1

    def _save(
        self, partition: int, offset: int, version: int, aggregates: Iterable[object]
    ) -> None:
        """Save ``aggregates`` with the checkpoint at ``offset``; ``_Moved`` if
        another runner wrote the checkpoint stream's next version first."""
        stream = checkpoint_stream(self.name, partition)
        checkpoint = StreamAppend(
            stream_id=stream,
            events=[_checkpoint_event(offset)],
            expected_version=version,
        )
        try:
            self._repository.save_all(
                list(aggregates),  # type: ignore[arg-type]
                [],
                envelopes=False,
                also=[checkpoint],
            )
        except ConcurrencyError as exc:
            if exc.stream_id == stream:
                raise _Moved from exc
            raise


def _checkpoint_event(offset: int) -> NewEvent:
    event_id = uuid.uuid4()
    return NewEvent(
        event_id=event_id,
        name=CHECKPOINT,
        version=1,
        data=json.dumps({"offset": offset}).encode(),
        timestamp_ms=time.time_ns() // 1_000_000,
        correlation_id=str(event_id),
        causation_id=str(event_id),
    )
