"""The tables, as numbered migrations, and ``migrate`` that applies the missing ones.

Idempotent and safe to run from several processes at once: a transaction-level
advisory lock per schema serialises them, and ``schema_version`` records what ran.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import attrs
import psycopg
from psycopg import sql

logger = logging.getLogger("framework.postgres")


@attrs.frozen
class Migration:
    version: int
    description: str
    #: Statements with ``{schema}`` where the schema identifier goes.
    statements: tuple[str, ...]


#: Every migration ever released, in order. Never edit a released one: add another.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
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
    Migration(
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
    Migration(
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
    Migration(
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
    Migration(
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

#: The version the code expects.
LATEST = MIGRATIONS[-1].version


def _lock_key(schema: str) -> int:
    # A stable signed 64-bit key per schema for pg_advisory_xact_lock.
    return zlib.crc32(f"framework.migrate:{schema}".encode()) - (1 << 31)


def current_version(conn: psycopg.Connection[Any], schema: str) -> int:
    """The highest applied migration, 0 when the schema has none."""
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        (sql.Identifier(schema, "schema_version").as_string(conn),),
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(
            sql.Identifier(schema, "schema_version")
        )
    ).fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    """Apply the migrations ``schema`` lacks, in one transaction; return their
    numbers (empty when it is up to date). Raises psycopg errors: callers run it
    inside ``translated``."""
    ident = sql.Identifier(schema)
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
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
        have = current_version(conn, schema)
        for migration in MIGRATIONS:
            if migration.version <= have:
                continue
            for statement in migration.statements:
                conn.execute(sql.SQL(statement).format(schema=ident))
            conn.execute(
                sql.SQL("INSERT INTO {} (version, description) VALUES (%s, %s)").format(
                    sql.Identifier(schema, "schema_version")
                ),
                (migration.version, migration.description),
            )
            applied.append(migration.version)
    if applied:
        logger.info("schema %r migrated to version %d", schema, applied[-1])
    return applied
