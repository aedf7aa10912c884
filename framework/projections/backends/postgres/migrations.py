"""The projections' tables, as numbered migrations: their state, checkpoints,
dead letters and consumer-group members."""

from __future__ import annotations

from framework.postgres.migration import Migration, SubsystemMigrations

#: Every migration of the projections' tables ever released, in order. Never edit
#: a released one: add another.
MIGRATIONS = SubsystemMigrations(
    "projections",
    (
        Migration(
            1,
            "projections: their state, checkpoints, dead letters and group members",
            (
                # ``id`` names the projection's document tables (rm_<id>_
                # <generation>_<table>): its name may be too long for a 63-byte
                # identifier.
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
                # A consumer group's members: a lease each, renewed by heartbeats,
                # and the backend holding the member's partition locks.
                """CREATE TABLE {schema}.projection_members (
                    name text NOT NULL,
                    member_id text NOT NULL,
                    backend_pid integer NOT NULL,
                    expires_at timestamptz NOT NULL,
                    PRIMARY KEY (name, member_id)
                )""",
            ),
            shared_number=2,
        ),
        Migration(
            2,
            "projection_checkpoints: the failure a projection stopped on, "
            "per partition",
            (
                # Kept on the checkpoint row (offset -1 when nothing is applied yet)
                # so that the upsert moving the checkpoint on clears it in the same
                # statement; a null column adds nothing to the row, and the column
                # is not indexed, so those updates stay HOT.
                "ALTER TABLE {schema}.projection_checkpoints ADD COLUMN failure jsonb",
            ),
            shared_number=5,
        ),
    ),
)
