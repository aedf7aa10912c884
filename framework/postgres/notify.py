"""NOTIFY after commit, off the writer's path, and ``Listener`` to wait for it.

A transaction that sends NOTIFY takes a database-wide lock until its commit is on
disk, which serialises every notifying commit (measured: -30% with 4 writers). So
appends hand (topic, partition, last offset) to a ``Notifier`` thread that sends
them after the commit, coalesced, on a connection of its own. Notifications are a
hint: readers poll with keyset pagination too, so a lost one only costs latency.
The first notice after a quiet spell goes at once; during a burst the notices of
each ``linger`` period go as one statement, so a lone write is heard within a
round trip and a busy writer still sends at most one statement per period. That
statement sends one NOTIFY per topic, naming every partition that moved.

Nobody may be listening: a store without projections or subscribers in any process.
A notice then costs the writer's process and the server a round trip and a
transaction for nothing (with four writer processes on two cores, 25-30% of the
rate). So a ``Listener`` connects under an ``application_name`` derived from its
channel (``listener_name``), and a ``Notifier`` sends only while
``pg_stat_activity`` shows such a connection. It looks again every
``_RECHECK_HEARD`` seconds while it finds one and every ``_RECHECK_UNHEARD`` while
it does not, so a new listener may miss the notices of its first tenth of a
second; listeners poll as well, so that costs latency once, never data.
``notify=always`` in the store URL sends regardless, for LISTENs of other programs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from itertools import chain

import attrs
from psycopg import sql

from framework.postgres.connection import Connection, fetchone_on
from framework.postgres.errors import translated
from framework.postgres.prepared import TEXT, TEXT_ARRAY, Prepared
from framework.postgres.url import PostgresURL

logger = logging.getLogger("framework.postgres")

#: How long the notifier gathers notices before sending them: the latency a
#: listener pays for the writers' throughput.
LINGER_SECONDS = 0.005

_SEND = Prepared(
    "fw_notify_many",
    b"SELECT count(pg_notify(%(channel)s, payload)) "
    b"FROM unnest(%(payloads)s::text[]) AS payload",
    {"channel": TEXT, "payloads": TEXT_ARRAY},
    (int,),
)
_SEND_ONE = Prepared(
    "fw_notify",
    b"SELECT 1 FROM pg_notify(%(channel)s, %(payload)s)",
    {"channel": TEXT, "payload": TEXT},
    (int,),
)
#: Partitions per notice: PostgreSQL caps a payload at 8,000 bytes.
_PAIRS_PER_NOTICE = 200
#: Whether a framework listener of a channel is connected, by ``listener_name``.
_HEARD = Prepared(
    "fw_listened",
    b"SELECT count(*) FROM pg_stat_activity WHERE application_name = %(name)s",
    {"name": TEXT},
    (int,),
)
#: Seconds between looks for listeners while one was seen, and while none was.
_RECHECK_HEARD = 1.0
_RECHECK_UNHEARD = 0.1


def listener_name(channel: str) -> str:
    """The ``application_name`` of a ``Listener``'s connection on ``channel``: how
    notifiers tell that someone listens. A digest, since an application name is
    cut at 63 bytes and channels can be as long."""
    digest = hashlib.blake2b(channel.encode(), digest_size=10).hexdigest()
    return f"framework listener {digest}"


@attrs.frozen
class Notification:
    """Records up to ``last_offset`` of ``topic``/``partition`` are committed."""

    topic: str
    partition: int
    last_offset: int


def payload(topic: str, partition: int, last_offset: int) -> str:
    """The NOTIFY payload for one partition: ``[topic, partition, last_offset]``."""
    return payloads(topic, {partition: last_offset})[0]


def payloads(topic: str, offsets: dict[int, int]) -> list[str]:
    """The payloads announcing several partitions of a topic: a JSON array
    ``[topic, partition, last_offset, partition, last_offset, ...]`` each, so that
    one NOTIFY covers them all (one per 200 partitions)."""
    pairs = sorted(offsets.items())
    return [
        json.dumps(
            [topic, *chain.from_iterable(pairs[i : i + _PAIRS_PER_NOTICE])],
            separators=(",", ":"),
        )
        for i in range(0, len(pairs), _PAIRS_PER_NOTICE)
    ]


def notifications(text: str) -> list[Notification]:
    """The notices a payload carries. A payload the framework did not write (someone
    else's NOTIFY on the channel) is logged and carries none."""
    try:
        items = json.loads(text)
        if (
            not isinstance(items, list)
            or len(items) % 2 != 1
            or not isinstance(topic := items[0], str)
        ):
            raise ValueError("not [topic, partition, offset, ...]")
        return [
            Notification(topic, int(items[i]), int(items[i + 1]))
            for i in range(1, len(items), 2)
        ]
    except (ValueError, TypeError) as exc:
        logger.warning(
            "ignoring a notice that is not the framework's: %r (%s)", text, exc
        )
        return []


class Notifier:
    """Coalesces the appends' notices and sends them from one background thread."""

    def __init__(
        self, url: PostgresURL, channel: str, *, linger: float = LINGER_SECONDS
    ) -> None:
        self._url = url
        self._channel = channel
        self._linger = linger
        self._listener_name = listener_name(channel)
        #: When listeners were last looked for, and whether one was there.
        self._looked_at = float("-inf")
        self._heard = True
        #: Batches dropped because nobody listened (for tests and diagnostics).
        self.unheard = 0
        self._last_sent = float("-inf")
        self._pending: dict[tuple[str, int], int] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None

    def publish(self, topic: str, partition: int, last_offset: int) -> None:
        """Announce a commit; returns at once. Call only after the commit."""
        if not self._heard and time.monotonic() - self._looked_at < _RECHECK_UNHEARD:
            # Nobody listened a moment ago: the thread would drop this notice, so
            # do not wake it (its lock and wake-up cost a writer more than the
            # check). Read without the lock: a stale value only sends a notice
            # the thread then drops, or drops one it would have dropped.
            return
        with self._cond:
            if self._closing:
                return
            key = (topic, partition)
            if self._pending.get(key, -1) < last_offset:
                self._pending[key] = last_offset
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"notify {self._channel}", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                closing = self._closing
            wait = self._last_sent + self._linger - time.monotonic()
            if not closing and wait > 0:
                # Sent a moment ago: gather the appends of the rest of the period
                # into one statement, since a NOTIFY per append costs a writer
                # ~15% of its rate.
                time.sleep(wait)
            with self._cond:
                batch, self._pending = self._pending, {}
                closing = self._closing
            if batch:
                self._last_sent = time.monotonic()
                self._send(batch)
            if closing:
                break
        if self._conn is not None:
            self._conn.close()

    def _send(self, batch: dict[tuple[str, int], int]) -> None:
        by_topic: dict[str, dict[int, int]] = {}
        for (topic, partition), offset in batch.items():
            by_topic.setdefault(topic, {})[partition] = offset
        texts = [
            text for t, offsets in by_topic.items() for text in payloads(t, offsets)
        ]
        try:
            with translated(self._url):
                if self._conn is None or self._conn.closed:
                    self._conn = Connection.connect(self._url.conninfo, autocommit=True)
                    # A notice is a hint; it need not wait for the disk.
                    self._conn.execute("SET synchronous_commit = off")
                if not self._url.notify_always and not self._someone_listens(
                    self._conn
                ):
                    self.unheard += 1
                    return
                # One NOTIFY per topic, not per partition: a NOTIFY costs the
                # server, and this thread, more than the few bytes it carries.
                if len(texts) == 1:
                    fetchone_on(
                        self._conn,
                        _SEND_ONE,
                        {"channel": self._channel, "payload": texts[0]},
                    )
                else:
                    fetchone_on(
                        self._conn, _SEND, {"channel": self._channel, "payloads": texts}
                    )
        except Exception as exc:  # noqa: BLE001 - must not kill the thread
            # Readers also poll, so a lost notice only delays them.
            logger.warning("could not send %d notifications: %s", len(batch), exc)
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            time.sleep(0.1)

    def _someone_listens(self, conn: Connection) -> bool:
        now = time.monotonic()
        if now - self._looked_at >= (
            _RECHECK_HEARD if self._heard else _RECHECK_UNHEARD
        ):
            row = fetchone_on(conn, _HEARD, {"name": self._listener_name})
            self._heard = bool(row and row[0])
            self._looked_at = now
        return self._heard

    def close(self) -> None:
        """Send what is pending, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)


class Listener:
    """LISTENs on a store's channel; ``wait`` returns the notices that arrived.

    For readers and projections that would rather wait than poll. Each notice
    means "committed up to here"; several appends may come as one notice.
    """

    def __init__(self, url: PostgresURL, channel: str) -> None:
        self._url = url
        with translated(url):
            # Named from the start, before it LISTENs: once it can hear a notice,
            # notifiers that look for listeners see it.
            self._conn = Connection.connect(
                url.conninfo, autocommit=True, application_name=listener_name(channel)
            )
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def wait(self, timeout: float) -> list[Notification]:
        """Notices received within ``timeout`` seconds (returns at the first)."""
        out: list[Notification] = []
        with translated(self._url):
            for notice in self._conn.notifies(timeout=timeout, stop_after=1):
                out.extend(notifications(notice.payload))
        return out

    def close(self) -> None:
        self._conn.close()
