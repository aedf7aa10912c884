"""The segment-file log passes the log contract, reopened from disk on every call."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.log.backends.segments import SegmentLog
from framework.testing.log_contract import LogContract, MakeLog


class TestSegmentLog(LogContract):
    @pytest.fixture
    def make_log(self, tmp_path: Path) -> MakeLog:
        return lambda: SegmentLog(tmp_path / "log")
