"""Reads of damaged files: a length read from disk never sends a reader round in
circles. Every read of a damaged log ends, with the right records or with
``CorruptLogError``, wherever the damage lies (opening checks only the tail, so
most of a log is first checked by the reads themselves)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.errors import CorruptLogError
from framework.log.backends.segments import SegmentLog
from framework.log.backends.segments.index import ENTRY as OFFSET_ENTRY
from framework.log.config import TopicConfig
from framework.log.records import Record
from tests.log.segments.raw_batches import batch_positions

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]
#: Enough batches per segment that its index has entries past the damage, so that
#: opening does not walk the damaged batch and only reads meet it.
SEGMENT_BYTES = 20_000


def make(path: Path, count: int) -> list[Path]:
    with SegmentLog(path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=SEGMENT_BYTES))
        for i in range(count):
            log.append("t", 0, [Record(value=b"%04d" % i + b"." * 50, timestamp=i)])
    return sorted((path / "t-0").glob("*.log"))


READ_FROM_START = """
import json, sys
from framework.errors import CorruptLogError
from framework.log.backends.segments import SegmentLog
from framework.log.backends.segments.index import ENTRY as OFFSET_ENTRY
with SegmentLog(sys.argv[1]) as log:
    try:
        records = log.read("t", 0, 0, 100_000)
    except CorruptLogError as exc:
        print(json.dumps({"path": str(exc.path), "position": exc.position}))
    else:
        print(json.dumps({"records": len(records)}))
"""


@pytest.mark.parametrize(("byte", "bit"), [(1, 0x01), (2, 0x40)])
def test_a_batch_length_damaged_in_a_sealed_segment_is_an_error_not_a_hang(
    tmp_path: Path, byte: int, bit: int
) -> None:
    segments = make(tmp_path, 400)
    assert len(segments) >= 2
    sealed = segments[0]
    positions = batch_positions(sealed)
    damaged = positions[len(positions) // 2]
    data = bytearray(sealed.read_bytes())
    data[damaged + byte] ^= bit  # the length now runs past the segment's end
    sealed.write_bytes(bytes(data))
    # In a child process with a timeout: before the fix this read never returned.
    try:
        done = subprocess.run(
            [sys.executable, "-c", READ_FROM_START, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading a segment with a damaged batch length never returned")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"path": str(sealed), "position": damaged}


class Hang(Exception):
    """A read took far longer than any read of these few kilobytes can."""


@contextlib.contextmanager
def bounded(seconds: int) -> Iterator[None]:
    """Fail a read that does not end, instead of stalling the suite: a SIGALRM
    raises ``Hang`` in the looping code (a generous bound, not a speed target)."""

    def handler(signum: int, frame: object) -> None:
        raise Hang(f"a read of a damaged log did not end within {seconds} s")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _attempt(read: Callable[[], T]) -> T | None:
    """The read's answer, or ``None`` if it raised ``CorruptLogError`` (which must
    name the file's damaged byte)."""
    refused: CorruptLogError | None = None
    try:
        return read()
    except CorruptLogError as exc:
        refused = exc
    assert "is corrupt at byte" in str(refused)
    return None


def _reads(log: SegmentLog, model: list[bytes], probes: list[int]) -> None:
    """Every kind of read, each checked against the model where it succeeds."""
    for read in (
        lambda: log.read("t", 0, 0, 100_000),
        lambda: [r for p in probes for r in log.read("t", 0, p % len(model), 7)],
        lambda: log.read_at("t", 0, [p % len(model) for p in probes]),
    ):
        for record in _attempt(read) or []:
            assert record.value == model[record.offset]
            assert record.timestamp == record.offset
    for probe in probes:
        timestamp = probe % (len(model) + 1)
        found = _attempt(lambda t=timestamp: log.offset_for_time("t", 0, t))
        assert found in (None, timestamp if timestamp < len(model) else None)


COUNT = 700
MODEL = [b"%04d" % i + b"." * 50 for i in range(COUNT)]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One closed log of several segments, copied for each example."""
    path = tmp_path_factory.mktemp("pristine") / "log"
    make(path, COUNT)
    return path


DAMAGE = st.lists(
    st.tuples(
        st.sampled_from(["flip", "overwrite", "length"]),
        st.integers(min_value=0),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=3,
)
_runs = itertools.count()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(damage=DAMAGE, probes=st.lists(st.integers(min_value=0), max_size=8))
def test_every_read_of_a_damaged_log_ends_with_the_right_records_or_an_error(
    tmp_path: Path,
    pristine: Path,
    damage: list[tuple[str, int, bytes]],
    probes: list[int],
) -> None:
    path = tmp_path / f"run-{next(_runs)}"
    shutil.copytree(pristine, path)
    segments = sorted((path / "t-0").glob("*.log"))
    for kind, where, data in damage:
        target = segments[where % len(segments)]
        content = bytearray(target.read_bytes())
        if kind == "length":  # a batch's length field, where the loops look
            positions = batch_positions(target)
            if not positions:
                continue
            at = positions[where % len(positions)] + where % 4
        else:
            at = where % len(content)
        if kind == "flip":
            content[at] ^= 1 << (where % 8)
        else:
            content[at : at + len(data)] = data[: len(content) - at]
        target.write_bytes(bytes(content))
    with bounded(120):
        _attempt(lambda: _open_and_read(path, probes))


def _open_and_read(path: Path, probes: list[int]) -> None:
    with SegmentLog(path) as log:
        _reads(log, MODEL, [*probes, 0, COUNT - 1])


def test_an_index_rebuild_stopped_by_damage_hides_nothing_from_later_reads(
    tmp_path: Path, pristine: Path
) -> None:
    path = tmp_path / "log"
    shutil.copytree(pristine, path)
    segment = sorted((path / "t-0").glob("*.log"))[-2]
    entries = segment.with_suffix(".index").read_bytes()
    offset, position = OFFSET_ENTRY.unpack_from(entries, len(entries) - 32)
    assert position > 0
    data = bytearray(segment.read_bytes())
    data[position + 1 : position + 4] = bytes(3)  # the length of an indexed batch
    segment.write_bytes(bytes(data))
    with SegmentLog(path) as log:
        # The read finds no batch where the index points and rebuilds the index,
        # which the damage stops half-way.
        with pytest.raises(CorruptLogError):
            log.read_at("t", 0, [offset])
        # The batches the half-walked index left out must not be skipped.
        assert _attempt(lambda: log.offset_for_time("t", 0, offset)) in (None, offset)
        with pytest.raises(CorruptLogError):
            log.read("t", 0, offset - 1, 10)
