"""The event store's part of the log's tables, as numbered migrations: the
columns that index events by stream and id on the log's ``records`` table."""

from __future__ import annotations

from framework.postgres.migration import Migration, SubsystemMigrations

#: Every migration of the event store's columns ever released, in order. Never
#: edit a released one: add another. They change the log's ``records`` table, so
#: the log's migrations run first.
MIGRATIONS = SubsystemMigrations(
    "store",
    (
        Migration(
            1,
            "records: event columns, unique (stream, version) and (event id)",
            (
                # Null on records written through the log alone.
                """ALTER TABLE {schema}.records
                    ADD COLUMN stream_id text,
                    ADD COLUMN stream_version integer,
                    ADD COLUMN event_id uuid,
                    ADD COLUMN event_name text,
                    ADD COLUMN event_version integer,
                    ADD COLUMN correlation_id text,
                    ADD COLUMN causation_id text""",
                # Optimistic concurrency, enforced by the insert itself.
                """CREATE UNIQUE INDEX records_stream_version
                    ON {schema}.records (topic_id, stream_id, stream_version)
                    WHERE stream_id IS NOT NULL""",
                # Idempotent retries: an event id is stored once per topic.
                """CREATE UNIQUE INDEX records_event_id
                    ON {schema}.records (topic_id, event_id)
                    WHERE event_id IS NOT NULL""",
            ),
            shared_number=1,
        ),
        Migration(
            2,
            'stream ids compare as bytes (COLLATE "C")',
            (
                # Every append inserts into the (topic, stream, version) index,
                # whose comparisons went through the database's locale (strcoll on
                # copies of the strings). Ids need equality and a stable order,
                # not a language's: byte order made 100-event saves ~10% faster.
                # Rebuilds the index, under a lock, once.
                "ALTER TABLE {schema}.records "
                'ALTER COLUMN stream_id TYPE text COLLATE "C"',
            ),
            shared_number=3,
        ),
    ),
    after=("log",),
)
