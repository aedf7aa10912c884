"""The command line: argument parsing and dispatch to the command groups."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from framework.cli.db import add_db_commands
from framework.cli.log import add_log_commands
from framework.cli.projections import EXIT_INTERRUPTED, add_projection_commands
from framework.cli.store import add_store_commands
from framework.errors import FrameworkError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m framework", description="Manage a framework application."
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="GROUP")
    add_db_commands(groups)
    add_log_commands(groups)
    add_projection_commands(groups)
    add_store_commands(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the process exit code (0 ok, 1 failed, 2 usage,
    130 interrupted by Ctrl-C; some commands say more in their help)."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except FrameworkError as exc:
        # Framework errors say what to do; a traceback would only bury that.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Commands that can say how far they got catch it themselves.
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
