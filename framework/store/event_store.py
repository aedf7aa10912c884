"""The event store: streams of versioned events over any partitioned ``Log``."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path

from framework.errors import ConcurrencyError, EndOffsetMismatchError
from framework.log.config import TopicConfig
from framework.log.partitioner import partition_for, utf8_key
from framework.log.ports import Log
from framework.log.records import PartitionBatch, Record
from framework.store.events import Appended, NewEvent, StoredEvent, least_first_stamp
from framework.store.index import PartitionIndex
from framework.store.limits import check_append, check_appends, check_versions
from framework.store.ports import Sequencer, StreamAppend
from framework.store.position import Position
from framework.store.records import (
    event_id_of,
    stamp_of,
    to_record,
    to_records,
    to_stored_all,
)

logger = logging.getLogger("framework.store")

#: Stream ids whose partition is remembered before the memo starts over.
_PARTITION_CACHE_SIZE = 65_536

#: Records read at a time while iterating a partition. Small enough that a chunk's
#: records and events are freed before the garbage collector walks them again and
#: again (5,000 made a file replay 10-15% slower); large enough that reads stay few.
_CHUNK = 500

#: The topic that holds every aggregate's events.
EVENTS_TOPIC = "events"

#: Builds a named tuple from its fields given in the class's order, without the
#: Python frame of the class's generated ``__new__``: about 105 ns against 375 for
#: the ``Appended`` that every save returns, its one use here.
_new_tuple = tuple.__new__


def events_topic(
    log: Log, topic: str, config: TopicConfig | None, *, default_partitions: int
) -> TopicConfig:
    """The events topic's configuration, creating the topic if it is missing.

    An explicit ``config`` must match an existing topic's partition count
    (``TopicConfigConflictError`` otherwise). Without one, an existing topic is
    taken as it is, so that a store created under another default still opens.
    """
    if config is None:
        if topic in log.topics():
            return log.topic_config(topic)
        config = TopicConfig(partitions=default_partitions)
    return log.ensure_topic(topic, config)


def _learn_written(
    base: int,
    *,
    index: PartitionIndex,
    turn: threading.Lock,
    stream_id: str,
    first_version: int,
    count: int,
    last_stamp: int,
    written: list[int],
) -> None:
    """An event-store append's ``on_written``: the index learns the batch (unless a
    load caught up with it first), then the next appender may check."""
    with index.lock:
        if index.next_offset == base:
            index.add_appended(
                stream_id, first_version, base, base + count - 1, last_stamp
            )
    written.append(base)
    turn.release()


#: One stream's part of a planned multi-stream append: (its index among the
#: appends, first version, first stamp, records).
_Planned = tuple[int, int, int, list[Record]]


class LogEventStore:
    """The event store over any ``Log``; a stream lives in the partition of its id.

    Thread-safe. Across processes it stays correct because every append is
    conditional on the partition's end offset: a writer that lost a race catches up
    with the log and checks its expected version again.
    """

    def __init__(
        self,
        log: Log,
        *,
        topic: str = EVENTS_TOPIC,
        config: TopicConfig | None = None,
        index_dir: Path | None = None,
        sequencer: Sequencer | None = None,
    ) -> None:
        """``index_dir``, if given, keeps stream-index snapshots so that reopening a
        large log catches up from the last snapshot instead of the first record.
        ``sequencer``, if given, is asked for a number under each append's turn,
        and the append is stamped above it: the stamps then order every event of
        the store, in all partitions, as the sequencer handed numbers out (a
        global order, at the price of a round trip to it per append)."""
        self._sequencer = sequencer
        self.log = log
        self.topic = topic
        # One partition by default: on files, appends then go to one file, whose
        # fsyncs cost less than spreading over several, every writer thread shares
        # one group commit, and all events have one order. Several partitions pay
        # off where writers run in several processes or projections in a group.
        self.config = events_topic(log, topic, config, default_partitions=1)
        self.partitions = self.config.partitions
        self._partition_cache: dict[str, int] = {}
        #: ``append_streams`` is one batch, or one atomic multi-partition append.
        self.atomic_multi_stream = True
        self._indexes = [
            PartitionIndex(
                topic,
                p,
                None if index_dir is None else index_dir / f"{topic}-{p}.streams",
            )
            for p in range(self.partitions)
        ]
        for index in self._indexes:
            index.restore(log)
        #: Per partition: held by this process's appender from its version check
        #: until its batch is written and indexed.
        self._append_turns = [threading.Lock() for _ in range(self.partitions)]

    def partition_of(self, stream_id: str) -> int:
        return self._partition(stream_id, utf8_key(stream_id))

    def _partition(self, stream_id: str, key: bytes) -> int:
        if self.partitions == 1:  # the embedded default: nothing to hash
            return 0
        partition = self._partition_cache.get(stream_id)
        if partition is None:
            partition = self._route(stream_id, key)
        return partition

    def _route(self, stream_id: str, key: bytes) -> int:
        """The partition of a stream not in the memo; ``key`` is its id as UTF-8."""
        # murmur2 in Python costs microseconds; the same aggregates come back.
        if len(self._partition_cache) >= _PARTITION_CACHE_SIZE:
            self._partition_cache.clear()
        partition = self._partition_cache[stream_id] = partition_for(
            key, self.partitions
        )
        return partition

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
    ) -> Appended:
        """Append ``events`` as versions ``expected_version + 1 ...``, atomically.

        ``expected_version`` is the version the caller last saw (0: the stream must
        not exist yet); ``None`` appends whatever the version is. Raises
        ``ConcurrencyError`` if the stream is elsewhere, writing nothing.

        If the same event ids are already stored at those versions (a retried
        append), nothing is written and the original positions come back with
        ``already_stored=True``. With ``expected_version=None`` a retry is recognised
        only while the events are still the last ones of the stream.
        """
        check_append(stream_id, events, expected_version)
        key = utf8_key(stream_id)
        partition = self._partition(stream_id, key)
        index = self._indexes[partition]
        # The index is trusted without reading the log first: the append is
        # conditional on the end offset the index has reached, so a stale index
        # fails it and is caught up. Only a decision against the caller (a
        # conflict) is taken on an index caught up just before.
        #
        # This process's appenders to the partition take turns from the version
        # check until the batch is written and the index has learnt it
        # (``on_written``): so they never race each other on the end offset, and
        # still share fsyncs, which come after the write. The index lock itself is
        # held only briefly, so that loads never wait for a writer that waits for
        # another process's file lock.
        turn = self._append_turns[partition]
        fresh = False
        while True:
            turn.acquire()
            written: list[int] = []
            try:
                with index.lock:
                    actual = index.version(stream_id)
                    if (
                        expected_version is not None and actual != expected_version
                    ) or (expected_version is None and actual >= len(events)):
                        if not fresh:
                            index.catch_up(self.log)
                            fresh = True
                            actual = index.version(stream_id)
                        found = self._earlier_or_conflict(
                            index, stream_id, events, expected_version, actual
                        )
                        if found is not None:
                            return found
                    end = index.next_offset
                    # Above the causes the caller gives and the partition's last.
                    stamp = max(least_first_stamp(events), index.last_stamp + 1)
                if self._sequencer is not None:
                    stamp = max(stamp, self._sequencer.next_stamp())
                if len(events) == 1:  # the usual save, without a comprehension
                    records = [to_record(key, actual + 1, events[0], stamp)]
                else:
                    records = to_records(key, actual + 1, events, stamp)
                on_written = functools.partial(
                    _learn_written,
                    index=index,
                    turn=turn,
                    stream_id=stream_id,
                    first_version=actual + 1,
                    count=len(records),
                    last_stamp=stamp + len(records) - 1,
                    written=written,
                )
                try:
                    result = self.log.append(
                        self.topic,
                        partition,
                        records,
                        expected_end_offset=end,
                        on_written=on_written,
                    )
                except EndOffsetMismatchError:
                    # Another process got in first; catch up and decide again.
                    with index.lock:
                        index.catch_up(self.log)
                    fresh = True
                    continue
            finally:
                if not written:
                    turn.release()
            if index.snapshot_due():
                with index.lock:
                    index.save_if_due()
            # In Appended's field order (_new_tuple).
            return _new_tuple(
                Appended,
                (
                    stream_id,
                    partition,
                    result.base_offset,
                    result.last_offset,
                    actual + 1,
                    actual + len(events),
                    False,
                    stamp,
                ),
            )

    def _earlier_or_conflict(
        self,
        index: PartitionIndex,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: int | None,
        actual: int,
    ) -> Appended | None:
        """Decided on the caught-up index, once the stream looked elsewhere than
        ``expected`` says: ``None`` if the append may go ahead, the earlier append of
        these very events if this is a retry of it; raises ``ConcurrencyError`` if
        neither."""
        if expected is None:
            if actual < len(events):
                return None
            return self._already_stored(index, stream_id, events, actual)
        if actual == expected:
            return None
        return self._retried_or_conflict(index, stream_id, events, expected, actual)

    def append_streams(self, appends: Sequence[StreamAppend]) -> list[Appended]:
        """Append to several streams atomically: every stream's events become
        visible together, or none do, also through a crash. The streams of one
        partition go in one batch, and several partitions in one
        ``Log.append_atomic``; every expected version is checked first, under the
        partitions' turns, so a ``ConcurrencyError`` writes nothing.

        A stream whose events are already stored at those versions (a retry) is
        reported ``already_stored``, and the others are written.
        """
        check_appends([(a.stream_id, a.events, a.expected_version) for a in appends])
        if len(appends) == 1:
            a = appends[0]
            return [self.append(a.stream_id, a.events, a.expected_version)]
        keys = [utf8_key(a.stream_id) for a in appends]
        partitions = [
            self._partition(a.stream_id, k) for a, k in zip(appends, keys, strict=True)
        ]
        involved = sorted(set(partitions))
        turns = [self._append_turns[p] for p in involved]
        fresh = False
        while True:
            # In partition order, as every multi-stream append takes them: two
            # never wait for each other in a circle.
            for turn in turns:
                turn.acquire()
            try:
                plan = self._plan(appends, keys, partitions, fresh=fresh)
                if plan is None:
                    fresh = True
                    continue
                results, records, ends = plan
                if not records:
                    return [r for r in results if r is not None]
                try:
                    written = self._write_plan(records, ends)
                except EndOffsetMismatchError:
                    # Another process got in first: catch up and decide again.
                    for p in involved:
                        index = self._indexes[p]
                        with index.lock:
                            index.catch_up(self.log)
                    fresh = True
                    continue
                return self._learn_plan(appends, results, written, records)
            finally:
                for turn in reversed(turns):
                    turn.release()

    def _plan(
        self,
        appends: Sequence[StreamAppend],
        keys: list[bytes],
        partitions: list[int],
        *,
        fresh: bool,
    ) -> (
        tuple[
            list[Appended | None],
            dict[int, list[_Planned]],
            dict[int, int],
        ]
        | None
    ):
        """The records to write per partition, each stream's (append index, first
        version, records), with the partitions' expected ends; the appends
        already stored are answered in the first list. ``None`` if an index was
        stale and has been caught up: plan again."""
        results: list[Appended | None] = [None] * len(appends)
        records: dict[int, list[_Planned]] = {}
        ends: dict[int, int] = {}
        #: The next stamp per partition: above its last, and above each floor.
        stamps: dict[int, int] = {}
        #: Versions after the streams planned so far (a stream may come twice).
        planned: dict[str, int] = {}
        for i, (a, partition) in enumerate(zip(appends, partitions, strict=True)):
            index = self._indexes[partition]
            with index.lock:
                if partition not in ends:
                    ends[partition] = index.next_offset
                    stamps[partition] = index.last_stamp + 1
                actual = planned.get(a.stream_id)
                if actual is None:
                    actual = index.version(a.stream_id)
                expected, events = a.expected_version, a.events
                if (expected is not None and actual != expected) or (
                    expected is None and actual >= len(events)
                ):
                    if not fresh and a.stream_id not in planned:
                        for p in set(partitions):
                            other = self._indexes[p]
                            if other is not index:
                                with other.lock:
                                    other.catch_up(self.log)
                        index.catch_up(self.log)
                        return None
                    found = self._earlier_or_conflict(
                        index, a.stream_id, events, expected, actual
                    )
                    if found is not None:
                        results[i] = found
                        continue
            key = keys[i]
            stamp = max(least_first_stamp(events), stamps[partition])
            if self._sequencer is not None:
                stamp = max(stamp, self._sequencer.next_stamp())
            stamps[partition] = stamp + len(events)
            stream_records = (
                [to_record(key, actual + 1, events[0], stamp)]
                if len(events) == 1
                else to_records(key, actual + 1, events, stamp)
            )
            records.setdefault(partition, []).append(
                (i, actual + 1, stamp, stream_records)
            )
            planned[a.stream_id] = actual + len(events)
        return results, records, ends

    def _write_plan(
        self,
        records: dict[int, list[_Planned]],
        ends: dict[int, int],
    ) -> dict[int, int]:
        """Write the planned records, conditional on the ends: one batch for one
        partition, one atomic append for several. Returns each partition's base
        offset."""
        batches = {
            p: [r for _, _, _, stream in planned for r in stream]
            for p, planned in records.items()
        }
        if len(batches) == 1:
            ((partition, batch),) = batches.items()
            result = self.log.append(
                self.topic, partition, batch, expected_end_offset=ends[partition]
            )
            return {partition: result.base_offset}
        written = self.log.append_atomic(
            self.topic,
            [PartitionBatch(p, batch, ends[p]) for p, batch in batches.items()],
        )
        return {r.partition: r.base_offset for r in written}

    def _learn_plan(
        self,
        appends: Sequence[StreamAppend],
        results: list[Appended | None],
        written: dict[int, int],
        records: dict[int, list[_Planned]],
    ) -> list[Appended]:
        """The indexes learn what was written (unless a load caught up with it
        first); every append gets its ``Appended``."""
        for partition, planned in records.items():
            index = self._indexes[partition]
            offset = written[partition]
            for i, first_version, stamp, stream in planned:
                last = offset + len(stream) - 1
                with index.lock:
                    if index.next_offset == offset:
                        index.add_appended(
                            appends[i].stream_id,
                            first_version,
                            offset,
                            last,
                            stamp + len(stream) - 1,
                        )
                # In Appended's field order (_new_tuple).
                results[i] = _new_tuple(
                    Appended,
                    (
                        appends[i].stream_id,
                        partition,
                        offset,
                        last,
                        first_version,
                        first_version + len(stream) - 1,
                        False,
                        stamp,
                    ),
                )
                offset = last + 1
        for partition in records:
            index = self._indexes[partition]
            if index.snapshot_due():
                with index.lock:
                    index.save_if_due()
        return [r for r in results if r is not None]

    def _retried_or_conflict(
        self,
        index: PartitionIndex,
        stream_id: str,
        events: Sequence[NewEvent],
        expected: int,
        actual: int,
    ) -> Appended:
        if actual >= expected + len(events):
            found = self._already_stored(
                index, stream_id, events, expected + len(events)
            )
            if found is not None:
                return found
        raise ConcurrencyError(stream_id, expected, actual)

    def _already_stored(
        self,
        index: PartitionIndex,
        stream_id: str,
        events: Sequence[NewEvent],
        last_version: int,
    ) -> Appended | None:
        """The earlier append of these very events up to ``last_version``, if any."""
        first_version = last_version - len(events) + 1
        offsets = index.streams[stream_id][first_version - 1 : last_version]
        stored = self.log.read_at(self.topic, index.partition, offsets)
        if [event_id_of(r) for r in stored] != [e.event_id for e in events]:
            return None
        logger.debug(
            "append to %r: versions %d..%d already stored, nothing written",
            stream_id,
            first_version,
            last_version,
        )
        return Appended(
            stream_id=stream_id,
            partition=index.partition,
            first_offset=offsets[0],
            last_offset=offsets[-1],
            first_version=first_version,
            last_version=last_version,
            already_stored=True,
            first_stamp=stamp_of(stored[0]),
        )

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version: 0 if it has no events."""
        index = self._indexes[self.partition_of(stream_id)]
        with index.lock:
            index.catch_up(self.log)
            return index.version(stream_id)

    def read_stream(
        self, stream_id: str, *, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredEvent]:
        """The stream's events with versions ``from_version..to_version``, in order.

        Costs O(events returned): only the stream's own offsets are read.
        """
        check_versions(from_version, to_version)
        partition = self.partition_of(stream_id)
        index = self._indexes[partition]
        with index.lock:
            index.catch_up(self.log)
            all_offsets = index.streams.get(stream_id)
            if all_offsets is None:
                return []
            offsets = all_offsets[from_version - 1 : to_version]
        return to_stored_all(self.log.read_at(self.topic, partition, offsets))

    def read_stream_data(
        self, stream_id: str, *, to_version: int | None = None
    ) -> list[tuple[str, int, bytes, int]]:
        """(name, schema version, data, stamp) of versions ``1..to_version``, in
        order."""
        check_versions(1, to_version)
        return [
            (e.name, e.version, e.data, e.stamp)
            for e in self.read_stream(stream_id, to_version=to_version)
        ]

    def read_partition(
        self, partition: int, from_offset: int = 0, max_events: int = 1000
    ) -> list[StoredEvent]:
        """Events of one partition from ``from_offset``, in offset order."""
        records = self.log.read(self.topic, partition, from_offset, max_events)
        events = to_stored_all(records)
        while records and not events:
            # Only void records (an aborted transaction's): read on past them.
            records = self.log.read(
                self.topic, partition, records[-1].offset + 1, max_events
            )
            events = to_stored_all(records)
        return events

    def iter_partition(
        self, partition: int, from_offset: int = 0, chunk: int = _CHUNK
    ) -> Iterator[StoredEvent]:
        """Every event of a partition from ``from_offset`` up to its end at the time,
        read ``chunk`` at a time as the iterator reaches them."""
        # Chained lists rather than a generator yielding each event: the per-event
        # step stays in C.
        return chain.from_iterable(self._chunks(partition, from_offset, chunk))

    def _chunks(
        self, partition: int, offset: int, chunk: int
    ) -> Iterator[list[StoredEvent]]:
        while True:
            records = self.log.read(self.topic, partition, offset, chunk)
            if not records:
                return
            offset = records[-1].offset + 1
            events = to_stored_all(records)
            # Dropped before the events go out: the fewer objects alive, the less
            # each garbage-collector pass has to walk.
            del records
            yield events

    def end_position(self) -> Position:
        """The last offset of every non-empty partition."""
        ends = self.log.end_offsets(self.topic)
        return Position({p: end - 1 for p, end in ends.items() if end > 0})

    def close(self) -> None:
        """Save the stream-index snapshots (if kept; a failure to is logged, see
        ``PartitionIndex.save_if_due``) and close the log and the sequencer."""
        try:
            for index in self._indexes:
                with index.lock:
                    index.save_if_due(threshold=1)
        finally:
            try:
                self.log.close()
            finally:
                if self._sequencer is not None:
                    self._sequencer.close()
