"""Running ``python -m framework ...`` in a subprocess, as users do, for the
command-line tests of every store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs

from example_ledger.commands import Deposit, OpenAccount
from framework import Application
from tests.cli import cli_app

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.cli.cli_app:build"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLI_")}
    env.pop("FRAMEWORK_STORE_URL", None)
    env.pop("FRAMEWORK_APP", None)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@attrs.frozen
class Done:
    code: int
    out: str
    err: str


def cli(*argv: str, **env: str) -> Done:
    """Run one command to its end."""
    done = subprocess.run(
        [sys.executable, "-m", "framework", *argv],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr)


class Started:
    """A command left running: read its stdout line by line, interrupt it, and
    collect the rest."""

    def __init__(self, *argv: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "framework", *argv],
            cwd=ROOT,
            env=environment(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        # stderr is drained meanwhile, so that the child never blocks on it.
        self._err: list[str] = []
        self._reader = threading.Thread(
            target=lambda: self._err.append(self.process.stderr.read())  # type: ignore[union-attr]
        )
        self._reader.start()

    def wait_for_line(self, starting: str) -> str:
        """The first stdout line starting with ``starting`` (blocks until it is
        printed); fails if the command ends first."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith(starting):
                return line
        self.finish()
        raise AssertionError(
            f"the command ended ({self.process.returncode}) without printing "
            f"{starting!r}; stdout: {self.lines}; stderr: {self._err}"
        )

    def interrupt(self, signum: int = signal.SIGINT) -> Done:
        self.process.send_signal(signum)
        return self.finish()

    def finish(self) -> Done:
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        rest = self.process.stdout.read()
        code = self.process.wait(timeout=600)
        self._reader.join()
        self.process.stdout.close()
        self.process.stderr.close()
        return Done(code, "".join(self.lines) + rest, "".join(self._err))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


def seed(
    url: str, *, projections: str = "balances", deposits: tuple[int, ...] = (5, 13)
) -> list[str]:
    """Create the store at ``url`` with the projections registered (not run)
    and two accounts with these deposits each; the account ids."""
    with cli_app.build(url, projections) as app:
        accounts = [app.handle(OpenAccount(f"o{n}")).value for n in range(2)]
        for account in accounts:
            for amount in deposits:
                app.handle(Deposit(account, amount))
    return accounts


def wait_until_failures_cleared(app: Application, projection: str) -> None:
    """Wait until no failure of ``projection`` is recorded: a fixed runner that
    just started clears it once it has applied the event again, and until then a
    pull query rightly reports the projection as stopped."""
    deadline = time.monotonic() + 600
    while True:
        state = app.read_models.state(projection)
        if state is not None and not app.read_models.failures(
            projection, state.generation
        ):
            return
        assert time.monotonic() < deadline, f"{projection} stayed stopped"
        time.sleep(0.01)  # a condition polled, not a pause timed to pass
