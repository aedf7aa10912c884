"""The read side's errors that a caller handles: a stopped projection, a name that
is not a projection or not one of its tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from framework.errors import ProjectionError
from framework.projections.ports import ProjectionFailure


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _times(failure: ProjectionFailure) -> str:
    return "once" if failure.attempts == 1 else f"{failure.attempts} times"


class ProjectionFailedError(ProjectionError):
    """A projection stopped on an event its handler kept failing on.

    ``failure`` holds the facts (projection, partition, offset, stream, event name,
    the handler's error, when); they are also attributes of the error. The
    projection stays stopped on that partition until its handler is fixed and it
    runs again (the failure is then cleared), or it is reset or rebuilt.
    """

    def __init__(self, failure: ProjectionFailure, message: str) -> None:
        self.failure = failure
        self.projection = failure.projection
        self.partition = failure.partition
        self.offset = failure.offset
        self.stream_id = failure.stream_id
        self.event_name = failure.event_name
        self.error = failure.error
        super().__init__(message)

    @classmethod
    def stopped(cls, failure: ProjectionFailure) -> ProjectionFailedError:
        """Raised by the runner when it stops."""
        return cls(
            failure,
            f"projection {failure.projection!r} stopped at {failure.where}: its "
            f"handler failed {_times(failure)}: {failure.error}; fix the "
            "handler and run the projection again (it retries the event and clears "
            "the failure), or set failure='park' to set such events aside",
        )

    @classmethod
    def blocking(
        cls, failure: ProjectionFailure, wanted: Mapping[int, int]
    ) -> ProjectionFailedError:
        """Raised by a pull query whose position lies behind a failure."""
        wanted_text = ",".join(f"{p}:{o}" for p, o in sorted(wanted.items()))
        return cls(
            failure,
            f"projection {failure.projection!r} cannot reach {wanted_text}: it "
            f"stopped at {failure.where} at {failure.failed_at}, where its handler "
            f"failed: {failure.error}; fix the handler and run the projection "
            "again (`python -m framework projections status` lists failures)",
        )


class InlineProjectionFailedError(ProjectionFailedError):
    """An inline projection failed during ``save``; ``saved`` tells whether the
    events were stored anyway (memory and file stores, where the projection runs
    after the append) or not at all (PostgreSQL, inside the append's transaction).
    With ``saved`` true, do not save again: ``position`` is where the events are,
    and the read model catches up with them when the projection runs again."""

    def __init__(
        self,
        failure: ProjectionFailure,
        *,
        saved: bool,
        position: Mapping[int, int] | None = None,
    ) -> None:
        self.saved = saved
        self.position = position
        if saved:
            where = ",".join(f"{p}:{o}" for p, o in sorted((position or {}).items()))
            message = (
                f"the events WERE saved (position {where}), but the inline "
                f"projection {failure.projection!r} did not apply them: it stopped "
                f"at {failure.where}, where its handler failed {_times(failure)}: "
                f"{failure.error}. Do not save them again: the read model "
                "catches up when the projection next runs (the next save, or a "
                "restart after a fix)"
            )
        else:
            message = (
                f"inline projection {failure.projection!r} failed on "
                f"{failure.where}: {failure.error}; the append was rolled back, "
                "nothing was written (the aggregate keeps its pending events)"
            )
        super().__init__(failure, message)


class UnknownProjectionError(ProjectionError, LookupError):
    """A projection name that nothing registered nor stored (a typo?)."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(sorted(set(known)))
        super().__init__(
            f"projection {name!r} is not registered and has no read model here "
            f"(projections: {_listed(self.known)}); check the name, or register "
            "it with app.project(...)"
        )


class UnknownTableError(ProjectionError, LookupError):
    """A document table that the projection does not declare (a typo?)."""

    def __init__(self, projection: str, table: str, known: Iterable[str]) -> None:
        self.projection = projection
        self.table = table
        self.known = tuple(sorted(set(known)))
        super().__init__(
            f"projection {projection!r} has no table {table!r} (tables: "
            f"{_listed(self.known)}); check the name, or add it to the "
            "projection's tables"
        )
