"""The event store's part of the log's tables, as numbered migrations: the
columns that index events by stream and id on the log's ``records`` table."""

from __future__ import annotations

from framework.postgres.migration import Migration, SubsystemMigrations


def _le16(value: str) -> str:
    """SQL for ``value`` as two little-endian bytes (the ``$e`` header's order)."""
    return (
        rf"set_byte(set_byte('\x0000'::bytea, 0, ({value}) & 255), 1, "
        f"(({value}) >> 8) & 255)"
    )


def _le32(value: str) -> str:
    """SQL for ``value`` as four little-endian bytes."""
    out = r"'\x00000000'::bytea"
    for byte in range(4):
        out = f"set_byte({out}, {byte}, (({value}) >> {8 * byte}) & 255)"
    return out


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
            "records: events in the log's layout too (key = stream id, packed $e "
            "header before the user headers)",
            (
                # The log's header layout of an event, built from its columns: the
                # ``$e`` header (framework.store.records.pack_meta: stream version
                # u32, schema version u16, event id, then name, correlation and
                # causation ids each as a u16 length and UTF-8) as the headers
                # column encodes one (u16 name length, name, u32 value length,
                # value), then the user headers already in that encoding. Appends
                # write with it and the rewrite below uses it, so both make the
                # same bytes. STABLE (convert_to is), so the planner inlines it.
                rf"""CREATE FUNCTION {{schema}}.event_headers(
                    sv integer, ev integer, id uuid, n text, corr text, caus text,
                    uh bytea
                ) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
                SELECT '\x00022465'::bytea
                    || int4send(28 + octet_length(convert_to(n, 'UTF8'))
                        + octet_length(convert_to(corr, 'UTF8'))
                        + octet_length(convert_to(caus, 'UTF8')))
                    || {_le32("sv")} || {_le16("ev")} || uuid_send(id)
                    || {_le16("octet_length(convert_to(n, 'UTF8'))")}
                    || convert_to(n, 'UTF8')
                    || {_le16("octet_length(convert_to(corr, 'UTF8'))")}
                    || convert_to(corr, 'UTF8')
                    || {_le16("octet_length(convert_to(caus, 'UTF8'))")}
                    || convert_to(caus, 'UTF8')
                    || coalesce(uh, '\x'::bytea)
                $$""",
                # The user headers of an event's headers: what follows ``$e``
                # (NULL for none), as the store's reads return them.
                r"""CREATE FUNCTION {schema}.event_user_headers(h bytea)
                RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
                SELECT CASE WHEN substring(h FOR 4) = '\x00022465'::bytea
                    THEN nullif(substring(h FROM 9 + ((get_byte(h, 4) << 24)
                        | (get_byte(h, 5) << 16) | (get_byte(h, 6) << 8)
                        | get_byte(h, 7))), '\x'::bytea)
                    ELSE h END
                $$""",
                # Every field of the rows to rewrite must fit the packed header;
                # the store's limits have always kept them inside it, but a row
                # that does not would be rewritten wrong, so nothing is changed.
                r"""DO $$ BEGIN
                IF EXISTS (SELECT 1 FROM {schema}.records
                    WHERE stream_id IS NOT NULL AND key IS NULL AND (
                        stream_version IS NULL OR stream_version < 0
                        OR event_version IS NULL
                        OR event_version NOT BETWEEN 0 AND 65535
                        OR event_id IS NULL OR event_name IS NULL
                        OR correlation_id IS NULL OR causation_id IS NULL
                        OR octet_length(convert_to(event_name, 'UTF8')) > 65535
                        OR octet_length(convert_to(correlation_id, 'UTF8')) > 65535
                        OR octet_length(convert_to(causation_id, 'UTF8')) > 65535))
                THEN RAISE EXCEPTION
                    'an event does not fit the packed metadata header; no change';
                END IF;
                END $$""",
                # The rewrite, in this migration's transaction: all rows or none.
                """UPDATE {schema}.records SET
                    key = convert_to(stream_id, 'UTF8'),
                    headers = {schema}.event_headers(stream_version,
                        event_version, event_id, event_name, correlation_id,
                        causation_id, headers)
                WHERE stream_id IS NOT NULL AND key IS NULL""",
            ),
        ),
    ),
    after=("log",),
)
