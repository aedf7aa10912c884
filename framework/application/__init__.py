"""The application: wires log, store, codec and command routing from one store URL."""

from __future__ import annotations

from framework.application.app import Application
from framework.application.commands import CommandResult
from framework.application.repository import Repository
from framework.application.settings import AppSettings
from framework.application.wiring import GroupMember, GroupSettings, open_log
from framework.projections import ProjectionFailure, UnknownProjectionError
from framework.projections.rebuild import Progress

# Beside what applications use, the names the management commands see of the
# read side, so that the command line needs nothing but this package.

__all__ = [
    "AppSettings",
    "Application",
    "CommandResult",
    "GroupMember",
    "GroupSettings",
    "Progress",
    "ProjectionFailure",
    "Repository",
    "UnknownProjectionError",
    "open_log",
]
