"""Reading a partition: sequential reads, reads at scattered offsets, seek by time.

Every batch read is checked (magic, CRC, offsets following on) before its records are
decoded, so damaged bytes raise ``CorruptSegmentError`` and never yield a wrong
record. Reads take a snapshot of the view under the state lock, pin the segments they
use, and do the I/O and decoding after releasing it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from framework.errors import OffsetOutOfRangeError
from framework.log.backends.segments.batch import (
    COMPACTED,
    HEADER,
    HEADER_SIZE,
    LENGTH_SIZE,
    PREFIX,
    BatchHeader,
)
from framework.log.backends.segments.compression import decompressor
from framework.log.backends.segments.decode import batch_problem, decode_batches
from framework.log.backends.segments.errors import OffsetCompactedError
from framework.log.backends.segments.partition import Partition
from framework.log.backends.segments.segment import Segment
from framework.log.backends.segments.walk import pread_exactly
from framework.log.records import LogRecord, void_record

#: First and largest read while streaming a segment; reads double in between, so a
#: read of a few records costs one small ``pread`` and a replay a few large ones.
_FIRST_CHUNK = 64 * 1024
_LARGEST_CHUNK = 4 * 1024 * 1024
#: ``want`` meaning "every record of the batch".
_ALL = 1 << 62


class _IndexMismatch(Exception):
    """An index entry does not point at a batch of its offset: rebuild, then retry."""

    def __init__(self, segment: Segment, position: int) -> None:
        super().__init__(segment, position)
        self.segment = segment
        self.error = segment.corrupt(
            position, "the index points here but no batch of its offset starts here"
        )


def _decompressor_for(
    segment: Segment, base: int
) -> Callable[[int, int], Callable[[bytes], bytes]]:
    def find(code: int, rel: int) -> Callable[[bytes], bytes]:
        return decompressor(code, f"{segment.log_path} byte {base + rel}")

    return find


def decode_batch(
    part: Partition, segment: Segment, position: int, buf: bytes, rel: int
) -> list[LogRecord]:
    """The records of the (already checked) batch at ``buf[rel:]``."""
    length, _, base, _ = PREFIX.unpack_from(buf, rel)
    out: list[LogRecord] = []
    end = rel + LENGTH_SIZE + length
    reached, _, problem = decode_batches(
        buf,
        rel,
        base,
        -1,
        _ALL,
        out,
        part.topic,
        part.number,
        _decompressor_for(segment, position - rel),
        end,
    )
    if problem is not None or reached != end:
        raise segment.corrupt(position, problem or "the batch does not decode")
    return out


def _check_range(part: Partition, offset: int, *, inclusive_end: bool) -> None:
    start, end = part.start_offset, part.end_offset
    if not start <= offset < end + inclusive_end:
        raise OffsetOutOfRangeError(part.topic, part.number, offset, start, end)


def _rebuild(part: Partition, segment: Segment) -> None:
    with part.state:
        part.rebuild_index(segment)


def read(part: Partition, offset: int, max_records: int) -> list[LogRecord]:
    """Records from ``offset`` on, in order, at most ``max_records``; gaps left by
    compaction are skipped."""
    for attempt in range(2):
        with part.state:
            part.ready()
            _check_range(part, offset, inclusive_end=True)
            stable = part.stable_end
            aborted = part.aborted
            if offset == part.end_offset or max_records <= 0:
                return []
            if stable is not None:
                if offset >= stable:
                    return []  # an undecided transaction comes first
                max_records = min(max_records, stable - offset)
            segments = part.segments[part.segment_for(offset) :]
            sizes = [s.size for s in segments]
            entry, start, _ = segments[0].span_for(offset, sizes[0])
            part.pin(segments)
        out: list[LogRecord] = []
        try:
            for i, segment in enumerate(segments):
                if i:
                    entry, start = segment.base_offset, 0
                _read_segment(
                    part,
                    segment,
                    pos=start,
                    stop=sizes[i],
                    expected=entry,
                    offset=offset,
                    want=max_records,
                    out=out,
                )
                if len(out) >= max_records:
                    del out[max_records:]
                    break
        except _IndexMismatch as exc:
            if attempt:
                raise exc.error from None
            _rebuild(part, exc.segment)
            continue
        finally:
            part.unpin(segments)
        if stable is not None and out and out[-1].offset >= stable:
            # Compaction gaps made the count reach past it.
            out = [r for r in out if r.offset < stable]
        return _voided(out, aborted) if aborted else out
    raise AssertionError("unreachable")  # pragma: no cover


def _voided(
    records: list[LogRecord], aborted: list[tuple[int, int]]
) -> list[LogRecord]:
    """``records`` with those of aborted transactions as void records."""
    if not records or aborted[-1][1] < records[0].offset:
        return records
    first, last = records[0].offset, records[-1].offset
    ranges = [(b, e) for b, e in aborted if e >= first and b <= last]
    if not ranges:
        return records
    return [
        void_record(r.topic, r.partition, r.offset, r.timestamp)
        if any(b <= r.offset <= e for b, e in ranges)
        else r
        for r in records
    ]


def _read_segment(
    part: Partition,
    segment: Segment,
    *,
    pos: int,
    stop: int,
    expected: int,
    offset: int,
    want: int,
    out: list[LogRecord],
) -> None:
    # The first batch must start exactly at the index entry's offset; a mismatch
    # there means the index, not the log, is wrong.
    exact = pos > 0
    chunk = _FIRST_CHUNK
    while pos < stop and len(out) < want:
        buf = pread_exactly(segment.fd, min(chunk, stop - pos), pos)
        if len(buf) < min(HEADER_SIZE, stop - pos):
            raise segment.corrupt(pos, "the file is shorter than its known batches")
        if exact and PREFIX.unpack_from(buf, 0)[2] != expected:
            raise _IndexMismatch(segment, pos)
        reached, expected, problem = decode_batches(
            buf,
            0,
            expected,
            offset,
            want,
            out,
            part.topic,
            part.number,
            _decompressor_for(segment, pos),
            len(buf),
        )
        if problem is not None:
            if exact and reached == 0:
                raise _IndexMismatch(segment, pos)
            raise segment.corrupt(pos + reached, problem)
        exact = False
        if reached == 0:
            # One batch is larger than the chunk: read it whole.
            size = PREFIX.unpack_from(buf, 0)[0] + LENGTH_SIZE
            _check_fits(segment, pos, size, stop)
            if len(buf) < min(chunk, stop - pos) or size <= len(buf):
                raise segment.corrupt(pos, "the file is shorter than its known batches")
            chunk = size
            continue
        pos += reached
        chunk = min(chunk * 2, _LARGEST_CHUNK)


def _check_fits(segment: Segment, pos: int, size: int, stop: int) -> None:
    """A batch whose length runs past the segment's known data is damage: reading
    more would never reach its end (the data there has been checked to end at
    ``stop``)."""
    if pos + size > stop:
        raise segment.corrupt(
            pos,
            f"the batch claims {size} bytes, which run past the end of the "
            f"segment's data at byte {stop}",
        )


def read_at(part: Partition, offsets: Sequence[int]) -> list[LogRecord]:
    """The records at exactly ``offsets``, in the order given.

    Each needs one positioned read of the index span that holds its batch (about
    4 KiB); consecutive offsets in one batch or one span share the read and decoding.
    """
    for attempt in range(2):
        plan = []
        with part.state:
            part.ready()
            stable = part.stable_end
            aborted = part.aborted
            for offset in offsets:
                _check_range(part, offset, inclusive_end=False)
                if stable is not None and offset >= stable:
                    # Not visible until its transaction is decided.
                    raise OffsetOutOfRangeError(
                        part.topic, part.number, offset, part.start_offset, stable
                    )
                segment = part.segments[part.segment_for(offset)]
                plan.append((offset, segment, *segment.span_for(offset, segment.size)))
            pinned = list({id(p[1]): p[1] for p in plan}.values())
            part.pin(pinned)
        try:
            found = _read_planned(part, plan)
            if aborted:
                return [
                    r
                    if not any(b <= r.offset <= e for b, e in aborted)
                    else void_record(r.topic, r.partition, r.offset, r.timestamp)
                    for r in found
                ]
            return found
        except _IndexMismatch as exc:
            if attempt:
                raise exc.error from None
            _rebuild(part, exc.segment)
        finally:
            part.unpin(pinned)
    raise AssertionError("unreachable")  # pragma: no cover


def _read_planned(
    part: Partition, plan: list[tuple[int, Segment, int, int, int]]
) -> list[LogRecord]:
    out = []
    batch_segment: Segment | None = None
    batch_base = batch_last = -1
    batch_records: list[LogRecord] = []
    span_key: tuple[Segment | None, int] = (None, -1)
    span = b""
    for offset, segment, entry, start, stop in plan:
        if not (batch_segment is segment and batch_base <= offset <= batch_last):
            if span_key[0] is not segment or span_key[1] != start:
                span = pread_exactly(segment.fd, stop - start, start)
                span_key = (segment, start)
            batch_base, batch_last, batch_records = _find_batch(
                part, segment, span, start=start, entry=entry, offset=offset
            )
            batch_segment = segment
        i = offset - batch_base
        if not (i < len(batch_records) and batch_records[i].offset == offset):
            i = next((n for n, r in enumerate(batch_records) if r.offset == offset), -1)
            if i < 0:
                raise OffsetCompactedError(
                    part.topic, part.number, offset, part.start_offset, part.end_offset
                )
        out.append(batch_records[i])
    return out


def _find_batch(
    part: Partition,
    segment: Segment,
    span: bytes,
    *,
    start: int,
    entry: int,
    offset: int,
) -> tuple[int, int, list[LogRecord]]:
    """(base, last offset, records) of the batch in ``span`` that covers ``offset``."""
    view = memoryview(span)
    rel = 0
    expected = entry
    gaps = False
    while rel + HEADER_SIZE <= len(span):
        length, magic, base, crc, attributes, last_delta, count = HEADER.unpack_from(
            span, rel
        )[:7]
        stop = rel + LENGTH_SIZE + length
        exact = rel == 0 and start > 0
        if stop > len(span):
            problem: str | None = "a batch runs past its index span"
        else:
            problem = batch_problem(
                view, rel, length, magic, crc, attributes, last_delta, count
            )
        if (
            problem is None
            and base != expected
            and (exact or not (attributes & COMPACTED and base > expected))
        ):
            problem = f"the batch starts at offset {base} where {expected} was expected"
        if problem is not None:
            if exact:
                raise _IndexMismatch(segment, start)
            raise segment.corrupt(start + rel, problem)
        gaps = gaps or bool(attributes & COMPACTED)
        last = base + last_delta
        if base > offset:
            break
        if last >= offset:
            return base, last, decode_batch(part, segment, start + rel, span, rel)
        expected = last + 1
        rel = stop
    if gaps:
        # No batch holds the offset and compaction left gaps here: it was removed.
        raise OffsetCompactedError(
            part.topic, part.number, offset, part.start_offset, part.end_offset
        )
    # Without compaction every offset has a batch: the index sent us to the wrong span.
    raise _IndexMismatch(segment, start)


def iter_batches(
    segment: Segment, pos: int, stop: int, expected: int
) -> Iterator[tuple[int, BatchHeader, bytes, int]]:
    """Each checked batch in ``[pos, stop)``: (position, header, buffer, start).

    Starting inside the segment (from an index entry), the first batch must be
    exactly at ``expected``; otherwise the index is wrong (``_IndexMismatch``).
    """
    exact = pos > 0
    chunk = _FIRST_CHUNK
    while pos < stop:
        buf = pread_exactly(segment.fd, min(chunk, stop - pos), pos)
        view = memoryview(buf)
        rel = 0
        size = 0
        while rel + HEADER_SIZE <= len(buf):
            header = BatchHeader._make(HEADER.unpack_from(buf, rel))
            size = header.size
            if rel + size > len(buf):
                break
            problem = batch_problem(
                view,
                rel,
                header.length,
                header.magic,
                header.crc,
                header.attributes,
                header.last_offset_delta,
                header.record_count,
            )
            if (
                problem is None
                and header.base_offset != expected
                and not (
                    header.attributes & COMPACTED and header.base_offset > expected
                )
            ):
                problem = (
                    f"the batch starts at offset {header.base_offset} where "
                    f"{expected} was expected"
                )
            if exact and (problem is not None or header.base_offset != expected):
                raise _IndexMismatch(segment, pos)
            exact = False
            if problem is not None:
                raise segment.corrupt(pos + rel, problem)
            yield pos + rel, header, buf, rel
            expected = header.last_offset + 1
            rel += size
        if rel == 0:
            _check_fits(segment, pos, size, stop)
            if len(buf) < min(chunk, stop - pos) or size <= len(buf):
                raise segment.corrupt(pos, "the file is shorter than its known batches")
            chunk = size
            continue
        pos += rel
        chunk = min(chunk * 2, _LARGEST_CHUNK)


def offset_for_time(part: Partition, timestamp: int) -> int | None:
    """The earliest offset whose record timestamp is at or after ``timestamp``."""
    with part.state:
        part.ready()
        try:
            return _offset_for_time(part, timestamp)
        except _IndexMismatch as exc:
            part.rebuild_index(exc.segment)
        try:
            return _offset_for_time(part, timestamp)
        except _IndexMismatch as exc:
            raise exc.error from None


def _offset_for_time(part: Partition, timestamp: int) -> int | None:
    for segment in part.segments:
        if segment.max_timestamp < timestamp:
            continue
        entry, position, claimed = segment.position_for_time(timestamp)
        for pos, header, buf, rel in iter_batches(
            segment, position, segment.size, entry
        ):
            if pos == position and position and header.max_timestamp > claimed:
                # The entry claims a running maximum below this very batch's.
                raise _IndexMismatch(segment, pos)
            if header.max_timestamp < timestamp:
                continue
            for record in decode_batch(part, segment, pos, buf, rel):
                if record.timestamp >= timestamp:
                    return record.offset
    return None
