"""The append path of a partition: encoding a batch, and writing it.

Each appender writes its own batch under all three partition locks: caught up with
other processes first, checked against its expected end offset, the segment rolled
if due, and the batch written with one ``pwritev``. The fsync that makes it durable
follows outside the locks, shared with the appenders that wrote meanwhile
(``groupcommit``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from framework.errors import EndOffsetMismatchError
from framework.files import sync_dir
from framework.log.backends.segments.batch import (
    COMPRESSION_NONE,
    TRANSACTIONAL,
    EncodedBatch,
    encode_batch,
    encode_record,
)
from framework.log.backends.segments.errors import storage_error
from framework.log.backends.segments.fsutil import sync_data, write_all
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


def write(part: Partition, pending: Pending) -> None:
    """Write one batch under the partition's locks and set its ``base``. Raises
    ``EndOffsetMismatchError`` (nothing written) if the partition does not end at
    ``pending.expected``, ``LogLockTimeoutError`` if another process holds the
    partition too long, ``LogError`` if the write fails."""
    with part.write_lock:
        if not part.file_lock.acquire(part.lock_timeout):
            raise part.lock_timeout_error()
        try:
            with part.state:
                part.ensure_loaded()
                part.follow(writer=True)
                if part.stale_indexes:
                    part.write_stale_indexes()
                if part.tail_txn is not None and not part.tail_txn.committed:
                    part.resolve_tail(writer=True)
                _write(part, pending)
        finally:
            part.file_lock.release()
    if part.interval:
        part.commit.written()
        part.flusher.watch(part)


def write_held(part: Partition, pending: Pending) -> None:
    """``write`` for a caller that holds the partition's write and file locks
    already, its view caught up (an atomic append)."""
    with part.state:
        _write(part, pending)


def _write(part: Partition, pending: Pending) -> None:
    """Write a batch; the file lock and ``state`` are held and the view is caught
    up."""
    segment = part.segments[-1]
    encoded = pending.encoded
    base = segment.next_offset
    if pending.expected is not None and pending.expected != base:
        raise EndOffsetMismatchError(part.topic, part.number, pending.expected, base)
    if _should_roll(part, segment, encoded):
        segment = _roll(part, segment)
    position = segment.size
    # The view learns the batch now; a failed write below forgets the view and
    # reloads it from the files.
    indexed = segment.note(
        position,
        encoded.size,
        base,
        base + encoded.last_offset_delta,
        encoded.max_timestamp,
    )
    _write_run(part, segment, position, encoded.framed(base))
    pending.base = base
    if part.tail_txn is not None or encoded.body[1] & TRANSACTIONAL:
        header = encoded.header(base)
        part.noted(header.attributes, header.producer_id, base, header.last_offset)
    if indexed:
        _write_index_entry(part, segment, len(segment.offsets) - 1)


def _write_index_entry(part: Partition, segment: Segment, i: int) -> None:
    try:
        segment.write_index_entry(i)
    except OSError as exc:
        segment.index_stale = part.stale_indexes = True
        logger.warning("could not extend %s: %s", segment.index_path, exc)


def _write_run(
    part: Partition, segment: Segment, position: int, parts: list[bytes]
) -> None:
    """Write a batch already noted in the view; on failure cut it off again and
    reload the view."""
    part.reserve(segment, segment.size)
    try:
        write_all(segment.fd, parts, position)
    except OSError as exc:
        _undo_write(segment, position)
        part.reload()
        raise storage_error(
            exc,
            segment.log_path,
            f"writing a batch at byte {position} of",
            "This append was not written. ",
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
    """Seal ``segment`` and start the next one. Raises ``LogStorageError`` (nothing
    written; the next append tries again) if the new file cannot be made."""
    # A sealed segment ends at its last batch: its preallocated tail goes before the
    # next segment exists, so that finding zeros at the end of a segment's data
    # always means it is still the active one (``Partition.follow``).
    os.ftruncate(segment.fd, segment.size)
    segment.allocated = segment.size
    # The old segment must be durable before batches land in the new one: a group's
    # fsync covers only the active segment. If that fails, the appends written to
    # it and not yet acknowledged must never be (see ``GroupCommit.fail``).
    try:
        sync_data(segment.fd)
    except OSError as exc:
        raise part.commit.fail(exc) from exc
    if segment.index_stale:
        _write_index(part, segment)
    rolled_path = part.directory / f"{segment.next_offset:020d}.log"
    not_written = "This append was not written; the next one tries again. "
    try:
        rolled = Segment.open(part.directory, segment.next_offset, create=True)
    except OSError as exc:
        raise storage_error(exc, rolled_path, "creating", not_written) from exc
    try:
        sync_dir(part.directory)
    except OSError as exc:
        # The file exists: the next append's catch-up adopts it as the active one.
        rolled.close()
        raise storage_error(exc, part.directory, "syncing", not_written) from exc
    part.segments.append(rolled)
    part.bases.append(rolled.base_offset)
    return rolled


def _write_index(part: Partition, segment: Segment) -> None:
    """Rewrite a segment's index files; a failure is logged, not raised: they are
    hints, rebuilt from the log when missing, and the append goes on."""
    try:
        segment.write_index()
    except OSError as exc:
        segment.index_stale = part.stale_indexes = True
        logger.warning("could not rewrite %s: %s", segment.index_path, exc)
