"""``benchmarks/slowflush``: the shim that makes a server's flushes take longer
(``make bench-pg-slowflush``) still flushes, and adds the delay it is given."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHIM = Path(__file__).resolve().parents[2] / "benchmarks" / "slowflush" / "slowflush.c"

_FLUSH_TWICE = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"kept")
started = time.monotonic()
os.fdatasync(fd)
os.fsync(fd)
print(time.monotonic() - started)
os.close(fd)
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed; the slow-flush shim is built with it")
    built = tmp_path_factory.mktemp("slowflush") / "slowflush.so"
    subprocess.run(
        [gcc, "-O2", "-shared", "-fPIC", "-o", str(built), str(SHIM), "-ldl"],
        check=True,
    )
    return built


def _flush_twice(shim: Path, target: Path, delay_us: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _FLUSH_TWICE, str(target)],
        env={"LD_PRELOAD": str(shim), "SLOWFLUSH_US": str(delay_us)},
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout)


def test_each_flush_waits_at_least_the_delay_and_still_writes(
    shim: Path, tmp_path: Path
) -> None:
    # A lower bound only: a sleep never ends early, however loaded the machine.
    seconds = _flush_twice(shim, tmp_path / "slow", delay_us=50_000)
    assert seconds >= 2 * 0.050
    assert (tmp_path / "slow").read_bytes() == b"kept"
