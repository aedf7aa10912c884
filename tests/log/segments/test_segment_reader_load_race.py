"""A process that loads a partition while another process appends into its
preallocated space takes the batches that land meanwhile for appends, not for
damage."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from framework.log.backends.segments import SegmentLog, partition, preallocation
from framework.log.backends.segments.batch import encode_batch
from framework.log.config import TopicConfig
from framework.log.records import Record

pytestmark = pytest.mark.skipif(
    not preallocation.SUPPORTED, reason="no posix_fallocate on this platform"
)


def batch_bytes(base: int, value: bytes) -> bytes:
    encoded = encode_batch([(0, 1, None, value, ())], last_offset_delta=0)
    return b"".join(encoded.framed(base))


def test_batches_landing_between_the_walk_and_the_tail_check_are_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig())
        for i in range(3):
            log.append("t", 0, [Record(value=b"%03d" % i)])
    log_file = tmp_path / "t-0" / "00000000000000000000.log"
    end = len(log_file.read_bytes().rstrip(b"\0"))
    walk = partition.walk
    landed = False

    def walk_then_another_process_appends(*args: Any, **kwargs: Any) -> Any:
        # The walk has seen zeros where the data ends; another process's next two
        # batches land before the loader looks at the bytes after them.
        nonlocal landed
        found = walk(*args, **kwargs)
        if not landed:
            landed = True
            third = batch_bytes(3, b"003")
            fd = os.open(log_file, os.O_WRONLY)
            try:
                os.pwrite(fd, third + batch_bytes(4, b"004"), end)
            finally:
                os.close(fd)
        return found

    monkeypatch.setattr(partition, "walk", walk_then_another_process_appends)
    with SegmentLog(tmp_path) as reader:
        assert reader.end_offset("t", 0) == 5
        values = [r.value for r in reader.read("t", 0, 0, 10)]
    assert landed
    assert values == [b"000", b"001", b"002", b"003", b"004"]


def test_a_batch_half_copied_when_the_walk_read_it_is_an_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SegmentLog(tmp_path) as log:
        log.create_topic("t", TopicConfig())
        for i in range(3):
            log.append("t", 0, [Record(value=b"%03d" % i)])
    log_file = tmp_path / "t-0" / "00000000000000000000.log"
    end = len(log_file.read_bytes().rstrip(b"\0"))
    third, fourth = batch_bytes(3, b"003" * 20), batch_bytes(4, b"004")
    fd = os.open(log_file, os.O_WRONLY)
    try:
        # Another process's write is under way: its header is there, not yet
        # all of its records.
        os.pwrite(fd, third[: len(third) - 10], end)
    finally:
        os.close(fd)
    walk = partition.walk
    landed = False

    def walk_then_the_write_completes(*args: Any, **kwargs: Any) -> Any:
        nonlocal landed
        found = walk(*args, **kwargs)
        if not landed:
            landed = True
            fd = os.open(log_file, os.O_WRONLY)
            try:
                os.pwrite(fd, third[len(third) - 10 :] + fourth, end + len(third) - 10)
            finally:
                os.close(fd)
        return found

    monkeypatch.setattr(partition, "walk", walk_then_the_write_completes)
    with SegmentLog(tmp_path) as reader:
        assert reader.end_offset("t", 0) == 5
        values = [r.value for r in reader.read("t", 0, 0, 10)]
    assert landed
    assert values == [b"000", b"001", b"002", b"003" * 20, b"004"]
