"""``store`` commands for any store URL: ``store drop`` deletes a store."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from framework.application.settings import (
    STORE_URL_ENV,
    StoreNotFoundError,
    file_root,
)
from framework.errors import ConfigurationError
from framework.projections.backends.file_group import running_members

#: What a file store's folder holds; a folder with anything else is refused.
_FILE_STORE_ENTRIES = frozenset(
    {
        "log",
        "index",
        "groups",
        "read_models.sqlite",
        "read_models.sqlite-wal",
        "read_models.sqlite-shm",
        "read_models.sqlite-journal",
    }
)


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
    return drop_file_store(file_root(url), yes=args.yes)


def drop_file_store(root: Path, *, yes: bool) -> int:
    """Delete the folder of a file store, if it looks like one (a log with
    topics, and nothing a store does not make) and no runner is using it.
    Without ``yes``, say what would be deleted and return 1."""
    if not (root / "log" / "topics").is_dir():
        raise StoreNotFoundError(
            str(root),
            "the folder holds no log" if root.is_dir() else "there is no such folder",
            "check --url; nothing deleted",
        )
    foreign = sorted(
        p.name for p in root.iterdir() if p.name not in _FILE_STORE_ENTRIES
    )
    if foreign:
        raise ConfigurationError(
            f"{root} holds more than a store ({', '.join(foreign)}); nothing "
            "deleted: move those out, or delete the folder yourself"
        )
    busy = _live_members(root / "groups")
    if busy:
        raise ConfigurationError(
            f"{root} is in use by running projection members ({', '.join(busy)}); "
            "stop them (`projections run`), then drop it again"
        )
    topics = sorted(p.stem for p in (root / "log" / "topics").glob("*.json"))
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    what = f"{root} ({size:,} bytes: topics {', '.join(topics) or 'none'}"
    what += ", read models)" if (root / "read_models.sqlite").exists() else ")"
    if not yes:
        print(f"would delete {what}; add --yes to delete it")
        return 1
    shutil.rmtree(root)
    print(f"deleted {what}")
    return 0


def _live_members(groups: Path) -> list[str]:
    """``group/member`` for every running member of the groups under ``groups``."""
    if not groups.is_dir():
        return []
    return [
        f"{group.name}/{member}"
        for group in sorted(groups.iterdir())
        for member in running_members(group)
    ]
