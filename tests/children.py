"""A pytest plugin: ``run_script``, which starts a Python script of the tests as a
child process (this checkout and the script's folder on its import path) and kills
and reaps every child still running when the test ends."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RunScript = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def run_script() -> Iterator[RunScript]:
    started: list[subprocess.Popen[str]] = []

    def start(
        script: Path, *args: object, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[str]:
        path = os.pathsep.join([str(script.parent), str(ROOT)])
        process = subprocess.Popen(
            [sys.executable, str(script), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {}), "PYTHONPATH": path},
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
