"""``log repartition``: change the partition count of a store's events topic by
copying it into a new topic (``framework.application.repartition`` has how)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from framework.application.admin import (
    Repartitioned,
    repartition_file_store,
    repartition_postgres_store,
)
from framework.application.settings import STORE_URL_ENV, AppSettings, url_scheme
from framework.cli.app_loader import load_app
from framework.errors import ConfigurationError


def add_repartition_command(commands: Any) -> None:
    repartition = commands.add_parser(
        "repartition",
        help="copy the events topic into a new topic of --partitions partitions "
        "and switch the store to it (says what it would do unless given --yes)",
    )
    repartition.add_argument(
        "--app",
        help="package.module:app, whose store, events topic and read models to "
        "use (default: $FRAMEWORK_APP, if --url is not given)",
    )
    repartition.add_argument(
        "--url",
        help=f"file:PATH or postgresql://... of the store (default: ${STORE_URL_ENV})",
    )
    repartition.add_argument("--partitions", type=int, required=True)
    repartition.add_argument(
        "--yes",
        action="store_true",
        help="really copy and switch (without it nothing changes: the command says "
        "what it would do and exits 1)",
    )
    repartition.set_defaults(run=run_repartition)


def _progress(copied: int) -> None:
    print(f"copied {copied:,} events", flush=True)


def run_repartition(args: argparse.Namespace) -> int:
    """Exit 0 once repartitioned, 1 after a dry run or an error."""
    url = args.url or (None if args.app else os.environ.get(STORE_URL_ENV))
    if url is None and args.app is None and not os.environ.get("FRAMEWORK_APP"):
        raise ConfigurationError(
            f"no store: pass --url file:PATH or --app package.module:app, or set "
            f"{STORE_URL_ENV}"
        )
    settings = AppSettings()
    read_models = None
    app = None
    if url is None:
        app = load_app(args.app, None)
        url, settings, read_models = app.url, app.settings, app.read_models
    try:
        scheme = url_scheme(url or "")
        if url is not None and scheme in ("postgresql", "postgres"):
            done = repartition_postgres_store(
                url, args.partitions, dry_run=not args.yes, settings=settings
            )
        elif url is not None and scheme == "file":
            done = repartition_file_store(
                url,
                args.partitions,
                dry_run=not args.yes,
                settings=settings,
                read_models=read_models,
                progress=_progress,
            )
        else:
            raise ConfigurationError(
                f"log repartition works on file: and postgresql:// stores, not "
                f"{url!r}: pass --url file:PATH or postgresql://..."
            )
    finally:
        if app is not None:
            app.close()
    if not args.yes:
        print(f"would {_describe(done)}; add --yes to do it")
        return 1
    print(f"{'finished: ' if done.resumed else ''}{_describe(done, past=True)}")
    if done.kept_as is not None:
        print(
            f"the old topic is kept as {done.kept_as!r}; once you no longer need "
            f"it, delete its rows (docs/log.md says how)"
        )
    else:
        print(
            f"the old topic {done.source!r} is kept; once you no longer need it, "
            f"delete {done.where}/log/topics/{done.source}.json and then its "
            f"folders {done.where}/log/{done.source}-<n>"
        )
    return 0


def _describe(done: Repartitioned, *, past: bool = False) -> str:
    copy, continues, replays = (
        ("copied", "continues", "was emptied to replay")
        if past
        else ("copy", "would continue", "would be emptied to replay")
    )
    projections = "; ".join(
        f"{name} {continues} from the new topic's end"
        if plan == "continue"
        else f"{name} {replays} it (it did not cover the old topic)"
        for name, plan in sorted(done.projections.items())
    )
    return (
        f"{copy} {done.events:,} events of {done.source!r} ({done.partitions_before} "
        f"partitions) in {done.where} into "
        f"{'a new ' if done.kept_as else ''}{done.topic!r} ({done.partitions} "
        f"partitions), which the store reads from then on"
        + (f"; projections: {projections}" if projections else "")
    )
