"""A spy on ``os.mkdir`` and ``os.fsync`` (both still do their work) that checks
every directory a framework component made was made durable: its parent fsynced
after it was created and before the operation that depends on it returned."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


class DirectorySyncSpy:
    """Records, in order, each directory or file created and each fsync's path (the
    fd's path from ``/proc/self/fd``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        real_fsync, real_mkdir, real_open = os.fsync, os.mkdir, os.open

        def fsync(fd: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            real_fsync(fd)
            self.events.append(("fsync", path))

        def mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
            real_mkdir(path, mode, dir_fd=dir_fd)
            self.events.append(("create", os.path.realpath(path)))

        def open_(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
            existed = os.path.exists(path)
            fd = real_open(path, flags, mode, **kw)
            if flags & os.O_CREAT and not existed:
                self.events.append(("create", os.path.realpath(path)))
            return fd

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "open", open_)

    def mark(self) -> int:
        """The point reached: what happens later does not count for ``check``."""
        return len(self.events)

    def check_directories(self, under: Path, before: int) -> list[Path]:
        """Every directory below ``under`` was created here and its parent fsynced
        after that, before event ``before``. Returns the directories checked."""
        directories = sorted(
            Path(root) / name for root, names, _ in os.walk(under) for name in names
        )
        for directory in directories:
            self.check_synced(directory, before)
        return directories

    def check_synced(self, path: Path, before: int) -> None:
        """``path`` was created here and its parent fsynced after that, before event
        ``before``."""
        real = os.path.realpath(path)
        events = self.events[:before]
        created = [i for i, event in enumerate(events) if event == ("create", real)]
        assert created, f"{path} was not created by the code under test"
        parent = os.path.dirname(real)
        synced = [i for i, event in enumerate(events) if event == ("fsync", parent)]
        assert any(i > created[-1] for i in synced), (
            f"{parent} was not fsynced after {path.name} was created in it"
        )
