"""The recovery point of a partition: how far its data is known to be synced, as
Kafka's recovery-point checkpoint says it.

``<topic>-<n>/recovery-point`` names a segment, a byte position in it and the
offset there: every byte of the partition before that position was covered by a
completed fsync. Opening a partition then knows that damage below it cannot be a
write torn by a crash (``CorruptSegmentError``); only bytes past it may be cut off.

The file is a small fixed-size record with a CRC, rewritten in place and never
fsynced: a write lost in a power failure leaves an older, lower point, and a torn
one fails its CRC and counts as no point at all, both of which are merely
conservative. It only ever names bytes an fsync had already covered when it was
written, so no ordering between the two writes matters. Only a holder of the
partition's file lock writes it, and only to move it forward, except ``repair``,
which starts a new ``epoch`` when it cuts data off, so that a figure from a process
that loaded the partition before the repair is not written back over it.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

logger = logging.getLogger("framework.log")

FILE_NAME = "recovery-point"
_VERSION = 1
#: version, epoch, segment base offset, byte position, offset there; then a CRC-32.
_BODY = struct.Struct(">BQqqq")
_CRC = struct.Struct(">I")
SIZE = _BODY.size + _CRC.size
#: Seconds between writes of a partition's recovery point while appends go on.
INTERVAL = 1.0
#: ``synced_end`` of a segment sealed by a roll: all of it was synced.
ALL = 1 << 62
#: (segment base, position, offset) this process synced before its first fsync.
NOTHING_SYNCED = (-1, 0, 0)


class RecoveryPoint(NamedTuple):
    """Every byte of the partition before ``position`` in the segment at ``base`` (and
    all of every earlier segment) was synced; ``offset`` is the offset there."""

    base: int
    position: int
    offset: int
    epoch: int = 0

    @property
    def key(self) -> tuple[int, int]:
        """Orders points by how much they cover."""
        return self.base, self.position


def encode(point: RecoveryPoint) -> bytes:
    body = _BODY.pack(_VERSION, point.epoch, point.base, point.position, point.offset)
    return body + _CRC.pack(zlib.crc32(body))


def read(path: Path) -> tuple[RecoveryPoint | None, str | None]:
    """(the point, ``None``), or (``None``, why the file is unusable), or (``None``,
    ``None``) if there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    if len(data) != SIZE:
        return None, f"it holds {len(data)} bytes, not {SIZE}"
    body = data[: _BODY.size]
    (crc,) = _CRC.unpack_from(data, _BODY.size)
    if zlib.crc32(body) != crc:
        return None, "it fails its CRC check"
    version, epoch, base, position, offset = _BODY.unpack(body)
    if version != _VERSION:
        return None, f"it has unknown format {version}"
    if min(base, position, offset) < 0 or offset < base:
        return None, "its figures are impossible"
    return RecoveryPoint(base, position, offset, epoch), None


def write(path: Path, point: RecoveryPoint, *, durable: bool = False) -> None:
    """Write ``point`` over the file in place (creating it). Not fsynced unless
    ``durable``: only ``repair``, which moves the point back, needs that."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        data = encode(point)
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(f"short write of {path}")
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def synced_end(point: RecoveryPoint | None, base_offset: int) -> int:
    """Bytes of the segment at ``base_offset`` that ``point`` says were synced: all
    of them (``ALL``) if it names a later segment, as a roll syncs the segment it
    seals; none if it names an earlier one."""
    if point is None or point.base < base_offset:
        return 0
    if point.base > base_offset:
        return ALL
    return point.position


class Tracker:
    """What one process knows of a partition's recovery point, and how far its own
    fsyncs have gone beyond it (``synced``, written lazily by ``save``)."""

    __slots__ = ("due", "epoch", "path", "pending", "point", "synced")

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        #: The point as this process last read or wrote it.
        self.point: RecoveryPoint | None = None
        #: The point's epoch when the partition was loaded.
        self.epoch = 0
        #: (segment base, position, offset) that this process's fsyncs covered in
        #: its current view; ahead of ``point`` until saved.
        self.synced = NOTHING_SYNCED
        #: ``synced`` moved and is to be saved, not before ``due`` (monotonic).
        self.pending = False
        self.due = 0.0

    def read(self) -> RecoveryPoint | None:
        """The point on disk; ``None`` (logged) if it is unusable."""
        point, problem = read(self.path)
        if problem is not None:
            logger.warning(
                "ignoring the recovery point %s: %s. Nothing of the partition is "
                "known to be synced until it is written again, so damage at the end "
                "of the active segment would be cut off as a torn write",
                self.path,
                problem,
            )
        return point

    def loaded(self, point: RecoveryPoint | None) -> None:
        """The partition was (re)loaded with ``point`` read from disk."""
        epoch = point.epoch if point is not None else 0
        if epoch != self.epoch:
            # Repaired since: what this process synced may name bytes cut off.
            self.synced = NOTHING_SYNCED
        self.point, self.epoch = point, epoch

    def synced_end(self, base_offset: int, *, fresh: bool) -> int:
        """Bytes of the segment at ``base_offset`` known to be synced: by the point
        as this process knows it, by its own fsyncs, and, if ``fresh``, by the file
        now (a writer about to cut bytes off reads it: others move it on)."""
        end = max(
            synced_end(self.point, base_offset),
            synced_end(RecoveryPoint(*self.synced), base_offset),
        )
        if fresh:
            end = max(end, synced_end(self.read(), base_offset))
        return end

    def behind(self) -> bool:
        """Whether this process synced more than the point it last read or wrote."""
        known = (-1, 0) if self.point is None else self.point.key
        return self.synced[:2] > known

    def save(self) -> bool:
        """Write ``synced`` as the point unless the file already says as much. Call
        holding the partition's file lock. Only moves the point forward, to the
        larger of the file's and this process's (a process with an older view may
        hold a smaller figure). Returns whether the file is up to date; a failed
        write is logged, never raised: the point is a safeguard, not data."""
        self.pending = False  # before reading: a sync meanwhile sets it again
        synced = self.synced
        on_disk, _ = read(self.path)
        if on_disk is not None and on_disk.epoch != self.epoch:
            # A repair since this view was loaded may have cut what ``synced``
            # names: drop it (reloading the partition adopts the new epoch).
            if self.synced == synced:
                self.synced = NOTHING_SYNCED
            self.point = on_disk
            return True
        if on_disk is not None and on_disk.key >= synced[:2]:
            self.point = on_disk
            return True
        point = RecoveryPoint(*synced, epoch=self.epoch)
        try:
            write(self.path, point)
        except OSError as exc:
            self.pending = True
            logger.warning(
                "could not write the recovery point %s (%s); appends go on, but "
                "opening the partition will know less of what was synced. Free "
                "space on its file system",
                self.path,
                exc,
            )
            return False
        self.point = point
        return True
