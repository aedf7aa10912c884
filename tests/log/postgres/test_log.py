"""PostgresLog passes the log contract, and announces appends with NOTIFY."""

from __future__ import annotations

import pytest

from framework.log.backends.postgres import PostgresLog
from framework.log.config import TopicConfig
from framework.log.records import Record
from framework.postgres.notify import Listener, Notification
from framework.postgres.url import parse_url
from framework.testing.log_contract import LogContract, MakeLog
from tests.postgres.fixtures import Closer

pytestmark = pytest.mark.postgres


class TestPostgresLog(LogContract):
    @pytest.fixture
    def make_log(self, pg_url: str, closing: list[Closer]) -> MakeLog:
        def make() -> PostgresLog:
            log = PostgresLog(pg_url)
            closing.append(log.close)
            return log

        return make


def test_an_append_is_announced_after_its_commit(
    pg_url: str, closing: list[Closer]
) -> None:
    log = PostgresLog(pg_url)
    closing.append(log.close)
    listener = Listener(parse_url(pg_url), log.db.channel)
    closing.append(listener.close)
    log.create_topic("t", TopicConfig(partitions=2))
    log.append("t", 1, [Record(value=b"a"), Record(value=b"b")])
    notices: list[Notification] = []
    for _ in range(20):
        notices += listener.wait(timeout=0.5)
        if notices:
            break
    assert notices[-1] == Notification("t", 1, 1)


def test_a_batch_above_the_copy_threshold_is_one_contiguous_append(
    pg_url: str, closing: list[Closer]
) -> None:
    log = PostgresLog(pg_url)
    closing.append(log.close)
    log.create_topic("t", TopicConfig(partitions=1))
    log.append("t", 0, [Record(value=b"first")])
    records = [Record(value=bytes([i % 256]), key=b"k") for i in range(2500)]
    result = log.append("t", 0, records, expected_end_offset=1)
    assert (result.base_offset, result.last_offset) == (1, 2500)
    got = log.read("t", 0, 1, max_records=5000)
    assert [r.offset for r in got] == list(range(1, 2501))
    assert got[300].value == bytes([300 % 256])


def test_appends_to_many_partitions_are_all_announced(
    pg_url: str, closing: list[Closer]
) -> None:
    log = PostgresLog(pg_url)
    closing.append(log.close)
    listener = Listener(parse_url(pg_url), log.db.channel)
    closing.append(listener.close)
    log.create_topic("t", TopicConfig(partitions=16))
    for round_ in range(3):
        for partition in range(16):
            log.append("t", partition, [Record(value=b"%d" % round_)])
    last: dict[int, int] = {}
    for _ in range(40):
        for notice in listener.wait(timeout=0.5):
            assert notice.topic == "t"
            last[notice.partition] = max(
                last.get(notice.partition, -1), notice.last_offset
            )
        if last == dict.fromkeys(range(16), 2):
            break
    assert last == dict.fromkeys(range(16), 2)
