"""The stream index: where each stream's events sit in its partition.

Loading a stream reads only its own offsets, so it costs O(events in the stream). The
index follows the log: before deciding anything it catches up with whatever other
writers (threads or processes) appended since it last looked.
"""

from __future__ import annotations

import logging
import threading
from array import array
from pathlib import Path

from framework.errors import CorruptLogError, LogError
from framework.log.ports import Log
from framework.log.records import is_void
from framework.store import index_snapshot
from framework.store.index_snapshot import Streams
from framework.store.records import stamp_of, stream_version_of

logger = logging.getLogger("framework.store")

#: Records fetched per read while catching up.
CATCH_UP_CHUNK = 10_000
#: Records indexed between snapshots: bounds what a reopen must scan.
SNAPSHOT_EVERY = 100_000


class PartitionIndex:
    """Stream id -> offsets (version ``i + 1`` at ``offsets[i]``) for one partition."""

    __slots__ = (
        "last_stamp",
        "lock",
        "next_offset",
        "partition",
        "snapshot_path",
        "streams",
        "topic",
        "unsaved",
    )

    def __init__(
        self, topic: str, partition: int, snapshot_path: Path | None = None
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.streams: dict[str, array[int]] = {}
        #: The first offset not yet indexed.
        self.next_offset = 0
        #: The Lamport stamp of the last event indexed (stamps grow along a
        #: partition, so it is the largest): the next append stamps above it.
        self.last_stamp = 0
        #: Guards ``streams`` and ``next_offset``; never held across a log append.
        self.lock = threading.Lock()
        self.snapshot_path = snapshot_path
        #: Records indexed since the snapshot was last written.
        self.unsaved = 0

    def restore(self, log: Log) -> None:
        """Start from the snapshot if there is one that matches the log, and catch
        up with the log after it. A snapshot is a cache: one that does not fit the
        log is dropped (with a warning) and the index rebuilt from the log, so it
        can never keep a store from opening."""
        if self.snapshot_path is None:
            return
        found = index_snapshot.read(self.snapshot_path)
        if found is None:
            return
        streams, next_offset = found
        if next_offset and not self._matches(log, streams, next_offset):
            self._drop_snapshot("does not match the log")
            return
        self.streams = streams
        self.next_offset = next_offset
        try:
            with self.lock:
                self.catch_up(log)
                if not self.last_stamp and self.next_offset:
                    self._learn_last_stamp(log)
        except CorruptLogError as exc:
            # The records after the snapshot contradict it: start from the log.
            self.streams, self.next_offset, self.unsaved = {}, 0, 0
            self._drop_snapshot(f"contradicts the log after it ({exc})")

    def _drop_snapshot(self, why: str) -> None:
        logger.warning(
            "the stream-index snapshot %s %s; rebuilding the index from the log",
            self.snapshot_path,
            why,
        )

    def _matches(self, log: Log, streams: Streams, next_offset: int) -> bool:
        try:
            if next_offset > log.end_offset(self.topic, self.partition):
                return False
            last = log.read_at(self.topic, self.partition, [next_offset - 1])[0]
            stream_id, version = stream_version_of(last)
            offsets = streams.get(stream_id)
            return offsets is not None and offsets[version - 1] == next_offset - 1
        except (LogError, IndexError):
            # Retention removed that record, or it is not an event: the index
            # is then rebuilt, and the log itself answers for its state.
            return False

    def snapshot_due(self) -> bool:
        """Whether enough records were indexed since the last snapshot to write
        one (read without the lock: a hint, checked again under it)."""
        return self.snapshot_path is not None and self.unsaved >= SNAPSHOT_EVERY

    def save_if_due(self, threshold: int | None = None) -> None:
        """Write the snapshot once ``threshold`` records (``SNAPSHOT_EVERY`` by
        default) were indexed since the last one. Call with ``lock`` held.

        Never raises: the snapshot only shortens the next opening, so a failure
        to write it (a full disk) is logged and tried again after as many
        records more, and whatever asked for it goes on.
        """
        due = SNAPSHOT_EVERY if threshold is None else threshold
        if self.snapshot_path is None or self.unsaved < due:
            return
        self.unsaved = 0
        try:
            index_snapshot.write(self.snapshot_path, self.streams, self.next_offset)
        except (OSError, ValueError) as exc:
            logger.warning(
                "could not write the stream-index snapshot %s (%s); the index is "
                "kept in memory, and opening the store scans the log from the last "
                "snapshot written",
                self.snapshot_path,
                exc,
            )

    def catch_up(self, log: Log) -> None:
        """Index every record appended since the last call. Call with ``lock`` held."""
        start = log.start_offset(self.topic, self.partition)
        self.next_offset = max(self.next_offset, start)
        while True:
            records = log.read(
                self.topic, self.partition, self.next_offset, CATCH_UP_CHUNK
            )
            if not records:
                return
            last = None
            for record in records:
                if record.key is None and is_void(record):
                    continue  # an offset of a transaction that never committed
                stream_id, version = stream_version_of(record)
                self.add(stream_id, version, record.offset)
                last = record
            if last is not None:
                self.last_stamp = stamp_of(last)
            self.next_offset = records[-1].offset + 1
            self.save_if_due()

    def _learn_last_stamp(self, log: Log) -> None:
        """Read the stamp of the last event before ``next_offset`` (the snapshot
        does not keep it)."""
        end = self.next_offset
        while end > log.start_offset(self.topic, self.partition):
            start = max(end - 64, log.start_offset(self.topic, self.partition))
            records = log.read(self.topic, self.partition, start, end - start)
            for record in reversed(records):
                if not is_void(record):
                    self.last_stamp = stamp_of(record)
                    return
            end = start

    def add_appended(
        self,
        stream_id: str,
        first_version: int,
        first_offset: int,
        last_offset: int,
        last_stamp: int,
    ) -> None:
        """Index the events of one append, versions ``first_version...`` at offsets
        ``first_offset..last_offset``, the next offsets to index. Call with ``lock``
        held."""
        offsets = self.streams.get(stream_id)
        if offsets is None:
            offsets = self.streams[stream_id] = array("q")
        if first_version != len(offsets) + 1:
            raise self._out_of_order(stream_id, first_version, first_offset, offsets)
        if first_offset == last_offset:  # one event: the usual save
            offsets.append(first_offset)
        else:
            offsets.extend(range(first_offset, last_offset + 1))
        # The snapshot is written by the appender after its append returns
        # (``snapshot_due``), never here: this runs before the batch's fsync.
        self.unsaved += last_offset + 1 - first_offset
        self.next_offset = last_offset + 1
        self.last_stamp = last_stamp

    def add(self, stream_id: str, version: int, offset: int) -> None:
        offsets = self.streams.get(stream_id)
        if offsets is None:
            offsets = self.streams[stream_id] = array("q")
        if version != len(offsets) + 1:
            raise self._out_of_order(stream_id, version, offset, offsets)
        offsets.append(offset)
        self.unsaved += 1

    def _out_of_order(
        self, stream_id: str, version: int, offset: int, offsets: array[int]
    ) -> CorruptLogError:
        return CorruptLogError(
            f"{self.topic}/{self.partition} offset {offset} holds version "
            f"{version} of stream {stream_id!r}, which should come after version "
            f"{len(offsets)}; the partition was written by something other than "
            "the event store"
        )

    def version(self, stream_id: str) -> int:
        offsets = self.streams.get(stream_id)
        return 0 if offsets is None else len(offsets)
