"""The read side: projections, their runner, read-model stores and consistency."""

from __future__ import annotations

from framework.projections.errors import (
    InlineProjectionFailedError,
    ProjectionFailedError,
    UnknownProjectionError,
    UnknownTableError,
)
from framework.projections.ports import (
    Documents,
    ParkedEvent,
    ProjectionFailure,
    ProjectionState,
    ReadModelStore,
    Transaction,
    WritableDocuments,
)
from framework.projections.positions import PositionBoard
from framework.projections.projection import Projection, on
from framework.projections.query import Answer, Lag, NotCaughtUpError, ReadModel
from framework.projections.runner import ProjectionRunner, RunnerSettings

__all__ = [
    "Answer",
    "Documents",
    "InlineProjectionFailedError",
    "Lag",
    "NotCaughtUpError",
    "ParkedEvent",
    "PositionBoard",
    "Projection",
    "ProjectionFailedError",
    "ProjectionFailure",
    "ProjectionRunner",
    "ProjectionState",
    "ReadModel",
    "ReadModelStore",
    "RunnerSettings",
    "Transaction",
    "UnknownProjectionError",
    "UnknownTableError",
    "WritableDocuments",
    "on",
]
