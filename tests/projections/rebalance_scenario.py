"""The rebalance scenario both stores run: group members join, leave cleanly and
are SIGKILLed (one inside an open transaction, one while busy), and on
PostgreSQL one stalls inside a transaction past its lease and then goes on,
while writer processes append; and the checks of the ``stream_order`` read
model afterwards.

The test waits only on what the processes print (``rebalance_worker``): every
line lands in a ``Journal``, and a wait is a condition over it, woken by the next
line; its timeout only bounds a run that went wrong.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from framework import Application, AppSettings
from framework.projections import ProjectionRunner
from framework.projections.assignment import target_assignment
from framework.projections.backends.memory import MemoryReadModelStore
from tests.projections.rebalance_worker import PARTITIONS, StreamOrder

ROOT = Path(__file__).resolve().parents[2]

#: Seconds any one wait may take before the run counts as broken.
PATIENCE = 60.0


class Journal:
    """What the processes printed, folded into the facts the test waits on."""

    def __init__(self, scratch: Path) -> None:
        #: Where each process's stderr goes (``NAME.stderr``).
        self.scratch = scratch
        self._condition = threading.Condition()
        #: Member -> the partitions it said it owns last.
        self.owns: dict[str, list[int]] = {}
        #: Member -> partition -> the last offset it committed.
        self.applied: dict[str, dict[int, int]] = {}
        self.hanging: set[str] = set()
        self.left: set[str] = set()
        #: Writer -> stream -> its version, printed when the writer ends.
        self.versions: dict[str, dict[str, int]] = {}
        #: Processes that ended, and those the test meant to end.
        self.ended: set[str] = set()
        self.expected_to_end: set[str] = set()
        self.tail: list[str] = []

    def feed(self, name: str, line: str) -> None:
        word, _, rest = line.partition(" ")
        with self._condition:
            self.tail = [*self.tail[-40:], f"{name}: {line}"]
            if word == "owns":
                member, _, owned = rest.partition(" ")
                self.owns[member] = json.loads(owned)
            elif word == "applied":
                member, _, offsets = rest.partition(" ")
                self.applied[member] = {
                    int(p): o for p, o in json.loads(offsets).items()
                }
            elif word == "hanging":
                self.hanging.add(rest)
            elif word == "left":
                self.left.add(rest)
            elif line.startswith("{"):
                self.versions[name] = json.loads(line)
            self._condition.notify_all()

    def end(self, name: str) -> None:
        with self._condition:
            self.ended.add(name)
            self._condition.notify_all()

    def committed(self) -> dict[int, int]:
        """Partition -> the furthest offset any member committed."""
        with self._condition:
            furthest: dict[int, int] = {}
            for offsets in self.applied.values():
                for partition, offset in offsets.items():
                    furthest[partition] = max(furthest.get(partition, -1), offset)
            return furthest

    def wait(self, what: str, holds: Callable[[], bool]) -> None:
        """Block until ``holds()`` (checked after every line); fail if a process
        ends unasked meanwhile, or after ``PATIENCE`` seconds."""
        deadline = time.monotonic() + PATIENCE
        with self._condition:
            while not holds():
                died = self.ended - self.expected_to_end
                if died:
                    errors = "".join(
                        f"\n{name}'s stderr:\n"
                        + (self.scratch / f"{name}.stderr").read_text()[-3000:]
                        for name in sorted(died)
                    )
                    raise AssertionError(
                        f"waiting for {what}: {sorted(died)} ended unasked; last "
                        "lines:\n" + "\n".join(self.tail) + errors
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{what}: not within {PATIENCE} s; owns {self.owns}; last "
                        "lines:\n" + "\n".join(self.tail)
                    )
                self._condition.wait(left)


class Process:
    """A ``rebalance_worker`` process whose output lines go to the journal."""

    def __init__(
        self, journal: Journal, name: str, args: list[str], stderr: Path
    ) -> None:
        self.journal = journal
        self.name = name
        self.stderr_path = stderr
        with stderr.open("wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "tests.projections.rebalance_worker", *args],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self._reader = threading.Thread(
            target=self._read, name=f"read {name}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        stdout: IO[str] | None = self.popen.stdout
        assert stdout is not None
        with stdout:
            for line in stdout:
                self.journal.feed(self.name, line.rstrip("\n"))
        self.journal.end(self.name)

    def send(self, line: str) -> None:
        stdin = self.popen.stdin
        assert stdin is not None
        stdin.write(f"{line}\n")
        stdin.flush()

    def close_input(self) -> None:
        stdin = self.popen.stdin
        assert stdin is not None
        stdin.close()

    def kill(self) -> None:
        self.journal.expected_to_end.add(self.name)
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self._reaped()

    def terminate(self) -> int:
        """SIGTERM (the member leaves its group), and its exit status."""
        self.journal.expected_to_end.add(self.name)
        self.popen.send_signal(signal.SIGTERM)
        return self.finish()

    def finish(self) -> int:
        self.journal.expected_to_end.add(self.name)
        status = self.popen.wait(PATIENCE)
        self._reaped()
        return status

    def _reaped(self) -> None:
        self._reader.join()
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            self.popen.stdin.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


class Cluster:
    """The members and writers of one run, and waits phrased over them."""

    def __init__(self, url: str, scratch: Path) -> None:
        self.url = url
        self.scratch = scratch
        self.journal = Journal(scratch)
        self.members: dict[str, Process] = {}
        self.writers: list[Process] = []
        self.processes: list[Process] = []
        self.paused: set[str] = set()

    def _start(self, name: str, args: list[str]) -> Process:
        process = Process(self.journal, name, args, self.scratch / f"{name}.stderr")
        self.processes.append(process)
        return process

    def start_member(
        self, member: str, *, hang_after: int = 0, batch: int = 5
    ) -> Process:
        args = ["member", self.url, member, "--batch", str(batch)]
        if hang_after:
            args += ["--hang-after", str(hang_after)]
        self.members[member] = process = self._start(member, args)
        return process

    def start_writers(self, count: int) -> None:
        for n in range(count):
            name = f"writer{n}"
            self.writers.append(
                self._start(name, ["write", self.url, "--seed", str(n + 1)])
            )

    def write(self, saves: int) -> None:
        for writer in self.writers:
            writer.send(str(saves))

    def live(self) -> list[str]:
        return sorted(
            m
            for m, p in self.members.items()
            if p.name not in self.journal.ended and m not in self.paused
        )

    def pause(self, member: str) -> None:
        """SIGSTOP: the member's heartbeats stop, its connections stay open."""
        self.paused.add(member)
        self.members[member].popen.send_signal(signal.SIGSTOP)

    def resume(self, member: str) -> None:
        """SIGCONT, and let a handler blocked in it go on."""
        self.members[member].popen.send_signal(signal.SIGCONT)
        self.members[member].send("go")
        self.paused.discard(member)

    def kill(self, member: str) -> None:
        self.members.pop(member).kill()

    def leave(self, member: str) -> None:
        process = self.members.pop(member)
        status = process.terminate()
        assert status == 0, f"{member} exited with {status}:\n{process.stderr()}"
        assert member in self.journal.left

    def wait_settled(self) -> None:
        """Until every live member owns exactly its share of the partitions."""
        live = self.live()
        target = target_assignment(live, PARTITIONS)
        self.journal.wait(
            f"the assignment {target}",
            lambda: all(self.journal.owns.get(m) == target[m] for m in live),
        )

    def wait_owning(self, member: str) -> None:
        """Until ``member`` owns a partition."""
        self.journal.wait(
            f"{member} to own a partition", lambda: bool(self.journal.owns.get(member))
        )

    def write_until_applied(self, member: str, saves: int = 100) -> None:
        """Append, and wait until ``member`` commits past what any member had
        committed before, on a partition it owns: it applies what it took over."""
        before = self.journal.committed()
        self.write(saves)

        def moved() -> bool:
            mine = self.journal.applied.get(member, {})
            return any(
                offset > before.get(p, -1)
                for p, offset in mine.items()
                if p in self.journal.owns.get(member, [])
            )

        self.journal.wait(f"{member} to apply new events", moved)

    def write_until_committed(self, member: str, saves: int = 100) -> None:
        """Append, and wait until ``member`` commits another batch: it is busy
        applying them."""
        before = dict(self.journal.applied.get(member, {}))
        self.write(saves)
        self.journal.wait(
            f"{member} to commit again",
            lambda: self.journal.applied.get(member, {}) != before,
        )

    def finish_writers(self) -> dict[str, int]:
        """Stop the writers; every stream they wrote, with its version."""
        versions: dict[str, int] = {}
        for writer in self.writers:
            writer.close_input()
            status = writer.finish()
            assert status == 0, f"{writer.name} exited with {status}:\n" + (
                writer.stderr()
            )
            versions.update(self.journal.versions[writer.name])
        return versions

    def wait_caught_up(self, end: dict[int, int]) -> None:
        self.journal.wait(
            f"the members to commit up to {end}",
            lambda: all(
                self.journal.committed().get(p, -1) >= o for p, o in end.items()
            ),
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.kill()


@contextmanager
def cluster(url: str, scratch: Path) -> Iterator[Cluster]:
    running = Cluster(url, scratch)
    try:
        yield running
    finally:
        running.stop()


def run_rebalances(url: str, scratch: Path, *, leases: bool = False) -> dict[str, int]:
    """Members join, one is killed inside a transaction, one is killed while
    busy, one leaves cleanly, more join, while two writers append; returns each
    written stream's version once the members have applied everything.

    With ``leases`` (groups whose members hold leases: PostgreSQL), one member
    also stalls inside a transaction until its lease runs out, then goes on."""
    with cluster(url, scratch) as run:
        run.start_writers(2)
        run.write(20)
        run.start_member("m1")
        run.wait_settled()
        run.write_until_applied("m1")

        run.start_member("m2")
        run.write(100)
        run.wait_settled()
        run.write_until_applied("m2")

        # Killed in the middle of a batch: its handler blocks inside the
        # read-model transaction, with some of the batch applied there.
        run.start_member("m3", hang_after=3)
        # It blocks once it has applied a few events of partitions it took.
        run.wait_owning("m3")
        run.write(100)
        run.journal.wait(
            "m3 to block in a handler", lambda: "m3" in run.journal.hanging
        )
        run.kill("m3")
        run.wait_settled()
        run.write_until_applied("m1")

        run.start_member("m4")
        run.write(100)
        run.wait_settled()
        run.write_until_applied("m4")
        # Killed while busy: it has just committed a batch and has more to do.
        run.write_until_committed("m1")
        run.kill("m1")
        run.wait_settled()

        run.write(100)
        run.leave("m2")
        run.wait_settled()
        run.write_until_applied("m4")

        run.start_member("m5")
        run.write(100)
        run.wait_settled()
        run.write_until_applied("m5")

        if leases:
            # Stalled inside a transaction (SIGSTOP) until its lease runs out:
            # the others take its partitions and go on from the committed
            # checkpoints; when it wakes, its transaction must not count.
            run.start_member("m6", hang_after=3, batch=1)
            # It blocks once it has applied a few events of partitions it took.
            run.wait_owning("m6")
            run.write(100)
            run.journal.wait(
                "m6 to block in a handler", lambda: "m6" in run.journal.hanging
            )
            stalled = list(run.journal.owns["m6"])
            before = run.journal.committed()
            run.pause("m6")
            run.write(100)
            run.wait_settled()
            run.write(100)
            run.journal.wait(
                f"the others to apply new events of {stalled}",
                lambda: all(
                    run.journal.committed().get(p, -1) > before.get(p, -1)
                    for p in stalled
                ),
            )
            run.resume("m6")
            run.write(100)
            run.wait_settled()
            run.write_until_applied("m6")

        versions = run.finish_writers()
        with Application(url, settings=AppSettings(partitions=PARTITIONS)) as app:
            end = dict(app.end_position())
        run.wait_caught_up(end)
        for member in run.live():
            run.leave(member)
    return versions


def read_model_tables(app: Application) -> dict[str, dict[str, Any]]:
    return {
        table: dict(app.read_models.table(StreamOrder.name, table).items())
        for table in StreamOrder.tables
    }


def check_read_model(url: str, versions: dict[str, int]) -> None:
    """No stream was seen out of order, every stream is applied up to its
    version in the store, checkpoints are at the log's end, and the read model
    equals a replay from scratch."""
    with Application(url, settings=AppSettings(partitions=PARTITIONS)) as app:
        app.project(StreamOrder())
        tables = read_model_tables(app)
        assert tables["violations"] == {}
        streams = tables["streams"]
        assert {s: app.store.stream_version(s) for s in versions} == versions
        assert {s: row["last"] for s, row in streams.items()} == versions
        assert {s: row["applied"] for s, row in streams.items()} == versions
        assert app.runner(StreamOrder.name).checkpoints() == dict(app.end_position())
        replayed = MemoryReadModelStore()
        ProjectionRunner(app.store, app.codec, StreamOrder(), replayed).catch_up()
        assert tables == {
            table: dict(replayed.table(StreamOrder.name, table).items())
            for table in StreamOrder.tables
        }
