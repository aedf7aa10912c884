"""Retention and compaction: the two ways a partition sheds old records.

Retention deletes whole sealed segments, oldest first, so the partition's start
offset moves up. Compaction rewrites sealed segments keeping the latest record per
key (a key whose latest record has an empty value, a tombstone, goes altogether);
offsets never change, so a compacted partition has gaps. The active segment is never
touched by either. Both run only when called (no background threads).
"""

from __future__ import annotations

import logging
import os

from framework.files import sync_dir
from framework.log.backends.segments.batch import (
    COMPRESSION_MASK,
    EncodedBatch,
    Entry,
    encode_batch,
)
from framework.log.backends.segments.fsutil import write_all
from framework.log.backends.segments.partition import Partition
from framework.log.backends.segments.reader import decode_batch, iter_batches
from framework.log.backends.segments.segment import Segment
from framework.log.backends.segments.walk import walk
from framework.log.records import LogRecord

logger = logging.getLogger("framework.log")

#: Suffix of a compacted copy being written; a crash may leave one, which is ignored.
CLEANED = ".cleaned"


def enforce_retention(part: Partition, now_ms: int) -> int:
    """Delete the sealed segments the topic's retention no longer keeps; returns how
    many. Oldest first, so a crash half-way leaves a shorter log, never a hole."""
    config = part.config
    if config.retention_ms is None and config.retention_bytes is None:
        return 0
    deleted = 0
    with part.exclusive():
        total = sum(s.size for s in part.segments)
        while len(part.segments) > 1:
            oldest = part.segments[0]
            expired = (
                config.retention_ms is not None
                and oldest.max_timestamp < now_ms - config.retention_ms
            )
            oversized = (
                config.retention_bytes is not None and total > config.retention_bytes
            )
            if not (expired or oversized):
                break
            part.segments.pop(0)
            part.bases.pop(0)
            oldest.delete_files()
            part.retire(oldest)
            total -= oldest.size
            deleted += 1
        if deleted:
            sync_dir(part.directory)
            logger.info(
                "%s/%s: retention deleted %d segments; the log now starts at %d",
                part.topic,
                part.number,
                deleted,
                part.start_offset,
            )
    return deleted


def compact(part: Partition) -> int:
    """Keep the latest record per key in the sealed segments; returns how many
    records were removed."""
    removed = 0
    with part.exclusive():
        for leftover in part.directory.glob(f"*{CLEANED}"):
            leftover.unlink()
        if len(part.segments) < 2:
            return 0
        latest, tombstoned = _latest_per_key(part)
        for i, segment in enumerate(part.segments[:-1]):
            rewritten, dropped = _rewrite(part, segment, latest, tombstoned)
            if rewritten is not None:
                part.segments[i] = rewritten
                part.retire(segment)
                removed += dropped
    return removed


def _records(
    part: Partition, segment: Segment
) -> list[tuple[int, int, int, list[LogRecord]]]:
    """(base offset, last offset delta, max timestamp, records) of every batch."""
    return [
        (
            header.base_offset,
            header.last_offset_delta,
            header.max_timestamp,
            decode_batch(part, segment, pos, buf, rel),
        )
        for pos, header, buf, rel in iter_batches(
            segment, 0, segment.size, segment.base_offset
        )
    ]


def _latest_per_key(part: Partition) -> tuple[dict[bytes, int], set[bytes]]:
    """The offset of each key's latest record, and the keys whose latest record is
    a tombstone; the active segment counts, though it is not rewritten."""
    latest: dict[bytes, int] = {}
    tombstoned: set[bytes] = set()
    for segment in part.segments:
        for _, _, _, records in _records(part, segment):
            for record in records:
                key = record.key
                if key is None:
                    continue
                latest[key] = record.offset
                if record.value:
                    tombstoned.discard(key)
                else:
                    tombstoned.add(key)
    return latest, tombstoned


def _rewrite(
    part: Partition,
    segment: Segment,
    latest: dict[bytes, int],
    tombstoned: set[bytes],
) -> tuple[Segment | None, int]:
    """Write the segment again without superseded records and swap it in."""
    batches = _records(part, segment)
    kept_batches: list[EncodedBatch] = []
    bases: list[int] = []
    dropped = 0
    for n, (base, last_delta, max_ts, records) in enumerate(batches):
        kept: list[Entry] = [
            (r.offset - base, r.timestamp, r.key, r.value, r.headers)
            for r in records
            if r.key is None or (latest[r.key] == r.offset and r.key not in tombstoned)
        ]
        dropped += len(records) - len(kept)
        # The last batch stays, if need be empty, so that the segment still ends
        # where the next one begins: a missing end is then always corruption.
        if kept or n == len(batches) - 1:
            kept_batches.append(
                encode_batch(
                    kept,
                    last_offset_delta=last_delta,
                    compression=part.compression & COMPRESSION_MASK,
                    compress=part.compress,
                    compacted=True,
                    empty_timestamp=max_ts,
                )
            )
            bases.append(base)
    if not dropped:
        return None, 0
    tmp = segment.log_path.with_name(segment.log_path.name + CLEANED)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            position = 0
            for base, encoded in zip(bases, kept_batches, strict=True):
                write_all(fd, encoded.framed(base), position)
                position += encoded.size
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written copy
        raise
    # Index files go first: a crash before the rename leaves the old log without an
    # index (rebuilt), after it the new log without one (rebuilt too).
    segment.time_path.unlink(missing_ok=True)
    segment.index_path.unlink(missing_ok=True)
    os.replace(tmp, segment.log_path)
    sync_dir(part.directory)
    rewritten = Segment.open(part.directory, segment.base_offset)
    problem = walk(
        rewritten.fd,
        0,
        rewritten.file_size(),
        segment.base_offset,
        rewritten.note_batch,
    )
    if problem is not None or rewritten.next_offset != segment.next_offset:
        reason = problem.reason if problem else "it ends at another offset"
        raise rewritten.corrupt(
            problem.position if problem else rewritten.size,
            f"the compacted copy does not read back ({reason})",
        )
    rewritten.write_index()
    return rewritten, dropped
