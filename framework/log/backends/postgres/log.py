"""``PostgresLog``: the partitioned log on PostgreSQL tables, gapless per partition.

An append locks its partition's head row (``UPDATE ... RETURNING``), takes the next
offsets, inserts and commits in one statement, so the lock is held to the commit and
each partition commits in offset order: a reader that sees offset n has seen every
offset before it. Writers to different partitions never wait for each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from framework.errors import (
    EndOffsetMismatchError,
    OffsetOutOfRangeError,
    TopicConfigConflictError,
    UnknownPartitionError,
    UnknownTopicError,
)
from framework.log.backends.postgres.headers import decode_headers, encode_headers
from framework.log.backends.postgres.statements import (
    APPEND_COLUMNS,
    EXPECTED_END,
    PAGE,
    RECORD_COLUMNS,
    take_offsets,
)
from framework.log.config import TopicConfig
from framework.log.records import (
    AppendResult,
    LogRecord,
    PartitionBatch,
    Record,
    check_atomic_batches,
)
from framework.postgres.database import Database, fetchall_on, fetchone_on
from framework.postgres.prepared import (
    BYTEA_ARRAY,
    INT4,
    INT8,
    INT8_ARRAY,
    Prepared,
)
from framework.postgres.url import PostgresURL

#: Above this many records a batch goes in with COPY rather than one INSERT.
COPY_THRESHOLD = 1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.frozen
class TopicInfo:
    """A topic's id in the ``topics`` table and its stored configuration."""

    topic_id: int
    config: TopicConfig


