"""``projections`` commands: run, status, rebuild, reset, dead-letters list|retry."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

from framework.application.app import Application
from framework.application.settings import file_root
from framework.cli.app_loader import load_app
from framework.errors import ConfigurationError
from framework.projections.group import FileGroup, GroupMember, GroupSettings
from framework.projections.rebuild import Progress, rebuild
from framework.projections.runner import ProjectionRunner


def add_projection_commands(groups: Any) -> None:
    projections = groups.add_parser("projections", help="read models")
    commands = projections.add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )

    def command(name: str, help_text: str, run: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument(
            "--app", help="package.module:app (default: $FRAMEWORK_APP)"
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
    command("status", "checkpoint, end offset and lag per partition", _status)
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


def _runner(app: Application, name: str) -> ProjectionRunner:
    try:
        return app.projections[name]
    except KeyError:
        known = ", ".join(sorted(app.projections)) or "none"
        raise ConfigurationError(
            f"the application has no projection {name!r} (registered: {known}); "
            "register it with app.project(...)"
        ) from None


def _group_dir(app: Application, given: Path | None, name: str) -> Path:
    if given is not None:
        return given / name
    if app.url is None or not app.url.startswith("file:"):
        raise ConfigurationError(
            "--group-dir is needed: members coordinate through a folder they share"
        )
    return file_root(app.url) / "groups" / name


def _member(
    app: Application, runner: ProjectionRunner, args: argparse.Namespace
) -> GroupMember:
    """A group member for ``runner``: coordinated through the database on
    PostgreSQL (waking on its NOTIFYs), through a folder of file locks otherwise."""
    settings = GroupSettings(heartbeat=args.heartbeat, lease=args.lease)
    # Loaded already if the store is a PostgreSQL one; never imported otherwise.
    postgres = sys.modules.get("framework.store.backends.postgres")
    if (
        args.group_dir is None
        and postgres is not None
        and isinstance(app.store, postgres.PostgresEventStore)
    ):
        from framework.projections.backends.postgres import PostgresReadModelStore
        from framework.projections.backends.postgres_group import PostgresGroup
        from framework.projections.backends.postgres_push import PostgresAppendSignal

        db = app.store.db
        # A stopped member's open transaction must not hold the projection's
        # lock for longer than its lease.
        read_models = app.read_models
        if isinstance(read_models, PostgresReadModelStore):
            read_models.idle_timeout = min(read_models.idle_timeout, settings.lease)
        return GroupMember(
            runner,
            PostgresGroup(
                db,
                runner.name,
                app.store.partitions,
                member_id=args.member_id,
                lease=settings.lease,
                heartbeat=settings.heartbeat,
            ),
            heartbeat=settings.heartbeat,
            signal=PostgresAppendSignal(app.store),
        )
    group = FileGroup(
        _group_dir(app, args.group_dir, runner.name),
        app.store.partitions,
        member_id=args.member_id,
    )
    return GroupMember(runner, group, heartbeat=settings.heartbeat)


def _run(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    names = args.names or sorted(app.projections)
    stop = threading.Event()
    threads = []
    for name in names:
        member = _member(app, _runner(app, name), args)
        thread = threading.Thread(target=member.run, args=(stop,), name=name)
        thread.start()
        threads.append(thread)
    print(f"running {', '.join(names)}; Ctrl-C stops", file=sys.stderr)
    try:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return 0


def _status(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    ends = app.store.end_position()
    print(
        f"{'projection':<20} {'ver':>7} {'part':>4} {'checkpoint':>10} {'end':>10} "
        f"{'lag':>8} state"
    )
    for name, runner in sorted(app.projections.items()):
        state = app.read_models.state(name)
        stored_version = state.version if state else runner.projection.version
        version = f"{stored_version}/{runner.projection.version}"
        parked = app.read_models.parked(name, state.generation) if state else []
        checkpoints = runner.checkpoints()
        for partition in runner.partitions:
            end = ends.get(partition, -1)
            done = checkpoints.get(partition, -1)
            lag = max(0, end - done)
            waiting = [p for p in parked if p.partition == partition]
            condition = "ok" if lag == 0 else "behind"
            if waiting:
                condition += f", {len(waiting)} parked"
            if stored_version != runner.projection.version:
                condition += ", needs rebuild"
            if state is not None and state.building is not None:
                condition += f", rebuilding g{state.building}"
            print(
                f"{name:<20} {version:>7} {partition:>4} {done:>10} {end:>10} "
                f"{lag:>8} {condition}"
            )
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
    app = load_app(args.app)
    runner = _runner(app, args.name)
    generation = rebuild(
        app.store,
        app.codec,
        runner.projection,
        app.read_models,
        progress=_progress_bar,
    )
    print(file=sys.stderr)
    print(f"{args.name}: rebuilt as generation {generation}, now serving queries")
    return 0


def _reset(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    runner = _runner(app, args.name)
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
    app = load_app(args.app)
    runner = _runner(app, args.name)
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
