"""Schemas as released code left them: the single list of migrations every
subsystem shared (recorded in ``schema_version``), or each subsystem's own list
with the event store at its migration 2; and events written as that code's event
store wrote them (event columns; no key; headers holding the user headers only, or
NULL). Frozen here, as released: tests build such schemas to prove that the
current code opens them and reads them back."""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from framework.log.config import TopicConfig
from framework.log.partitioner import partition_for
from framework.postgres.migration import migrate, registered


@attrs.frozen
class SharedMigration:
    version: int
    description: str
    statements: tuple[str, ...]


#: The shared list as its last release had it. Never edit.
SHARED_MIGRATIONS: tuple[SharedMigration, ...] = (
    SharedMigration(
        1,
        "topics, partitions with their next offset, and records with event columns",
        (
            """CREATE TABLE {schema}.topics (
                topic_id serial PRIMARY KEY,
                name text NOT NULL UNIQUE,
                partitions integer NOT NULL CHECK (partitions > 0),
                config jsonb NOT NULL
            )""",
            # Only next_offset changes, and it is not indexed, so every append's
            # update is HOT; the free room per page keeps it so.
            """CREATE TABLE {schema}.partitions (
                topic_id integer NOT NULL REFERENCES {schema}.topics,
                partition integer NOT NULL CHECK (partition >= 0),
                next_offset bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (topic_id, partition)
            ) WITH (fillfactor = 20)""",
            # A record written through the Log has key/headers; one written by the
            # event store has the event columns instead (stream_id not null) and its
            # log view is derived from them. No foreign key: the partition row is
            # locked by every append already, and the check would cost each insert.
            """CREATE TABLE {schema}.records (
                topic_id integer NOT NULL,
                partition integer NOT NULL,
                "offset" bigint NOT NULL,
                timestamp_ms bigint NOT NULL,
                key bytea,
                value bytea NOT NULL,
                headers bytea,
                stream_id text,
                stream_version integer,
                event_id uuid,
                event_name text,
                event_version integer,
                correlation_id text,
                causation_id text,
                PRIMARY KEY (topic_id, partition, "offset")
            )""",
            # Optimistic concurrency, enforced by the insert itself.
            """CREATE UNIQUE INDEX records_stream_version
                ON {schema}.records (topic_id, stream_id, stream_version)
                WHERE stream_id IS NOT NULL""",
            # Idempotent retries: an event id is stored once per topic.
            """CREATE UNIQUE INDEX records_event_id
                ON {schema}.records (topic_id, event_id)
                WHERE event_id IS NOT NULL""",
        ),
    ),
    SharedMigration(
        2,
        "projections: their state, checkpoints, dead letters and group members",
        (
            # ``id`` names the projection's document tables (rm_<id>_<generation>_
            # <table>): its name may be too long for a 63-byte identifier.
            """CREATE TABLE {schema}.projections (
                name text PRIMARY KEY,
                id serial NOT NULL UNIQUE,
                version integer NOT NULL,
                generation integer NOT NULL,
                building integer
            )""",
            """CREATE TABLE {schema}.projection_checkpoints (
                name text NOT NULL,
                generation integer NOT NULL,
                partition integer NOT NULL,
                "offset" bigint NOT NULL,
                PRIMARY KEY (name, generation, partition)
            )""",
            """CREATE TABLE {schema}.projection_parked (
                name text NOT NULL,
                generation integer NOT NULL,
                partition integer NOT NULL,
                "offset" bigint NOT NULL,
                stream_id text NOT NULL,
                event_name text NOT NULL,
                error text NOT NULL,
                attempts integer NOT NULL,
                parked_at_ms bigint NOT NULL,
                PRIMARY KEY (name, generation, partition, "offset")
            )""",
            # A consumer group's members: a lease each, renewed by heartbeats, and
            # the backend holding the member's partition locks.
            """CREATE TABLE {schema}.projection_members (
                name text NOT NULL,
                member_id text NOT NULL,
                backend_pid integer NOT NULL,
                expires_at timestamptz NOT NULL,
                PRIMARY KEY (name, member_id)
            )""",
        ),
    ),
    SharedMigration(
        3,
        'stream ids compare as bytes (COLLATE "C")',
        (
            # Every append inserts into the (topic, stream, version) index, whose
            # comparisons went through the database's locale (strcoll on copies
            # of the strings). Ids need equality and a stable order, not a
            # language's: byte order made 100-event saves ~10% faster. Rebuilds
            # the index, under a lock, once.
            'ALTER TABLE {schema}.records ALTER COLUMN stream_id TYPE text COLLATE "C"',
        ),
    ),
    SharedMigration(
        4,
        "partitions: no CHECK or foreign key for each append's UPDATE to re-check",
        (
            # Every append UPDATEs its partition's head row, and PostgreSQL
            # re-checks a table's CHECK constraints and sets up its foreign-key
            # trigger on every UPDATE, even of other columns: 18,000 of the
            # 282,000 instructions a single-event append cost the server
            # (callgrind, docs/benchmarks.md). Only ``PostgresLog`` writes these
            # rows, when it creates a topic: in the topic's transaction, from
            # ``generate_series(0, partitions - 1)`` and the topic's new id, under
            # the topics table's own CHECK (partitions > 0). Nothing deletes topics.
            "ALTER TABLE {schema}.partitions "
            "DROP CONSTRAINT IF EXISTS partitions_partition_check",
            "ALTER TABLE {schema}.partitions "
            "DROP CONSTRAINT IF EXISTS partitions_topic_id_fkey",
        ),
    ),
    SharedMigration(
        5,
        "projection_checkpoints: the failure a projection stopped on, per partition",
        (
            # Kept on the checkpoint row (offset -1 when nothing is applied yet)
            # so that the upsert moving the checkpoint on clears it in the same
            # statement; a null column adds nothing to the row, and the column
            # is not indexed, so those updates stay HOT.
            "ALTER TABLE {schema}.projection_checkpoints ADD COLUMN failure jsonb",
        ),
    ),
)


