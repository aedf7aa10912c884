"""``store`` commands for any store URL: ``store drop`` deletes a store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from framework.application.admin import drop_file_store
from framework.application.settings import STORE_URL_ENV, file_root
from framework.errors import ConfigurationError


def add_store_commands(groups: Any) -> None:
    store = groups.add_parser("store", help="a whole store (file: or postgresql://)")
    commands = store.add_subparsers(dest="command", required=True, metavar="COMMAND")
    drop = commands.add_parser(
        "drop",
        help="delete the store with every event and read model in it (says what "
        "it would delete unless given --yes)",
    )
    drop.add_argument(
        "--url", help=f"file:PATH or postgresql://... (default: ${STORE_URL_ENV})"
    )
    drop.add_argument("--yes", action="store_true", help="really delete it")
    drop.set_defaults(run=run_drop)


def run_drop(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get(STORE_URL_ENV)
    if not url:
        raise ConfigurationError(
            f"no store: pass --url file:PATH or postgresql://... or set {STORE_URL_ENV}"
        )
    if url.split(":", 1)[0].lower() in ("postgresql", "postgres"):
        from framework.cli.db import drop_schema

        return drop_schema(url, yes=args.yes)
    if not url.startswith("file:"):
        raise ConfigurationError(
            f"store drop deletes file: and postgresql:// stores, not {url!r}"
        )
    return _drop_file_store(file_root(url), yes=args.yes)


def _drop_file_store(root: Path, *, yes: bool) -> int:
    """Delete the folder of a file store (``store drop``). Without ``yes``, say
    what would be deleted and return 1."""
    store = drop_file_store(root, dry_run=not yes)
    if not yes:
        print(f"would delete {store.what}; add --yes to delete it")
        return 1
    print(f"deleted {store.what}")
    return 0
