"""A child process for the policy-runner tests: runs the ledger's policies from
the store at ``URL`` in steps, printing how many events each read, until killed.

``python policy_worker.py URL``
"""

from __future__ import annotations

import sys

from example_ledger.commands import router
from framework import Application, AppSettings

SETTINGS = AppSettings(partitions=4, policies="log")

if __name__ == "__main__":
    with Application(sys.argv[1], router=router, settings=SETTINGS) as app:
        runner = app.policies
        print("ready", flush=True)
        while True:
            print(runner.step(), flush=True)
