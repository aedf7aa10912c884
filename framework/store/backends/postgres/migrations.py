"""The event store's part of the log's tables, as numbered migrations: the
columns that index events by stream and id on the log's ``records`` table.

An event row is a log record as ``framework.store.records`` lays it out (key =
stream id, headers = the packed ``$m`` metadata then the user headers); the store
adds only ``stream_version`` and ``event_id``, for its two unique indexes."""

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
        Migration(
            3,
            "records: events in the log's record layout (key and $m header); "
            "unique (topic, key, version)",
            (
                # Rows written before held their metadata in columns of their own,
                # no key, and only the user headers. They get the key and the
                # headers ``framework.store.records`` writes, so that the log
                # reads every row the same way, and the columns only the old
                # layout read go. The ALTER ... TYPE ... USING below rewrites the
                # whole table (and rebuilds its indexes) under an ACCESS
                # EXCLUSIVE lock: appends and reads wait until the migration
                # commits. Refused first, naming the row, if a row cannot be
                # written in the $m layout (limits the store has always checked).
                # Their Lamport stamp is 0: they were stored before stamps.
                """DO $$
                DECLARE bad record;
                BEGIN
                    SELECT partition, "offset" INTO bad FROM {schema}.records
                    WHERE stream_id IS NOT NULL AND (
                        key IS NOT NULL OR stream_version IS NULL
                        OR event_id IS NULL OR event_name IS NULL
                        OR event_version IS NULL OR correlation_id IS NULL
                        OR causation_id IS NULL OR stream_version < 0
                        OR event_version NOT BETWEEN 0 AND 65535
                        OR octet_length(convert_to(event_name, 'UTF8')) > 65535
                        OR octet_length(convert_to(correlation_id, 'UTF8')) > 65535
                        OR octet_length(convert_to(causation_id, 'UTF8')) > 65535)
                    LIMIT 1;
                    IF FOUND THEN
                        RAISE EXCEPTION 'records: the event at partition %, offset '
                            '% has a missing or oversized field and cannot be '
                            'rewritten with an $m header; correct the row and '
                            'migrate again', bad.partition, bad."offset";
                    END IF;
                END $$""",
                # A u16-length-prefixed UTF-8 text, big-endian as
                # ``records.pack_meta`` packs it (and int2send writes). Dropped
                # again below.
                """CREATE FUNCTION {schema}.fw_migrate_text(value text)
                    RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$
                    SELECT substr(int4send(octet_length(raw)), 3, 2) || raw
                    FROM (SELECT convert_to(value, 'UTF8') AS raw) AS t $$""",
                # The headers column's framing of the $m header (u16 BE name
                # length 2, the name "$m" = 0x246d, u32 BE value length), then
                # its value: stream version, schema version, stamp (0), event id,
                # name, correlation id, causation id.
                """CREATE FUNCTION {schema}.fw_migrate_meta(
                        stream_version integer, event_version integer,
                        event_id uuid, name text, correlation text, causation text)
                    RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$
                    SELECT '\\x0002246d'::bytea || int4send(octet_length(m)) || m
                    FROM (SELECT int4send(stream_version)
                        || substr(int4send(event_version), 3, 2)
                        || '\\x0000000000000000'::bytea
                        || uuid_send(event_id)
                        || {schema}.fw_migrate_text(name)
                        || {schema}.fw_migrate_text(correlation)
                        || {schema}.fw_migrate_text(causation) AS m) AS t $$""",
                """ALTER TABLE {schema}.records
                    ALTER COLUMN key TYPE bytea USING CASE
                        WHEN stream_id IS NULL THEN key
                        ELSE convert_to(stream_id, 'UTF8') END,
                    ALTER COLUMN headers TYPE bytea USING CASE
                        WHEN stream_id IS NULL THEN headers
                        ELSE {schema}.fw_migrate_meta(stream_version,
                            event_version, event_id, event_name, correlation_id,
                            causation_id) || coalesce(headers, ''::bytea) END""",
                "DROP FUNCTION {schema}.fw_migrate_meta",
                "DROP FUNCTION {schema}.fw_migrate_text",
                "DROP INDEX {schema}.records_stream_version",
                """ALTER TABLE {schema}.records
                    DROP COLUMN stream_id,
                    DROP COLUMN event_name,
                    DROP COLUMN event_version,
                    DROP COLUMN correlation_id,
                    DROP COLUMN causation_id""",
                # Optimistic concurrency, enforced by the insert itself; bytea
                # compares as bytes, as stream_id did in the C collation.
                """CREATE UNIQUE INDEX records_stream_version
                    ON {schema}.records (topic_id, key, stream_version)
                    WHERE stream_version IS NOT NULL""",
            ),
        ),
        Migration(
            4,
            "partitions: the last Lamport stamp; the stamps sequence",
            (
                # Every append stamps its events above the partition's last stamp
                # and the sequence's next value, under the head row's lock (not
                # indexed, so the update stays HOT). Events stored before read as
                # stamp 0.
                "ALTER TABLE {schema}.partitions "
                "ADD COLUMN last_stamp bigint NOT NULL DEFAULT 0",
                "CREATE SEQUENCE {schema}.stamps",
            ),
        ),
    ),
    after=("log",),
)
