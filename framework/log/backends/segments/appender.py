"""The append path of a partition: encoding a batch, and writing a commit group.

A group (``groupcommit``) is written under all three partition locks: caught up with
other processes first, each batch checked against its expected end offset, segments
rolled where due, and the batches written with one ``pwritev`` per segment touched.
The fsync that makes them durable follows, outside the locks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from framework.errors import EndOffsetMismatchError, LogError
from framework.log.backends.segments.batch import (
    COMPRESSION_NONE,
    EncodedBatch,
    encode_batch,
    encode_record,
)
from framework.log.backends.segments.fsutil import sync_data, sync_dir, write_all
from framework.log.backends.segments.groupcommit import Pending
from framework.log.backends.segments.partition import Partition
from framework.log.backends.segments.segment import Segment
from framework.log.records import Record

logger = logging.getLogger("framework.log")


def encode_for_append(
    records: Sequence[Record], now: int, part: Partition
) -> EncodedBatch:
    """The batch for an append; records without a timestamp get ``now``."""
    if len(records) == 1 and part.compression == COMPRESSION_NONE:  # the usual
        record = records[0]
        timestamp = record.timestamp
        return encode_record(
            now if timestamp is None else timestamp,
            record.key,
            record.value,
            record.headers,
        )
    entries = [
        (
            i,
            now if record.timestamp is None else record.timestamp,
            record.key,
            record.value,
            record.headers,
        )
        for i, record in enumerate(records)
    ]
    return encode_batch(
        entries,
        last_offset_delta=len(entries) - 1,
        compression=part.compression,
        compress=part.compress,
    )


def write_group(part: Partition, group: list[Pending]) -> bool:
    """Write the group's batches in order, setting each one's ``base`` (or
    ``error``); returns whether any was written. Raises ``LogLockTimeoutError`` if
    another process holds the partition too long."""
    with part.write_lock:
        if not part.file_lock.acquire(part.lock_timeout):
            raise part.lock_timeout_error()
        try:
            with part.state:
                part.ensure_loaded()
                part.follow(writer=True)
                if part.stale_indexes:
                    part.write_stale_indexes()
                if len(group) == 1:
                    written = _write_alone(part, group[0])
                else:
                    written = _write_locked(part, group)
        finally:
            part.file_lock.release()
    if written and part.interval:
        part.flusher.watch(part)
    return written


def _write_alone(part: Partition, pending: Pending) -> bool:
    """``_write_locked`` for a group of one append, the usual case: the same steps
    without the lists that keep several batches and segments apart."""
    segment = part.segments[-1]
    encoded = pending.encoded
    base = segment.next_offset
    if pending.expected is not None and pending.expected != base:
        pending.error = EndOffsetMismatchError(
            part.topic, part.number, pending.expected, base
        )
        return False
    if _should_roll(part, segment, encoded):
        segment = _roll(part, segment)
    position = segment.size
    indexed = segment.note(
        position,
        encoded.size,
        base,
        base + encoded.last_offset_delta,
        encoded.max_timestamp,
    )
    _write_run(part, segment, position, encoded.framed(base), [pending])
    pending.base = base
    if indexed:
        _write_index_entry(part, segment, len(segment.offsets) - 1)
    return True


def _write_locked(part: Partition, group: list[Pending]) -> bool:
    """Write a group's batches; the file lock and ``state`` are held and the view
    is caught up."""
    segment = part.segments[-1]
    run_start = segment.size
    parts: list[bytes] = []
    run: list[Pending] = []
    entries: list[tuple[Segment, int]] = []
    written = False
    for pending in group:
        encoded = pending.encoded
        base = segment.next_offset
        if pending.expected is not None and pending.expected != base:
            pending.error = EndOffsetMismatchError(
                part.topic, part.number, pending.expected, base
            )
            continue
        if _should_roll(part, segment, encoded):
            _write_run(part, segment, run_start, parts, run)
            parts, run = [], []
            segment = _roll(part, segment)
            run_start = 0
        position = segment.size
        parts.extend(encoded.framed(base))
        run.append(pending)
        # The view learns the batch now, so the next one's checks see it; a failed
        # write below forgets the view and reloads it from the files.
        if segment.note(
            position,
            encoded.size,
            base,
            base + encoded.last_offset_delta,
            encoded.max_timestamp,
        ):
            entries.append((segment, len(segment.offsets) - 1))
        pending.base = base
        written = True
    _write_run(part, segment, run_start, parts, run)
    for indexed, i in entries:
        _write_index_entry(part, indexed, i)
    return written


def _write_index_entry(part: Partition, segment: Segment, i: int) -> None:
    try:
        segment.write_index_entry(i)
    except OSError as exc:
        segment.index_stale = part.stale_indexes = True
        logger.warning("could not extend %s: %s", segment.index_path, exc)


def _write_run(
    part: Partition,
    segment: Segment,
    position: int,
    parts: list[bytes],
    run: list[Pending],
) -> None:
    """Write batches already noted in the view; on failure cut them off again,
    reload the view, and fail exactly these appends (and the rest of the group)."""
    if not parts:
        return
    part.reserve(segment, segment.size)
    try:
        write_all(segment.fd, parts, position)
    except OSError as exc:
        _undo_write(segment, position)
        part.reload()
        for pending in run:
            pending.base = -1
            pending.error = LogError(
                f"writing {segment.log_path} at byte {position} failed ({exc}); "
                "nothing of this append was written. Check free disk space and "
                "permissions, then retry"
            )
        raise LogError(
            f"writing {segment.log_path} at byte {position} failed ({exc}); this "
            "append was not written. Check free disk space and permissions, then retry"
        ) from exc


def _undo_write(segment: Segment, position: int) -> None:
    try:
        os.ftruncate(segment.fd, position)
    except OSError as exc:  # the next writer cuts the torn bytes off instead
        logger.warning(
            "could not cut off a failed write in %s: %s", segment.log_path, exc
        )


def _should_roll(part: Partition, segment: Segment, encoded: EncodedBatch) -> bool:
    if not segment.size:
        return False
    if segment.size + encoded.size > part.config.segment_bytes:
        return True
    first = segment.first_batch_timestamp
    # Age as Kafka measures it: the new batch's time against the first batch's.
    return first is not None and encoded.max_timestamp - first >= part.config.segment_ms


def _roll(part: Partition, segment: Segment) -> Segment:
    # A sealed segment ends at its last batch: its preallocated tail goes before the
    # next segment exists, so that finding zeros at the end of a segment's data
    # always means it is still the active one (``Partition.follow``).
    os.ftruncate(segment.fd, segment.size)
    segment.allocated = segment.size
    # The old segment must be durable before batches land in the new one: a group's
    # fsync covers only the active segment.
    sync_data(segment.fd)
    if segment.index_stale:
        segment.write_index()
    rolled = Segment.open(part.directory, segment.next_offset, create=True)
    sync_dir(part.directory)
    part.segments.append(rolled)
    part.bases.append(rolled.base_offset)
    return rolled
