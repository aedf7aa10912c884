"""``projections`` commands: run, status, rebuild, reset, dead-letters list|retry.

Exit codes: 0 done (``status``: every projection healthy, behind or not), 1 an
error (said on stderr), 2 a usage error; ``status`` 3 when a projection stopped
on a failure and 4 when it has parked events (and none stopped); ``rebuild`` 130
when Ctrl-C interrupted it (run it again to resume). ``run`` stops cleanly on
Ctrl-C or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from framework.application import (
    Application,
    GroupMember,
    GroupSettings,
    Progress,
    ProjectionFailure,
)
from framework.application.settings import STORE_URL_ENV
from framework.cli.app_loader import load_app
from framework.errors import ConfigurationError

#: ``status``: a projection stopped on a failure (a handler kept failing).
EXIT_STOPPED = 3
#: ``status``: a projection has parked events (dead letters) and none stopped.
EXIT_PARKED = 4
#: A command interrupted by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def add_projection_commands(groups: Any) -> None:
    projections = groups.add_parser("projections", help="read models")
    commands = projections.add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )

    def command(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument(
            "--app",
            help="package.module:app, an Application or a function returning "
            "one (default: $FRAMEWORK_APP)",
        )
        parser.add_argument(
            "--url",
            help=f"the store (file:PATH or postgresql://...); sets ${STORE_URL_ENV} "
            "before the app is built and is passed to an --app function that "
            "takes url (default: the app's own)",
        )
        parser.set_defaults(run=run)
        return parser

    run = command("run", "keep projections up to date (a consumer-group member)", _run)
    run.add_argument("names", nargs="*", help="projections to run (default: all)")
    run.add_argument(
        "--group-dir",
        type=Path,
        help="where members coordinate (file stores; PostgreSQL uses the database)",
    )
    run.add_argument("--member-id", help="this member's id (default: pid-based)")
    defaults = GroupSettings()
    run.add_argument(
        "--heartbeat", type=float, default=defaults.heartbeat, help="seconds"
    )
    run.add_argument(
        "--lease",
        type=float,
        default=defaults.lease,
        help="seconds without a heartbeat before a PostgreSQL member counts as dead",
    )
    command(
        "status",
        "checkpoint, end offset, lag and failures per partition (exit 0 healthy, "
        f"{EXIT_STOPPED} stopped on a failure, {EXIT_PARKED} parked events)",
        _status,
    )
    rebuild_parser = command(
        "rebuild", "replay into a fresh copy, then swap it in", _rebuild
    )
    rebuild_parser.add_argument("name")
    reset = command("reset", "empty a read model so that it replays", _reset)
    reset.add_argument("name")
    reset.add_argument("--yes", action="store_true", help="really reset")
    dead = command("dead-letters", "list or retry parked events", _dead_letters)
    dead.add_argument("action", choices=["list", "retry"])
    dead.add_argument("name")


@contextmanager
def _loaded(args: argparse.Namespace) -> Iterator[Application]:
    """The ``--app`` application on the ``--url`` store, closed afterwards."""
    app = load_app(args.app, args.url)
    try:
        yield app
    finally:
        app.close()


class _Member(threading.Thread):
    """A group member's thread, keeping what ended it."""

    def __init__(self, member: GroupMember, stop: threading.Event) -> None:
        super().__init__(name=member.runner.name)
        self.member = member
        self._stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.member.run(self._stop_event)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
            self._stop_event.set()


def _terminate(signum: int, frame: FrameType | None) -> None:
    # A supervisor's stop is a Ctrl-C: members leave their groups cleanly.
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    with _loaded(args) as app:
        names = args.names or sorted(app.projections)
        if not names:
            raise ConfigurationError(
                f"--app {args.app or ''} registers no projections to run"
            )
        settings = GroupSettings(heartbeat=args.heartbeat, lease=args.lease)
        members = [
            app.group_member(
                name,
                group_dir=args.group_dir,
                member_id=args.member_id,
                settings=settings,
            )
            for name in names
        ]
        stop = threading.Event()
        threads = [_Member(member, stop) for member in members]
        previous = signal.signal(signal.SIGTERM, _terminate)
        interrupted = False
        try:
            for thread in threads:
                thread.start()
            _announce_when_joined(threads)
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(0.5)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            signal.signal(signal.SIGTERM, previous)
        for thread in threads:
            if thread.error is not None:
                raise thread.error
    if interrupted:
        print(
            f"stopped {', '.join(names)}: every member left its group (run the "
            "command again to go on)",
            file=sys.stderr,
        )
    return 0


def _announce_when_joined(threads: list[_Member]) -> None:
    """Once every member has joined its group, print one line on stdout (flushed)
    for scripts and supervisors to wait for: the projections and member ids."""
    for thread in threads:
        while not thread.member.joined.wait(0.5):
            if not thread.is_alive():
                return
    running = ", ".join(
        f"{t.member.runner.name} (member {t.member.group.member_id})" for t in threads
    )
    print(f"running {running}; Ctrl-C stops", flush=True)


def _status(args: argparse.Namespace) -> int:
    with _loaded(args) as app:
        return _print_status(app)


