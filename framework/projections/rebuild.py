"""Rebuilding a projection beside the live one, then swapping it in at once."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from framework.projections.ports import ReadModelStore
from framework.projections.projection import Projection
from framework.projections.runner import ProjectionRunner, RunnerSettings
from framework.schema.ports import EventCodec
from framework.store.ports import EventStore


@attrs.frozen(kw_only=True)
class Progress:
    """How far a rebuild is: events applied of the total known when it started."""

    done: int
    total: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        rate = self.events_per_s
        if rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / rate)


def rebuild(
    store: EventStore,
    codec: EventCodec,
    projection: Projection,
    read_models: ReadModelStore,
    *,
    progress: Callable[[Progress], None] | None = None,
    settings: RunnerSettings | None = None,
) -> int:
    """Replay the whole log into a fresh generation of the read model while the
    current one keeps serving queries, then swap them in one transaction.

    Resumable: an interrupted rebuild continues from its own checkpoints when run
    again. Returns the generation now live.
    """
    runner = ProjectionRunner(
        store, codec, projection, read_models, settings=settings, rebuilding=True
    )
    generation = runner.generation()
    ends = store.end_position()
    already = sum(o + 1 for o in runner.checkpoints().values())
    total = max(sum(o + 1 for o in ends.values()), already)
    started = time.monotonic()
    done = already
    while True:
        applied = runner.step()
        if not applied:
            break
        done += applied
        if progress is not None:
            progress(
                Progress(
                    done=min(done, total),
                    total=total,
                    seconds=time.monotonic() - started,
                )
            )
    read_models.finish_rebuild(projection.name, generation, projection.version)
    return generation
