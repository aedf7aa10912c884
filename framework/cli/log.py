"""``log`` commands for the embedded file store: ``log repair`` and ``log
repartition``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from framework.application.admin import repair_file_log
from framework.application.settings import STORE_URL_ENV
from framework.cli.repartition import add_repartition_command
from framework.errors import ConfigurationError


def add_log_commands(groups: Any) -> None:
    log = groups.add_parser("log", help="the embedded file store's segment files")
    commands = log.add_subparsers(dest="command", required=True, metavar="COMMAND")
    repair = commands.add_parser(
        "repair",
        help="say what truncating each partition at its first damaged batch would "
        "drop; truncate with --yes",
    )
    repair.add_argument(
        "--url", help=f"file:PATH of the store (default: ${STORE_URL_ENV})"
    )
    repair.add_argument("--topic", default="events")
    repair.add_argument(
        "--partition", type=int, action="append", help="default: every partition"
    )
    repair.add_argument(
        "--yes",
        action="store_true",
        help="really drop the damaged batches and everything after them (without "
        "it, nothing changes: the command says what it would drop)",
    )
    repair.set_defaults(run=run_repair)
    add_repartition_command(commands)


def run_repair(args: argparse.Namespace) -> int:
    """Without ``--yes`` a dry run: prints what each partition would lose and exits
    1 if any would lose something. With it, repairs and prints what was dropped."""
    url = args.url or os.environ.get(STORE_URL_ENV)
    if not url or not url.startswith("file:"):
        raise ConfigurationError(
            "log repair works on the embedded file store: pass --url file:PATH"
        )
    damaged = 0
    for report in repair_file_log(
        url, args.topic, args.partition, dry_run=not args.yes
    ):
        print(report)
        damaged += not report.clean
    if not args.yes:
        if damaged:
            print(
                f"dry run: nothing was changed. {damaged} partition(s) would lose the "
                "data listed above; restore a copy instead if you have one, or run "
                "again with --yes to drop it"
            )
            return 1
        print("dry run: nothing was changed, and nothing would be dropped")
        return 0
    if damaged:
        print(
            f"{damaged} partition(s) repaired; the stream index rebuilds itself on "
            "the next open, and projections past the dropped offsets need a reset"
        )
    return 0
