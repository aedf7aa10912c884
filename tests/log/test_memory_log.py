"""The in-memory log passes the log contract."""

from __future__ import annotations

import pytest

from framework.log.backends.memory import MemoryLog
from framework.testing.log_contract import LogContract, MakeLog


class TestMemoryLog(LogContract):
    @pytest.fixture
    def make_log(self) -> MakeLog:
        log = MemoryLog()
        return lambda: log
