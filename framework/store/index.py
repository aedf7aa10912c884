"""The stream index: where each stream's events sit in its partition.

Loading a stream reads only its own offsets, so it costs O(events in the stream). The
index follows the log: before deciding anything it catches up with whatever other
writers (threads or processes) appended since it last looked.
"""

from __future__ import annotations

import threading
from array import array

from framework.errors import CorruptLogError
from framework.log.ports import Log
from framework.store.records import stream_version_of

#: Records fetched per read while catching up.
CATCH_UP_CHUNK = 10_000


class PartitionIndex:
    """Stream id -> offsets (version ``i + 1`` at ``offsets[i]``) for one partition."""

    __slots__ = ("lock", "next_offset", "partition", "streams", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.streams: dict[str, array[int]] = {}
        #: The first offset not yet indexed.
        self.next_offset = 0
        #: Guards ``streams`` and ``next_offset``; never held across a log append.
        self.lock = threading.Lock()

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

    def add(self, stream_id: str, version: int, offset: int) -> None:
        offsets = self.streams.get(stream_id)
        if offsets is None:
            offsets = self.streams[stream_id] = array("q")
        if version != len(offsets) + 1:
            raise CorruptLogError(
                f"{self.topic}/{self.partition} offset {offset} holds version "
                f"{version} of stream {stream_id!r}, which should come after version "
                f"{len(offsets)}; the partition was written by something other than "
                "the event store"
            )
        offsets.append(offset)

    def version(self, stream_id: str) -> int:
        offsets = self.streams.get(stream_id)
        return 0 if offsets is None else len(offsets)
