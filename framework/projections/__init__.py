"""The read side: projections, their runner, read-model stores and consistency."""

from __future__ import annotations

from framework.projections.ports import (
    Documents,
    ParkedEvent,
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
    "Lag",
    "NotCaughtUpError",
    "ParkedEvent",
    "PositionBoard",
    "Projection",
    "ProjectionRunner",
    "ProjectionState",
    "ReadModel",
    "ReadModelStore",
    "RunnerSettings",
    "Transaction",
    "WritableDocuments",
    "on",
]