class PostgresLog:
    """A ``Log`` in a PostgreSQL schema. Thread-safe; processes share it safely.

    Open it from a URL (``PostgresLog("postgresql://...?schema=app")``) or on a
    ``Database`` shared with the event store.
    """

    def __init__(self, url: PostgresURL | str | Database | None = None) -> None:
        self._owns_db = not isinstance(url, Database)
        self.db = url if isinstance(url, Database) else Database(url)
        self._topics: dict[str, TopicInfo] = {}
        self._lock = threading.Lock()
        t = self.db.table
        self._q_insert_topic = (
            sql.SQL(
                "INSERT INTO {} (name, partitions, config) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING topic_id"
            )
            .format(t("topics"))
            .as_bytes(None)
        )
        self._q_insert_partitions = (
            sql.SQL(
                "INSERT INTO {} (topic_id, partition) "
                "SELECT %s, p FROM generate_series(0, %s - 1) AS p"
            )
            .format(t("partitions"))
            .as_bytes(None)
        )
        self._q_topic = (
            sql.SQL("SELECT topic_id, config FROM {} WHERE name = %s")
            .format(t("topics"))
            .as_bytes(None)
        )
        self._q_topics = (
            sql.SQL("SELECT name FROM {} ORDER BY name")
            .format(t("topics"))
            .as_bytes(None)
        )
        taken = take_offsets(t("partitions"), sql.SQL("%(n)s::bigint"), EXPECTED_END)
        self._p_append = Prepared(
            "fw_log_append",
            sql.SQL(
                """WITH head AS ({taken}), written AS (
                INSERT INTO {records} ({columns})
                SELECT %(topic)s, %(partition)s, head.base + r.i - 1, r.ts, r.key,
                       r.value, r.headers
                FROM head, unnest(%(ts)s::bigint[], %(keys)s::bytea[],
                                  %(values)s::bytea[], %(headers)s::bytea[])
                     WITH ORDINALITY AS r(ts, key, value, headers, i)
                RETURNING "offset"
            )
            SELECT min("offset"), max("offset") FROM written"""
            )
            .format(taken=taken, records=t("records"), columns=APPEND_COLUMNS)
            .as_bytes(None),
            {
                "n": INT8,
                "topic": INT4,
                "partition": INT4,
                "expected": INT8,
                "ts": INT8_ARRAY,
                "keys": BYTEA_ARRAY,
                "values": BYTEA_ARRAY,
                "headers": BYTEA_ARRAY,
            },
            (int, int),
        )
        self._q_lock_head = taken.as_bytes(None)
        self._q_copy = (
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
            .format(t("records"), APPEND_COLUMNS)
            .as_bytes(None)
        )
        self._p_read = Prepared(
            "fw_log_read",
            sql.SQL("SELECT {columns} FROM {records} {page}")
            .format(columns=RECORD_COLUMNS, records=t("records"), page=PAGE)
            .as_bytes(None),
            {"topic": INT4, "partition": INT4, "offset": INT8, "limit": INT8},
        )
        self._p_read_at = Prepared(
            "fw_log_read_at",
            sql.SQL(
                "SELECT {columns} FROM {records} "
                "WHERE topic_id = %(topic)s AND partition = %(partition)s "
                'AND "offset" = ANY(%(offsets)s::bigint[])'
            )
            .format(columns=RECORD_COLUMNS, records=t("records"))
            .as_bytes(None),
            {"topic": INT4, "partition": INT4, "offsets": INT8_ARRAY},
        )
        self._p_end = Prepared(
            "fw_log_end",
            sql.SQL(
                "SELECT next_offset FROM {} "
                "WHERE topic_id = %(topic)s AND partition = %(partition)s"
            )
            .format(t("partitions"))
            .as_bytes(None),
            {"topic": INT4, "partition": INT4},
            (int,),
        )
        self._p_ends = Prepared(
            "fw_log_ends",
            sql.SQL("SELECT partition, next_offset FROM {} WHERE topic_id = %(topic)s")
            .format(t("partitions"))
            .as_bytes(None),
            {"topic": INT4},
        )
        # No time index: seeking by time scans the partition in offset order from
        # the start; it is rare (a consumer seeking), appends are not.
        self._q_for_time = (
            sql.SQL(
                'SELECT "offset" FROM {} WHERE topic_id = %s AND partition = %s '
                'AND timestamp_ms >= %s ORDER BY "offset" LIMIT 1'
            )
            .format(t("records"))
            .as_bytes(None)
        )

    # -- topics ----------------------------------------------------------------

    def create_topic(self, name: str, config: TopicConfig) -> None:
        existing = self._create(name, config)
        if existing is not None and existing != config:
            raise TopicConfigConflictError(name, existing, config)

    def ensure_topic(self, name: str, config: TopicConfig) -> TopicConfig:
        existing = self._create(name, config)
        if existing is None:
            return config
        if existing.partitions != config.partitions:
            raise TopicConfigConflictError(name, existing, config)
        return existing

    def _create(self, name: str, config: TopicConfig) -> TopicConfig | None:
        """Create the topic; ``None`` if created, else the stored configuration."""
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute(
                self._q_insert_topic,
                (name, config.partitions, Jsonb(attrs.asdict(config))),
            ).fetchone()
            if row is not None:
                conn.execute(self._q_insert_partitions, (row[0], config.partitions))
                with self._lock:
                    self._topics[name] = TopicInfo(int(row[0]), config)
                return None
        return self._info(name).config

    def _info(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is not None:
            return info
        with self.db.connection() as conn:
            row = conn.execute(self._q_topic, (name,)).fetchone()
        if row is None:
            raise UnknownTopicError(name, self.topics())
        info = TopicInfo(int(row[0]), TopicConfig(**row[1]))
        with self._lock:
            self._topics[name] = info
        return info

    def topic_id(self, name: str) -> int:
        """The topic's row id (for backends sharing these tables)."""
        return self._info(name).topic_id

    def checked_topic_id(self, topic: str, partition: int) -> int:
        """The topic's row id; ``UnknownTopicError`` or ``UnknownPartitionError``
        unless the topic has that partition."""
        info = self._info(topic)
        if not 0 <= partition < info.config.partitions:
            raise UnknownPartitionError(topic, partition, info.config.partitions)
        return info.topic_id

    def topic_config(self, name: str) -> TopicConfig:
        return self._info(name).config

    def topics(self) -> list[str]:
        with self.db.connection() as conn:
            return [str(r[0]) for r in conn.execute(self._q_topics)]

    # -- writing ---------------------------------------------------------------

    def append(
        self,
        topic: str,
        partition: int,
        records: Sequence[Record],
        *,
        expected_end_offset: int | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> AppendResult:
        """Append atomically; with ``expected_end_offset`` the check happens under
        the partition's lock. Durable when it returns (the commit is on disk);
        ``on_written`` is called after the commit."""
        if not records:
            raise ValueError(f"append to {topic}/{partition} needs at least one record")
        topic_id = self.checked_topic_id(topic, partition)
        now = now_ms()
        timestamps = [now if r.timestamp is None else r.timestamp for r in records]
        params: dict[str, Any] = {
            "n": len(records),
            "topic": topic_id,
            "partition": partition,
            "expected": expected_end_offset,
        }
        if len(records) > COPY_THRESHOLD:
            base = self._append_copy(params, records, timestamps)
        else:
            params["ts"] = timestamps
            params["keys"] = [r.key for r in records]
            params["values"] = [r.value for r in records]
            params["headers"] = [encode_headers(r.headers) for r in records]
            row = self.db.fetchone_prepared(self._p_append, params)
            base = None if row is None or row[0] is None else int(row[0])
        if base is None:
            actual = self.end_offset(topic, partition)
            raise EndOffsetMismatchError(
                topic, partition, expected_end_offset or 0, actual
            )
        last = base + len(records) - 1
        if self.db.notifier is not None:
            self.db.notifier.publish(topic, partition, last)
        if on_written is not None:
            on_written(base)
        return AppendResult(
            topic=topic,
            partition=partition,
            base_offset=base,
            last_offset=last,
            timestamp=timestamps[-1],
        )

    def _append_copy(
        self, params: dict[str, Any], records: Sequence[Record], timestamps: list[int]
    ) -> int | None:
        """A big batch: lock the head, COPY the rows, commit (one transaction)."""
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute(self._q_lock_head, params).fetchone()
            if row is None:
                return None
            base = int(row[0])
            topic_id, partition = params["topic"], params["partition"]
            with conn.cursor().copy(self._q_copy) as copy:
                copy.set_types(
                    ["int4", "int4", "int8", "int8", "bytea", "bytea", "bytea"]
                )
                for i, (record, ts) in enumerate(zip(records, timestamps, strict=True)):
                    copy.write_row(
                        (
                            topic_id,
                            partition,
                            base + i,
                            ts,
                            record.key,
                            record.value,
                            encode_headers(record.headers),
                        )
                    )
            return base

    def append_atomic(
        self, topic: str, batches: Sequence[PartitionBatch]
    ) -> list[AppendResult]:
        """One PostgreSQL transaction: each partition's head row stays locked to
        the commit, so readers see every batch from the commit on, and none
        before."""
        check_atomic_batches(topic, batches)
        topic_id = self._info(topic).topic_id
        for batch in batches:
            self.checked_topic_id(topic, batch.partition)
        now = now_ms()
        bases: dict[int, int] = {}
        failed: PartitionBatch | None = None
        with self.db.connection() as conn, conn.transaction() as tx:
            # Heads locked in partition order: two transactions never wait for
            # each other in a circle.
            for batch in sorted(batches, key=lambda b: b.partition):
                row = fetchone_on(
                    conn,
                    self._p_append,
                    {
                        "n": len(batch.records),
                        "topic": topic_id,
                        "partition": batch.partition,
                        "expected": batch.expected_end_offset,
                        "ts": [
                            now if r.timestamp is None else r.timestamp
                            for r in batch.records
                        ],
                        "keys": [r.key for r in batch.records],
                        "values": [r.value for r in batch.records],
                        "headers": [encode_headers(r.headers) for r in batch.records],
                    },
                )
                if row is None or row[0] is None:
                    failed = batch
                    raise psycopg.Rollback(tx)
                bases[batch.partition] = int(row[0])
        if failed is not None:
            raise EndOffsetMismatchError(
                topic,
                failed.partition,
                failed.expected_end_offset or 0,
                self.end_offset(topic, failed.partition),
            )
        results = []
        for batch in batches:
            base = bases[batch.partition]
            last = base + len(batch.records) - 1
            if self.db.notifier is not None:
                self.db.notifier.publish(topic, batch.partition, last)
            stamp = batch.records[-1].timestamp
            results.append(
                AppendResult(
                    topic=topic,
                    partition=batch.partition,
                    base_offset=base,
                    last_offset=last,
                    timestamp=now if stamp is None else stamp,
                )
            )
        return results

    # -- reading ---------------------------------------------------------------

    def read(
        self, topic: str, partition: int, offset: int, max_records: int = 1000
    ) -> list[LogRecord]:
        """Records from ``offset`` in order (keyset pagination on the primary key).

        Only committed records are seen, and a partition commits in offset order,
        so what comes back is always a gapless run.
        """
        topic_id = self.checked_topic_id(topic, partition)
        if offset < 0:
            raise OffsetOutOfRangeError(
                topic, partition, offset, 0, self.end_offset(topic, partition)
            )
        params = {
            "topic": topic_id,
            "partition": partition,
            "offset": offset,
            "limit": max_records,
        }
        # A pooled connection, as the event store's partition reads.
        with self.db.connection() as conn:
            rows = fetchall_on(conn, self._p_read, params)
        if not rows:
            end = self.end_offset(topic, partition)
            if offset > end:
                raise OffsetOutOfRangeError(topic, partition, offset, 0, end)
            return []
        return [_to_log_record(topic, partition, row) for row in rows]

    def read_at(
        self, topic: str, partition: int, offsets: Sequence[int]
    ) -> list[LogRecord]:
        topic_id = self.checked_topic_id(topic, partition)
        if not offsets:
            return []
        rows = self.db.fetchall_prepared(
            self._p_read_at,
            {"topic": topic_id, "partition": partition, "offsets": list(offsets)},
        )
        found = {int(row[0]): row for row in rows}
        out = []
        for offset in offsets:
            row = found.get(offset)
            if row is None:
                end = self.end_offset(topic, partition)
                raise OffsetOutOfRangeError(topic, partition, offset, 0, end)
            out.append(_to_log_record(topic, partition, row))
        return out

    def start_offset(self, topic: str, partition: int) -> int:
        self.checked_topic_id(topic, partition)
        return 0

    def end_offset(self, topic: str, partition: int) -> int:
        topic_id = self.checked_topic_id(topic, partition)
        row = self.db.fetchone_prepared(
            self._p_end, {"topic": topic_id, "partition": partition}
        )
        return int(row[0]) if row else 0

    def end_offsets(self, topic: str) -> dict[int, int]:
        topic_id = self._info(topic).topic_id
        rows = self.db.fetchall_prepared(self._p_ends, {"topic": topic_id})
        return dict(sorted((int(p), int(o)) for p, o in rows))

    def offset_for_time(self, topic: str, partition: int, timestamp: int) -> int | None:
        topic_id = self.checked_topic_id(topic, partition)
        with self.db.connection() as conn:
            row = conn.execute(
                self._q_for_time, (topic_id, partition, timestamp)
            ).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        """Close the pool (when this log opened it). Idempotent."""
        if self._owns_db:
            self.db.close()


def _to_log_record(topic: str, partition: int, row: Sequence[Any]) -> LogRecord:
    offset, ts, key, value, headers = row
    return LogRecord(topic, partition, offset, ts, key, value, decode_headers(headers))
