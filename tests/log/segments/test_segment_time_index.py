"""The time index is a hint: however its file is damaged, seeking by time answers
what a scan of every record gives."""

from __future__ import annotations

import itertools
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.log.backends.segments import SegmentLog
from framework.log.backends.segments.index import ENTRY as OFFSET_ENTRY
from framework.log.backends.segments.timeindex import ENTRY as TIME_ENTRY
from framework.log.config import TopicConfig
from framework.log.records import Record

#: A few index entries (one per 4 KiB) in each of several segments.
SEGMENT_BYTES = 16 * 1024
COUNT = 600


def _stamps() -> list[int]:
    """Out-of-order timestamps around a rising line, as producers with skewed
    clocks hand them in: the running maximum is what the index keeps."""
    rng = random.Random(67)
    return [1_000 + 10 * i + rng.randint(-400, 400) for i in range(COUNT)]


STAMPS = _stamps()


def scan(target: int) -> int | None:
    """The answer by brute force: the first offset at or after ``target``."""
    return next((o for o, ts in enumerate(STAMPS) if ts >= target), None)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "log"
    with SegmentLog(path) as log:
        log.create_topic("t", TopicConfig(segment_bytes=SEGMENT_BYTES))
        for offset, ts in enumerate(STAMPS):
            log.append("t", 0, [Record(value=b"%04d" % offset * 20, timestamp=ts)])
    segments = sorted((path / "t-0").glob("*.timeindex"))
    assert len(segments) > 3
    assert all(p.stat().st_size >= 3 * TIME_ENTRY.size for p in segments[:-1])
    return path


def _entries(data: bytes) -> list[tuple[int, ...]]:
    size = TIME_ENTRY.size
    ends = range(0, len(data) - size + 1, size)
    return [TIME_ENTRY.unpack_from(data, i) for i in ends]


def damage_time_index(path: Path, kind: str, rng: random.Random) -> None:
    """Damage one ``.timeindex`` file the way ``kind`` says; entries keep whatever
    fields follow the timestamp and offset, as a careless tool would."""
    data = path.read_bytes()
    if not data:
        return
    entries = _entries(data)
    if kind == "garbage":
        start = rng.randrange(len(data) + 1)
        junk = rng.randbytes(rng.randint(1, 40))
        path.write_bytes(data[:start] + junk + data[start + len(junk) :])
        return
    if kind == "truncated":
        path.write_bytes(data[: rng.randrange(len(data))])
        return
    if len(entries) < 2:
        return
    i = rng.randrange(len(entries) - 1)
    if kind == "swapped":
        entries[i], entries[i + 1] = entries[i + 1], entries[i]
    elif kind == "offsets shifted":
        shift = rng.choice([-3, -1, 1, 2, 7])
        for j in range(i, len(entries)):
            ts, offset, *rest = entries[j]
            entries[j] = (ts, max(0, offset + shift), *rest)
        # The offset index agrees, so that only the log can tell.
        index = path.with_suffix(".index")
        offsets = bytearray(index.read_bytes())
        for j in range(i, len(offsets) // OFFSET_ENTRY.size):
            offset, position = OFFSET_ENTRY.unpack_from(offsets, j * OFFSET_ENTRY.size)
            OFFSET_ENTRY.pack_into(
                offsets, j * OFFSET_ENTRY.size, max(0, offset + shift), position
            )
        index.write_bytes(bytes(offsets))
    elif kind == "timestamps lowered":
        # Still sorted: lowered to anywhere between the neighbours' timestamps.
        j = i + 1
        ts, offset, *rest = entries[j]
        low, high = sorted((entries[i][0], ts))
        entries[j] = (rng.randint(low, high), offset, *rest)
    elif kind == "timestamps changed":
        ts, offset, *rest = entries[i]
        entries[i] = (ts + rng.randint(-2_000, 2_000), offset, *rest)
    path.write_bytes(b"".join(TIME_ENTRY.pack(*e) for e in entries))


KINDS = [
    "garbage",
    "truncated",
    "swapped",
    "offsets shifted",
    "timestamps lowered",
    "timestamps changed",
]
_runs = itertools.count()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    damage=st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(min_value=0)),
        min_size=1,
        max_size=4,
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_seeking_by_time_with_a_damaged_time_index_answers_as_a_full_scan(
    tmp_path: Path, pristine: Path, damage: list[tuple[str, int]], seed: int
) -> None:
    path = tmp_path / f"run-{next(_runs)}"
    shutil.copytree(pristine, path)
    files = sorted((path / "t-0").glob("*.timeindex"))
    rng = random.Random(seed)
    for kind, which in damage:
        damage_time_index(files[which % len(files)], kind, rng)
    targets = sorted(
        {ts + d for ts in STAMPS[:: max(1, COUNT // 150)] for d in (-1, 0, 1)}
        | {min(STAMPS) - 1, max(STAMPS), max(STAMPS) + 1}
    )
    with SegmentLog(path) as log:
        got = {t: log.offset_for_time("t", 0, t) for t in targets}
    assert got == {t: scan(t) for t in targets}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_time_index_damage_leaves_seeking_by_time_right(
    tmp_path: Path, pristine: Path, kind: str
) -> None:
    path = tmp_path / "log"
    shutil.copytree(pristine, path)
    rng = random.Random(kind)
    for file in sorted((path / "t-0").glob("*.timeindex")):
        damage_time_index(file, kind, rng)
    with SegmentLog(path) as log:
        for target in range(min(STAMPS) - 1, max(STAMPS) + 2, 7):
            assert log.offset_for_time("t", 0, target) == scan(target), target
