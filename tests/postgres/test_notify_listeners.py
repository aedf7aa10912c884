"""Appends NOTIFY only while a framework listener is connected (or ``always``).

A notice nobody hears costs each writer process a round trip and a transaction;
the gate must never cost a listener more than the first moments of latency.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql

from framework.errors import ConfigurationError
from framework.log.backends.postgres import PostgresLog
from framework.log.config import TopicConfig
from framework.log.records import Record
from framework.postgres.notify import Listener, Notification, listener_name
from framework.postgres.url import parse_url
from tests.conftest import database_url
from tests.postgres.fixtures import Closer

pytestmark = pytest.mark.postgres


def _plain_listen(channel: str) -> psycopg.Connection[tuple[object, ...]]:
    """A LISTEN from some other program: no framework application name."""
    conn = psycopg.connect(database_url(), autocommit=True)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
    return conn


def _heard(conn: psycopg.Connection[tuple[object, ...]], seconds: float) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=seconds, stop_after=1)]


def _flush(log: PostgresLog) -> None:
    """Wait until the log's notifier has handled everything published so far."""
    notifier = log.db.notifier
    assert notifier is not None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with notifier._cond:
            if not notifier._pending:
                break
        time.sleep(0.01)
    time.sleep(0.05)


def test_no_notice_is_sent_while_no_framework_listener_is_connected(
    pg_url: str, closing: list[Closer]
) -> None:
    log = PostgresLog(pg_url)
    closing.append(log.close)
    other = _plain_listen(log.db.channel)
    closing.append(other.close)
    log.create_topic("t", TopicConfig(partitions=1))
    for i in range(5):
        log.append("t", 0, [Record(value=b"%d" % i)])
        time.sleep(0.01)
    _flush(log)
    assert _heard(other, 0.3) == []
    assert log.db.notifier is not None
    assert log.db.notifier.unheard >= 1


def test_a_listener_that_connects_later_hears_the_next_appends(
    pg_url: str, closing: list[Closer]
) -> None:
    log = PostgresLog(pg_url)
    closing.append(log.close)
    log.create_topic("t", TopicConfig(partitions=1))
    # The writer looks, finds nobody, and stops sending...
    log.append("t", 0, [Record(value=b"unheard")])
    _flush(log)
    # ...until a listener connects: it is heard within the recheck period.
    listener = Listener(parse_url(pg_url), log.db.channel)
    closing.append(listener.close)
    notices: list[Notification] = []
    deadline = time.monotonic() + 5
    offset = 0
    while not notices and time.monotonic() < deadline:
        offset = log.append("t", 0, [Record(value=b"later")]).last_offset
        notices = listener.wait(timeout=0.05)
    assert notices
    assert notices[-1].last_offset <= offset
    assert notices[-1].topic == "t"


def test_notify_always_sends_to_listeners_of_other_programs(
    pg_url: str, closing: list[Closer]
) -> None:
    log = PostgresLog(pg_url + "&notify=always")
    closing.append(log.close)
    other = _plain_listen(log.db.channel)
    closing.append(other.close)
    log.create_topic("t", TopicConfig(partitions=1))
    log.append("t", 0, [Record(value=b"a")])
    assert _heard(other, 5.0) == ['["t",0,0]']


def test_notify_off_sends_nothing_even_to_a_framework_listener(
    pg_url: str, closing: list[Closer]
) -> None:
    log = PostgresLog(pg_url + "&notify=0")
    closing.append(log.close)
    listener = Listener(parse_url(pg_url), log.db.channel)
    closing.append(listener.close)
    log.create_topic("t", TopicConfig(partitions=1))
    log.append("t", 0, [Record(value=b"a")])
    assert log.db.notifier is None
    assert listener.wait(timeout=0.3) == []


def test_an_unknown_notify_option_names_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="always"):
        parse_url("postgresql://u@h/db?notify=sometimes")


def test_listener_names_fit_an_application_name_and_tell_channels_apart() -> None:
    long_a, long_b = "framework:" + "a" * 60, "framework:" + "a" * 59 + "b"
    names = {listener_name(c) for c in ("framework:x", long_a, long_b)}
    assert len(names) == 3
    assert all(len(n.encode()) <= 63 for n in names)
    assert listener_name("framework:x") == listener_name("framework:x")
