"""The tables of SQLite read models and the statements on them, each written once."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS fw_projections (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    building INTEGER
);
CREATE TABLE IF NOT EXISTS fw_checkpoints (
    name TEXT NOT NULL,
    generation INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    failure TEXT,
    PRIMARY KEY (name, generation, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fw_parked (
    name TEXT NOT NULL,
    generation INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    stream_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    parked_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, generation, partition, "offset")
) WITHOUT ROWID;
"""

#: Files made before failures were recorded lack the column: added on open.
ADD_FAILURE = "ALTER TABLE fw_checkpoints ADD COLUMN failure TEXT"
#: A failure is kept on its partition's checkpoint row (offset -1 if nothing is
#: applied yet), so that the ``INSERT OR REPLACE`` that moves the checkpoint on
#: clears it at no cost.
RECORD_FAILURE = (
    'INSERT INTO fw_checkpoints (name, generation, partition, "offset", failure) '
    "VALUES (?, ?, ?, -1, ?) ON CONFLICT (name, generation, partition) "
    "DO UPDATE SET failure = excluded.failure"
)

PARK = (
    "INSERT OR REPLACE INTO fw_parked (name, generation, partition, "
    '"offset", stream_id, event_name, error, attempts, parked_at_ms) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UNPARK = (
    "DELETE FROM fw_parked WHERE name = ? AND generation = ? AND "
    'partition = ? AND "offset" = ?'
)


def table_prefix(name: str, generation: int) -> str:
    # ':' cannot occur in projection or table names, so one projection's prefix
    # never matches another's tables.
    return f"rm:{name}:{generation}:"


def table_name(name: str, generation: int, table: str) -> str:
    # Projection and table names are checked against [a-z][a-z0-9_]* when the
    # projection class is declared, so quoting them is safe; SQLite cannot bind
    # identifiers as parameters.
    return f'"{table_prefix(name, generation)}{table}"'


def create_schema(connection: sqlite3.Connection) -> None:
    """Create the shared tables if missing, and add what older files lack."""
    connection.executescript(SCHEMA)
    columns = {
        row[1] for row in connection.execute("PRAGMA table_info(fw_checkpoints)")
    }
    if "failure" not in columns:
        try:
            connection.execute(ADD_FAILURE)
        except sqlite3.OperationalError:
            # Another process added it first ("duplicate column").
            columns = {
                row[1]
                for row in connection.execute("PRAGMA table_info(fw_checkpoints)")
            }
            if "failure" not in columns:
                raise
