"""Consumer groups on the embedded store: members of one projection share its
partitions through file locks in a folder, one partition to one member.

A member holds an exclusive ``flock`` on its own member file while it lives and on
each partition file it owns. The kernel drops a dead process's locks at once, so its
partitions are free to take as soon as it dies: the "lease" of a file group is the
process's life. Every member computes the same target assignment from the sorted
live members and moves only what must move (cooperative rebalancing): it releases
partitions that are no longer its own and takes the free ones that are.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from pathlib import Path

from framework.files import make_dirs
from framework.projections.assignment import target_assignment

logger = logging.getLogger("framework.projections")


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on ``path``, or ``None``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def running_members(directory: Path) -> list[str]:
    """The members of the group coordinated in ``directory`` that are running
    (they hold their member lock), looked up without changing anything."""
    running = []
    for path in sorted((directory / "members").glob("*.member")):
        fd = _try_lock(path)
        if fd is None:
            running.append(path.stem)
        else:
            _unlock(fd)
    return running


class FileGroup:
    """One member of a projection's consumer group, coordinated in ``directory``."""

    def __init__(
        self, directory: Path, partitions: int, *, member_id: str | None = None
    ) -> None:
        self.directory = Path(directory)
        self.partitions = partitions
        self.member_id = member_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._members = self.directory / "members"
        self._locks = self.directory / "partitions"
        self._member_fd: int | None = None
        self._owned: dict[int, int] = {}

    def join(self) -> None:
        make_dirs(self._members, self._locks)
        path = self._members / f"{self.member_id}.member"
        busy = 0
        for _ in range(200):
            fd = _try_lock(path)
            if fd is None:
                # Another member may be checking whether this file is a dead
                # member's (it holds the lock for a moment); a live member with
                # our id holds it for good.
                busy += 1
                if busy > 50:
                    raise RuntimeError(f"member id {self.member_id!r} is in use")
                time.sleep(0.01)
                continue
            # Another member may have taken our new, not yet locked file for a dead
            # member's and removed it; then we hold a lock nobody can see: retry.
            try:
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    self._member_fd = fd
                    return
            except FileNotFoundError:
                pass
            _unlock(fd)
        raise RuntimeError(f"could not register member {self.member_id!r}")

    def live_members(self) -> list[str]:
        """Members holding their member lock; stale files of dead ones are removed."""
        live = [self.member_id]
        for path in self._members.glob("*.member"):
            member = path.stem
            if member == self.member_id:
                continue
            fd = _try_lock(path)
            if fd is None:
                live.append(member)
                continue
            # Nobody holds it: that member is gone. Remove the file while we hold
            # its lock so that no new member of that name races with us.
            try:
                path.unlink(missing_ok=True)
            finally:
                _unlock(fd)
        return sorted(live)

    @property
    def owned(self) -> list[int]:
        return sorted(self._owned)

    def rebalance(self) -> tuple[list[int], list[int]]:
        """Release what is no longer ours, take what is ours and free; return
        (taken, released). Partitions that stay put are not touched."""
        if self._member_fd is None:
            raise RuntimeError("join() the group first")
        mine = set(
            target_assignment(self.live_members(), self.partitions)[self.member_id]
        )
        released = [p for p in self._owned if p not in mine]
        for partition in released:
            _unlock(self._owned.pop(partition))
        taken = []
        for partition in sorted(mine - set(self._owned)):
            fd = _try_lock(self._locks / f"{partition}.lock")
            if fd is not None:
                self._owned[partition] = fd
                taken.append(partition)
        if taken or released:
            logger.info(
                "member %s took %s and released %s; owns %s",
                self.member_id,
                taken,
                released,
                self.owned,
            )
        return taken, sorted(released)

    def leave(self) -> None:
        for fd in self._owned.values():
            _unlock(fd)
        self._owned.clear()
        if self._member_fd is not None:
            _unlock(self._member_fd)
            self._member_fd = None
            (self._members / f"{self.member_id}.member").unlink(missing_ok=True)
