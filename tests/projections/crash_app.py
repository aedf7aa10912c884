"""An application for the crash tests, configured by environment variables:
``CRASH_STORE`` (a file: URL) and ``CRASH_BATCH`` (runner batch size)."""

from __future__ import annotations

import os

from example_ledger.commands import router
from example_ledger.projections import Balances
from framework import Application, AppSettings
from framework.projections import RunnerSettings

app = Application(
    os.environ["CRASH_STORE"],
    router=router,
    settings=AppSettings(partitions=12),
)
app.project(
    Balances(),
    settings=RunnerSettings(batch_size=int(os.environ.get("CRASH_BATCH", "50"))),
)