def _print_status(app: Application) -> int:
    ends = app.store.end_position()
    read_models = app.read_models
    print(
        f"{'projection':<20} {'ver':>7} {'part':>4} {'checkpoint':>10} {'end':>10} "
        f"{'lag':>8} state"
    )
    stopped: list[tuple[str, ProjectionFailure]] = []
    any_parked = False
    for name, runner in sorted(app.projections.items()):
        state = read_models.state(name)
        stored_version = state.version if state else runner.projection.version
        version = f"{stored_version}/{runner.projection.version}"
        parked = read_models.parked(name, state.generation) if state else []
        failed = {
            f.partition: f
            for f in (read_models.failures(name, state.generation) if state else [])
        }
        rebuild_failed = {
            f.partition: f
            for f in (
                read_models.failures(name, state.building)
                if state is not None and state.building is not None
                else []
            )
        }
        checkpoints = read_models.checkpoints(name, state.generation) if state else {}
        for partition in runner.partitions:
            end = ends.get(partition, -1)
            done = checkpoints.get(partition, -1)
            lag = max(0, end - done)
            waiting = [p for p in parked if p.partition == partition]
            condition = "ok" if lag == 0 else "behind"
            if partition in failed:
                condition = f"STOPPED at offset {failed[partition].offset}"
                stopped.append((name, failed[partition]))
            if waiting:
                condition += f", {len(waiting)} parked"
                any_parked = True
            if stored_version != runner.projection.version:
                condition += ", needs rebuild"
            if state is not None and state.building is not None:
                condition += f", rebuilding g{state.building}"
                if partition in rebuild_failed:
                    condition += (
                        f" (stopped at offset {rebuild_failed[partition].offset})"
                    )
                    stopped.append((name, rebuild_failed[partition]))
            print(
                f"{name:<20} {version:>7} {partition:>4} {done:>10} {end:>10} "
                f"{lag:>8} {condition}"
            )
    for name, failure in stopped:
        tries = "once" if failure.attempts == 1 else f"{failure.attempts} times"
        print(
            f"{name} stopped at {failure.where} at {failure.failed_at}: its "
            f"handler failed {tries}: {failure.error}"
        )
    if stopped:
        print(
            "fix the handler and run the projection again: it retries the event "
            "(or reset or rebuild it)"
        )
        return EXIT_STOPPED
    if any_parked:
        print(
            "parked events: python -m framework projections dead-letters "
            "list|retry NAME"
        )
        return EXIT_PARKED
    return 0


def _progress_bar(progress: Progress) -> None:
    width = 30
    share = progress.done / progress.total if progress.total else 1.0
    filled = int(width * share)
    left = progress.seconds_left
    eta = "?" if left is None else f"{int(left) // 60}:{int(left) % 60:02d}"
    print(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {share:6.1%} "
        f"{progress.done:,}/{progress.total:,} events "
        f"{progress.events_per_s:,.0f} ev/s {eta} left",
        end="",
        file=sys.stderr,
        flush=True,
    )


def _rebuild(args: argparse.Namespace) -> int:
    with _loaded(args) as app:
        try:
            generation = app.rebuild(args.name, progress=_progress_bar)
        except KeyboardInterrupt:
            print(file=sys.stderr)  # ends the progress bar's line
            print(_interrupted_rebuild(app, args.name), file=sys.stderr)
            return EXIT_INTERRUPTED
    print(file=sys.stderr)
    print(f"{args.name}: rebuilt as generation {generation}, now serving queries")
    return 0


def _interrupted_rebuild(app: Application, name: str) -> str:
    """How far an interrupted rebuild got, from what it committed."""
    state = app.read_models.state(name)
    building = None if state is None else state.building
    done = (
        0
        if building is None
        else sum(o + 1 for o in app.read_models.checkpoints(name, building).values())
    )
    total = max(sum(o + 1 for o in app.store.end_position().values()), done)
    return (
        f"interrupted: rebuilt {done:,} of {total:,} events of {name!r}; the old "
        "copy still serves queries; run the same command again to resume from there"
    )


def _reset(args: argparse.Namespace) -> int:
    with _loaded(args) as app:
        runner = app.runner(args.name)
        if not args.yes:
            raise ConfigurationError(
                f"reset empties {args.name!r} until it replays; add --yes to confirm "
                "(rebuild keeps serving the old copy meanwhile)"
            )
        projection = runner.projection
        app.read_models.reset(projection.name, projection.tables, projection.version)
    print(f"{args.name}: reset; it replays from the start when it next runs")
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    with _loaded(args) as app:
        runner = app.runner(args.name)
        if args.action == "retry":
            applied, remaining = runner.retry_parked()
            print(f"{args.name}: applied {applied}, still parked {remaining}")
            return 0 if remaining == 0 else 1
        state = app.read_models.state(args.name)
        parked = app.read_models.parked(args.name, state.generation) if state else []
    if not parked:
        print(f"{args.name}: no parked events")
    for event in parked:
        print(
            f"{event.partition}/{event.offset} stream {event.stream_id} {event.name} "
            f"tries={event.attempts}: {event.error}"
        )
    return 0
