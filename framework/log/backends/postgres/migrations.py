"""The log's tables, as numbered migrations: topics, their partitions' head rows,
and the records (key, value, headers) every append writes."""

from __future__ import annotations

from framework.postgres.migration import Migration, SubsystemMigrations

#: Every migration of the log's tables ever released, in order. Never edit a
#: released one: add another.
MIGRATIONS = SubsystemMigrations(
    "log",
    (
        Migration(
            1,
            "topics, partitions with their next offset, and records",
            (
                """CREATE TABLE {schema}.topics (
                    topic_id serial PRIMARY KEY,
                    name text NOT NULL UNIQUE,
                    partitions integer NOT NULL CHECK (partitions > 0),
                    config jsonb NOT NULL
                )""",
                # Only next_offset changes, and it is not indexed, so every
                # append's update is HOT; the free room per page keeps it so.
                """CREATE TABLE {schema}.partitions (
                    topic_id integer NOT NULL REFERENCES {schema}.topics,
                    partition integer NOT NULL CHECK (partition >= 0),
                    next_offset bigint NOT NULL DEFAULT 0,
                    PRIMARY KEY (topic_id, partition)
                ) WITH (fillfactor = 20)""",
                # No foreign key: the partition row is locked by every append
                # already, and the check would cost each insert. The event store
                # adds its columns to this table (its migrations).
                """CREATE TABLE {schema}.records (
                    topic_id integer NOT NULL,
                    partition integer NOT NULL,
                    "offset" bigint NOT NULL,
                    timestamp_ms bigint NOT NULL,
                    key bytea,
                    value bytea NOT NULL,
                    headers bytea,
                    PRIMARY KEY (topic_id, partition, "offset")
                )""",
            ),
            shared_number=1,
        ),
        Migration(
            2,
            "partitions: no CHECK or foreign key for each append's UPDATE to re-check",
            (
                # Every append UPDATEs its partition's head row, and PostgreSQL
                # re-checks a table's CHECK constraints and sets up its foreign-key
                # trigger on every UPDATE, even of other columns: 18,000 of the
                # 282,000 instructions a single-event append cost the server
                # (callgrind, docs/benchmarks.md). Only ``PostgresLog`` writes these
                # rows, when it creates a topic: in the topic's transaction, from
                # ``generate_series(0, partitions - 1)`` and the topic's new id,
                # under the topics table's own CHECK (partitions > 0). Nothing
                # deletes topics.
                "ALTER TABLE {schema}.partitions "
                "DROP CONSTRAINT IF EXISTS partitions_partition_check",
                "ALTER TABLE {schema}.partitions "
                "DROP CONSTRAINT IF EXISTS partitions_topic_id_fkey",
            ),
            shared_number=4,
        ),
    ),
)
