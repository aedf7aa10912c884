"""The SQL of PostgreSQL read models, each statement written once: those on a
schema's projection tables, and those of each document table."""

from __future__ import annotations

import threading
import zlib

from psycopg import sql

from framework.postgres.database import Database


def lock_key(schema: str, name: str) -> tuple[int, int]:
    """The two-int advisory lock key of a projection's writes in ``schema``."""
    return (
        zlib.crc32(f"framework.projection:{schema}".encode()) - (1 << 31),
        zlib.crc32(name.encode()) - (1 << 31),
    )


def table_name(projection_id: int, generation: int, table: str) -> str:
    """Digits, then a name starting with a letter: never ambiguous, and short
    enough for PostgreSQL's 63-byte identifiers whatever the projection's name."""
    return f"rm_{projection_id}_{generation}_{table}"


class DocumentStatements:
    """The statements of one document table, composed once."""

    def __init__(self, db: Database, name: str) -> None:
        ident = db.table(name)
        self.get = (
            sql.SQL("SELECT doc::text FROM {} WHERE key = %s")
            .format(ident)
            .as_bytes(None)
        )
        self.items = (
            sql.SQL("SELECT key, doc::text FROM {} ORDER BY key")
            .format(ident)
            .as_bytes(None)
        )
        self.count = sql.SQL("SELECT count(*) FROM {}").format(ident).as_bytes(None)
        self.put = (
            sql.SQL(
                "INSERT INTO {} (key, doc) SELECT k, d::jsonb "
                "FROM unnest(%s::text[], %s::text[]) AS u(k, d) "
                "ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc"
            )
            .format(ident)
            .as_bytes(None)
        )
        self.delete = (
            sql.SQL("DELETE FROM {} WHERE key = ANY(%s::text[])")
            .format(ident)
            .as_bytes(None)
        )
        self.create = (
            sql.SQL(
                'CREATE TABLE IF NOT EXISTS {} (key text COLLATE "C" PRIMARY KEY, '
                "doc jsonb NOT NULL)"
            )
            .format(ident)
            .as_bytes(None)
        )


class ReadModelStatements:
    """The statements on a schema's ``projections``, ``projection_checkpoints`` and
    ``projection_parked`` tables, composed once; each document table's are
    composed on first use and kept."""

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.table
        self._composed: dict[tuple[int, int, str], DocumentStatements] = {}
        self._lock = threading.Lock()
        self.state = (
            sql.SQL("SELECT id, version, generation, building FROM {} WHERE name = %s")
            .format(t("projections"))
            .as_bytes(None)
        )
        self.lock = (
            b"SELECT set_config('idle_in_transaction_session_timeout', %s, true), "
            b"pg_advisory_xact_lock(%s, %s)"
        )
        self.checkpoint = (
            sql.SQL(
                'SELECT "offset" FROM {} WHERE name = %s AND generation = %s '
                "AND partition = %s"
            )
            .format(t("projection_checkpoints"))
            .as_bytes(None)
        )
        self.checkpoints = (
            sql.SQL(
                'SELECT partition, "offset" FROM {} '
                'WHERE name = %s AND generation = %s AND "offset" >= 0'
            )
            .format(t("projection_checkpoints"))
            .as_bytes(None)
        )
        # Moving a checkpoint on clears the failure recorded on its row, in the
        # same statement (migration 5).
        self.advance = (
            sql.SQL(
                'INSERT INTO {} (name, generation, partition, "offset") '
                "SELECT %s, %s, p, o FROM unnest(%s::int4[], %s::int8[]) AS u(p, o) "
                'ON CONFLICT (name, generation, partition) DO UPDATE SET "offset" = '
                'EXCLUDED."offset", failure = NULL'
            )
            .format(t("projection_checkpoints"))
            .as_bytes(None)
        )
        self.record_failure = (
            sql.SQL(
                'INSERT INTO {} (name, generation, partition, "offset", failure) '
                "VALUES (%s, %s, %s, -1, %s::jsonb) "
                "ON CONFLICT (name, generation, partition) DO UPDATE SET "
                "failure = EXCLUDED.failure"
            )
            .format(t("projection_checkpoints"))
            .as_bytes(None)
        )
        self.failures = (
            sql.SQL(
                "SELECT failure::text FROM {} WHERE name = %s AND generation = %s "
                "AND (failure->>'offset')::bigint > \"offset\" ORDER BY partition"
            )
            .format(t("projection_checkpoints"))
            .as_bytes(None)
        )
        self.park = (
            sql.SQL(
                'INSERT INTO {} (name, generation, partition, "offset", stream_id, '
                "event_name, error, attempts, parked_at_ms) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                'ON CONFLICT (name, generation, partition, "offset") DO UPDATE SET '
                "error = EXCLUDED.error, attempts = EXCLUDED.attempts, "
                "parked_at_ms = EXCLUDED.parked_at_ms"
            )
            .format(t("projection_parked"))
            .as_bytes(None)
        )
        self.unpark = (
            sql.SQL(
                "DELETE FROM {} WHERE name = %s AND generation = %s "
                'AND partition = %s AND "offset" = %s'
            )
            .format(t("projection_parked"))
            .as_bytes(None)
        )
        self.parked = (
            sql.SQL(
                'SELECT partition, "offset", stream_id, event_name, error, attempts, '
                "parked_at_ms FROM {} WHERE name = %s AND generation = %s "
                'ORDER BY partition, "offset"'
            )
            .format(t("projection_parked"))
            .as_bytes(None)
        )
        # Inline projections read these inside an append's transaction.
        self.live_generation = (
            sql.SQL("SELECT id, generation FROM {} WHERE name = %s")
            .format(t("projections"))
            .as_bytes(None)
        )
        self.checkpoints_of = (
            sql.SQL(
                'SELECT partition, "offset" FROM {} WHERE name = %s '
                "AND generation = %s AND partition = ANY(%s::int4[])"
            )
            .format(t("projection_checkpoints"))
            .as_bytes(None)
        )
        self.parked_streams = (
            sql.SQL(
                "SELECT DISTINCT partition, stream_id FROM {} WHERE name = %s "
                "AND generation = %s AND partition = ANY(%s::int4[])"
            )
            .format(t("projection_parked"))
            .as_bytes(None)
        )

    def documents(
        self, projection_id: int, generation: int, table: str
    ) -> DocumentStatements:
        """The statements of a projection's document table in a generation."""
        key = (projection_id, generation, table)
        found = self._composed.get(key)
        if found is None:
            found = DocumentStatements(
                self._db, table_name(projection_id, generation, table)
            )
            with self._lock:
                if len(self._composed) > 10_000:  # generations come and go
                    self._composed.clear()
                self._composed[key] = found
        return found
