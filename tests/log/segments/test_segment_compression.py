"""zstd and lz4 topics with the real codecs (``zstandard`` and ``lz4`` are dev
dependencies): whatever is appended reads back the same after reopening, the
batches on disk are compressed, and a damaged compressed batch is refused, never
decoded into wrong records."""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.errors import ConfigurationError, CorruptLogError
from framework.log.backends.segments import SegmentLog
from framework.log.config import TopicConfig
from framework.log.records import Record

#: Codec -> the magic number its frames start with.
MAGIC = {"zstd": zstandard.FRAME_HEADER, "lz4": b"\x04\x22\x4d\x18"}
CODECS = pytest.mark.parametrize("codec", sorted(MAGIC))

records = st.builds(
    Record,
    key=st.none() | st.binary(max_size=12),
    value=st.binary(max_size=300),
    headers=st.lists(
        st.tuples(st.text("abc$", min_size=1, max_size=4), st.binary(max_size=8)),
        max_size=2,
    ).map(tuple),
    timestamp=st.none(),
)


@CODECS
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(records, min_size=1, max_size=6), min_size=1, max_size=8))
def test_compressed_batches_read_back_what_was_appended(
    tmp_path_factory: pytest.TempPathFactory, codec: str, batches: list[list[Record]]
) -> None:
    path = tmp_path_factory.mktemp(codec)
    with SegmentLog(path) as log:
        log.create_topic("z", TopicConfig(compression=codec))
        for batch in batches:
            log.append("z", 0, batch)
    expected = [r for batch in batches for r in batch]
    with SegmentLog(path) as log:
        got = log.read("z", 0, 0, 10_000)
    assert [(r.key, r.value, tuple(r.headers)) for r in got] == [
        (r.key, r.value, tuple(r.headers)) for r in expected
    ]
    assert [r.offset for r in got] == list(range(len(expected)))


def _log_file(path: Path) -> Path:
    return path / "z-0" / "00000000000000000000.log"


@CODECS
def test_the_batches_on_disk_are_compressed_frames(tmp_path: Path, codec: str) -> None:
    value = b"the same words again and again " * 40
    with SegmentLog(tmp_path) as log:
        log.create_topic("z", TopicConfig(compression=codec))
        log.append("z", 0, [Record(value=value) for _ in range(4)])
    written = _log_file(tmp_path).read_bytes().rstrip(b"\0")
    assert len(written) < len(value)  # four copies took less than one
    assert MAGIC[codec] in written


@CODECS
def test_a_damaged_compressed_batch_is_an_error_naming_the_file(
    tmp_path: Path, codec: str
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("z", TopicConfig(compression=codec, segment_bytes=1024))
        for i in range(12):  # several sealed segments
            log.append("z", 0, [Record(value=b"%03d " % i * 60)])
    sealed = _log_file(tmp_path)
    data = bytearray(sealed.read_bytes())
    frame = data.index(MAGIC[codec])
    data[frame + 8] ^= 0xFF  # inside the compressed body of the first batch
    sealed.write_bytes(bytes(data))
    with SegmentLog(tmp_path) as log, pytest.raises(CorruptLogError) as info:
        log.read("z", 0, 0, 100)
    assert "00000000000000000000.log" in str(info.value)


def test_an_unknown_codec_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="'none', 'zstd' or 'lz4'"):
        TopicConfig(compression="gzip")  # type: ignore[arg-type]
