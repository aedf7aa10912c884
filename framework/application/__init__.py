"""The application: wires log, store, codec and command routing from one store URL."""

from __future__ import annotations

from framework.application.app import Application, CommandResult
from framework.application.settings import AppSettings, open_log

__all__ = ["AppSettings", "Application", "CommandResult", "open_log"]
