"""The application the projection benchmarks run in a runner process:
``BENCH_STORE_URL`` names the store; it projects the ledger's balances."""

from __future__ import annotations

import os

from example_ledger.projections import Balances
from framework import Application

app = Application(os.environ["BENCH_STORE_URL"])
app.project(Balances())
