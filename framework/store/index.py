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

from framework.errors import CorruptLogError
from framework.log.ports import Log
from framework.store import index_snapshot
from framework.store.index_snapshot import Streams
from framework.store.records import stream_version_of

logger = logging.getLogger("framework.store")

#: Records fetched per read while catching up.
CATCH_UP_CHUNK = 10_000
#: Records indexed between snapshots: bounds what a reopen must scan.
SNAPSHOT_EVERY = 100_000


class PartitionIndex:
    """Stream id -> offsets (version ``i + 1`` at ``offsets[i]``) for one partition."""

    __slots__ = (
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
        #: Guards ``streams`` and ``next_offset``; never held across a log append.
        self.lock = threading.Lock()
        self.snapshot_path = snapshot_path
        #: Records indexed since the snapshot was last written.
        self.unsaved = 0

    def restore(self, log: Log) -> None:
        """Start from the snapshot if there is one that matches the log."""
        if self.snapshot_path is None:
            return
        found = index_snapshot.read(self.snapshot_path)
        if found is None:
            return
        streams, next_offset = found
        if next_offset and not self._matches(log, streams, next_offset):
            logger.warning(
                "the stream-index snapshot %s does not match the log; rebuilding",
                self.snapshot_path,
            )
            return
        self.streams = streams
        self.next_offset = next_offset

    def _matches(self, log: Log, streams: Streams, next_offset: int) -> bool:
        if next_offset > log.end_offset(self.topic, self.partition):
            return False
        last = log.read_at(self.topic, self.partition, [next_offset - 1])[0]
        stream_id, version = stream_version_of(last)
        offsets = streams.get(stream_id)
        return offsets is not None and offsets[version - 1] == next_offset - 1

    def save_if_due(self, threshold: int = SNAPSHOT_EVERY) -> None:
        """Write the snapshot once enough records were indexed since the last one."""
        if self.snapshot_path is not None and self.unsaved >= threshold:
            index_snapshot.write(self.snapshot_path, self.streams, self.next_offset)
            self.unsaved = 0

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
            for record in records:
                stream_id, version = stream_version_of(record)
                self.add(stream_id, version, record.offset)
            self.next_offset = records[-1].offset + 1
            self.save_if_due()

    def add_appended(
        self, stream_id: str, first_version: int, first_offset: int, last_offset: int
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
        self.unsaved += last_offset + 1 - first_offset
        self.next_offset = last_offset + 1
        self.save_if_due()

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