def create_shared_schema(
    conn: psycopg.Connection[Any], schema: str, upto: int = 5
) -> None:
    """``schema`` with the shared migrations 1..``upto`` applied and recorded in
    ``schema_version``, as that code's ``migrate`` left it."""
    ident = sql.Identifier(schema)
    key = zlib.crc32(f"framework.migrate:{schema}".encode()) - (1 << 31)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {} (
                    version integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )"""
            ).format(sql.Identifier(schema, "schema_version"))
        )
        for migration in SHARED_MIGRATIONS[:upto]:
            for statement in migration.statements:
                conn.execute(sql.SQL(statement).format(schema=ident))
            conn.execute(
                sql.SQL("INSERT INTO {} (version, description) VALUES (%s, %s)").format(
                    sql.Identifier(schema, "schema_version")
                ),
                (migration.version, migration.description),
            )


def create_schema_at_store_2(conn: psycopg.Connection[Any], schema: str) -> None:
    """``schema`` as the code with per-subsystem migrations left it while the
    event store's last was its migration 2 (event columns, ``stream_id COLLATE
    "C"``): every other subsystem's migrations, recorded in ``schema_migrations``.
    Released migrations never change, so the current lists cut there are that
    code's."""
    subsystems = tuple(
        attrs.evolve(s, migrations=s.migrations[:2]) if s.subsystem == "store" else s
        for s in registered()
    )
    migrate(conn, schema, subsystems)


@attrs.frozen
class OldEvent:
    """An event as that code's store took it."""

    stream_id: str
    event_id: uuid.UUID
    name: str
    version: int
    data: bytes
    timestamp_ms: int
    correlation_id: str
    causation_id: str
    headers: Mapping[str, str] = attrs.field(factory=dict)


def create_topic(
    conn: psycopg.Connection[Any], schema: str, name: str, partitions: int
) -> int:
    """A topic and its head rows, as that code's ``PostgresLog`` created them."""
    row = conn.execute(
        sql.SQL(
            "INSERT INTO {} (name, partitions, config) VALUES (%s, %s, %s) "
            "RETURNING topic_id"
        ).format(sql.Identifier(schema, "topics")),
        (name, partitions, Jsonb(attrs.asdict(TopicConfig(partitions=partitions)))),
    ).fetchone()
    assert row is not None
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (topic_id, partition) "
            "SELECT %s, p FROM generate_series(0, %s - 1) AS p"
        ).format(sql.Identifier(schema, "partitions")),
        (row[0], partitions),
    )
    return int(row[0])


def _user_headers(headers: Mapping[str, str]) -> bytes | None:
    # (u16 name length, name, u32 value length, value)*, NULL for none.
    if not headers:
        return None
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">H", len(raw_name)) + raw_name
        out += struct.pack(">I", len(raw_value)) + raw_value
    return bytes(out)


def _take(
    conn: psycopg.Connection[Any], schema: str, topic_id: int, partition: int
) -> int:
    row = conn.execute(
        sql.SQL(
            "UPDATE {} SET next_offset = next_offset + 1 "
            "WHERE topic_id = %s AND partition = %s RETURNING next_offset - 1"
        ).format(sql.Identifier(schema, "partitions")),
        (topic_id, partition),
    ).fetchone()
    assert row is not None
    return int(row[0])


def write_old_events(
    conn: psycopg.Connection[Any],
    schema: str,
    topic_id: int,
    partitions: int,
    events: Sequence[OldEvent],
) -> None:
    """``events`` appended in order, each as the next version of its stream, in
    the rows that code's event store wrote."""
    versions: dict[str, int] = {}
    insert = sql.SQL(
        'INSERT INTO {} ("offset", timestamp_ms, value, headers, stream_version, '
        "event_id, event_name, event_version, correlation_id, causation_id, "
        "topic_id, partition, stream_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    ).format(sql.Identifier(schema, "records"))
    for event in events:
        partition = partition_for(event.stream_id, partitions)
        version = versions[event.stream_id] = versions.get(event.stream_id, 0) + 1
        conn.execute(
            insert,
            (
                _take(conn, schema, topic_id, partition),
                event.timestamp_ms,
                event.data,
                _user_headers(event.headers),
                version,
                event.event_id,
                event.name,
                event.version,
                event.correlation_id,
                event.causation_id,
                topic_id,
                partition,
                event.stream_id,
            ),
        )


def write_log_record(
    conn: psycopg.Connection[Any],
    schema: str,
    topic_id: int,
    record: tuple[int, bytes | None, bytes, bytes | None],
) -> None:
    """A record appended through that code's ``PostgresLog`` to partition 0:
    (timestamp, key, value, encoded headers)."""
    timestamp, key, value, headers = record
    conn.execute(
        sql.SQL(
            'INSERT INTO {} (topic_id, partition, "offset", timestamp_ms, key, '
            "value, headers) VALUES (%s, 0, %s, %s, %s, %s, %s)"
        ).format(sql.Identifier(schema, "records")),
        (topic_id, _take(conn, schema, topic_id, 0), timestamp, key, value, headers),
    )
