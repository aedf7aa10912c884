"""Durable directories: making folders and syncing their entries, shared by every
subsystem that keeps files (the segment log, the stream-index snapshots, SQLite read
models, file consumer groups)."""

from __future__ import annotations

import os
from pathlib import Path


def sync_dir(path: Path) -> None:
    """Make the directory's entries (created, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(*paths: Path) -> None:
    """Create each directory of ``paths`` and its missing parents, durably: the
    folder holding each new directory is fsynced before this returns (once, however
    many were made in it), so nothing stored inside can outlive its directory's
    entry in a power failure. A directory that already exists costs one ``stat``.

    A directory another process created meanwhile counts as new: its creator may
    not have synced its entry yet.
    """
    parents: dict[Path, None] = {}  # ordered, for one fsync each
    for path in paths:
        missing: list[Path] = []
        folder = Path(path)
        while not folder.is_dir():
            missing.append(folder)
            if folder.parent == folder:
                break
            folder = folder.parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, 0o755)
            except FileExistsError:
                if not directory.is_dir():
                    raise
            parents[directory.parent] = None
    for parent in parents:
        sync_dir(parent)
