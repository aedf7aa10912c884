"""Consumer groups on PostgreSQL: members of one projection share its partitions
through the database, one partition to one member.

Each member keeps a connection of its own. On it, it holds a session-level advisory
lock per partition it owns, which dies with the connection, and a row in
``projection_members`` with its backend's pid and a lease it renews at every
heartbeat. A member is live while its lease runs and its backend exists: a killed
process's backend ends at once (the socket closes), so its partitions move at the
next heartbeat of the others; a member that hangs with its connection open loses
its lease after ``lease`` seconds, and the first member to notice terminates its
backend, which frees its locks. Every member computes the same assignment from the
sorted live members (``target_assignment``) and moves only what must move.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
import zlib
from typing import Any

import psycopg
from psycopg import sql

from framework.errors import ConfigurationError, StoreError
from framework.postgres.database import Database
from framework.postgres.errors import StoreConnectionError, translated
from framework.projections.assignment import target_assignment

logger = logging.getLogger("framework.projections")


def group_key(schema: str, name: str) -> int:
    """The first int of the partition locks' advisory keys (the second is the
    partition)."""
    return zlib.crc32(f"framework.group:{schema}:{name}".encode()) - (1 << 31)


class PostgresGroup:
    """One member of a projection's consumer group, coordinated in ``db``'s
    schema. ``lease`` is how long a member may go without a heartbeat before the
    others take it for dead (heartbeats come from ``rebalance``)."""

    def __init__(
        self,
        db: Database,
        name: str,
        partitions: int,
        *,
        member_id: str | None = None,
        lease: float = 10.0,
        heartbeat: float = 0.2,
    ) -> None:
        if not 0 < heartbeat < lease:
            raise ConfigurationError(
                f"a group needs 0 < heartbeat < lease, got heartbeat {heartbeat} s "
                f"and lease {lease} s"
            )
        self.heartbeat = heartbeat
        self.db = db
        self.name = name
        self.partitions = partitions
        self.member_id = member_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self._key = group_key(db.schema, name)
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._owned: set[int] = set()
        # The connection is shared by the member's thread and the heartbeat's.
        self._mutex = threading.RLock()
        self._beating: threading.Event | None = None
        members = db.table("projection_members")
        self._q_claim = sql.SQL(
            "INSERT INTO {m} (name, member_id, backend_pid, expires_at) "
            "VALUES (%(name)s, %(member)s, pg_backend_pid(), "
            "now() + %(lease)s * interval '1 second') "
            "ON CONFLICT (name, member_id) DO UPDATE SET "
            "backend_pid = EXCLUDED.backend_pid, expires_at = EXCLUDED.expires_at "
            "WHERE {m}.backend_pid = pg_backend_pid() OR {m}.expires_at < now() "
            "OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
            "WHERE a.pid = {m}.backend_pid) "
            "RETURNING member_id"
        ).format(m=members)
        # Drops the dead (backend gone) and the expired; the expired ones'
        # backends may live on, holding locks: terminate those.
        self._q_evict = sql.SQL(
            "WITH gone AS (DELETE FROM {m} WHERE name = %(name)s "
            "AND (expires_at < now() OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
            "WHERE a.pid = {m}.backend_pid)) RETURNING member_id, backend_pid) "
            "SELECT member_id, backend_pid, "
            "CASE WHEN backend_pid <> pg_backend_pid() "
            "AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = backend_pid) "
            "THEN pg_terminate_backend(backend_pid) END FROM gone"
        ).format(m=members)
        self._q_members = sql.SQL(
            "SELECT member_id FROM {} WHERE name = %(name)s ORDER BY member_id"
        ).format(members)
        self._q_leave = sql.SQL(
            "DELETE FROM {} WHERE name = %(name)s AND member_id = %(member)s "
            "AND backend_pid = pg_backend_pid()"
        ).format(members)

    @property
    def _params(self) -> dict[str, Any]:
        return {"name": self.name, "member": self.member_id, "lease": self.lease}

    def join(self) -> None:
        """Connect, register, and start renewing the lease from a thread of its
        own (so that a member busy with a long batch, or waiting for a lock,
        keeps it); raises ``ConfigurationError`` if a live member has this id."""
        with self._mutex, translated(self.db.url):
            self._conn = psycopg.connect(self.db.url.conninfo, autocommit=True)
            self._claim()
        if self._beating is None:
            self._beating = threading.Event()
            threading.Thread(
                target=self._beat,
                args=(self._beating,),
                name=f"heartbeat {self.name}/{self.member_id}",
                daemon=True,
            ).start()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat):
            try:
                with self._mutex:
                    if self._conn is not None and not self._conn.closed:
                        self.live_members()
            except (StoreError, ConfigurationError) as exc:
                # The member's own rebalance notices and rejoins.
                logger.warning("member %s missed a heartbeat: %s", self.member_id, exc)

    def _claim(self) -> None:
        assert self._conn is not None
        if self._conn.execute(self._q_claim, self._params).fetchone() is None:
            self._conn.close()
            self._conn = None
            raise ConfigurationError(
                f"member id {self.member_id!r} of projection {self.name!r} is in use "
                "by a live member; give each member its own id"
            )

    def live_members(self) -> list[str]:
        """Renew this member's lease, evict dead and expired members, and return
        the live ones, sorted."""
        conn = self._connection()
        with self._mutex, translated(self.db.url):
            self._claim()
            for member, pid, terminated in conn.execute(
                self._q_evict, self._params
            ).fetchall():
                logger.info(
                    "projection %s: member %s (backend %s) is gone%s",
                    self.name,
                    member,
                    pid,
                    "; terminated its hung session" if terminated else "",
                )
            rows = conn.execute(self._q_members, self._params).fetchall()
        return [str(r[0]) for r in rows]

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None:
            raise RuntimeError("join() the group first")
        return self._conn

    @property
    def owned(self) -> list[int]:
        return sorted(self._owned)

    def rebalance(self) -> tuple[list[int], list[int]]:
        """Heartbeat, then release what is no longer ours and take what is ours and
        free; return (taken, released). Partitions that stay put are untouched.

        If this member's connection was lost (its locks with it), it rejoins and
        reports everything it owned as released."""
        try:
            with self._mutex:
                return self._rebalance()
        except StoreConnectionError as exc:
            logger.warning(
                "projection %s: member %s lost its connection (%s); rejoining",
                self.name,
                self.member_id,
                exc,
            )
            released = self.owned
            self._owned.clear()
            if self._conn is not None:
                self._conn.close()
            self.join()
            with self._mutex:
                taken, _ = self._rebalance()
            return taken, released

    def _rebalance(self) -> tuple[list[int], list[int]]:
        live = self.live_members()
        mine = set(target_assignment(live, self.partitions).get(self.member_id, []))
        conn = self._connection()
        released = sorted(self._owned - mine)
        taken: list[int] = []
        with translated(self.db.url):
            for partition in released:
                conn.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", (self._key, partition)
                )
                self._owned.discard(partition)
            for partition in sorted(mine - self._owned):
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (self._key, partition)
                ).fetchone()
                if row is not None and row[0]:
                    self._owned.add(partition)
                    taken.append(partition)
        if taken or released:
            logger.info(
                "member %s took %s and released %s; owns %s",
                self.member_id,
                taken,
                released,
                self.owned,
            )
        return taken, released

    def leave(self) -> None:
        """Release everything and deregister. Idempotent."""
        if self._beating is not None:
            self._beating.set()
            self._beating = None
        with self._mutex:
            conn, self._conn = self._conn, None
            self._owned.clear()
        if conn is None:
            return
        try:
            with translated(self.db.url):
                conn.execute(self._q_leave, self._params)
                conn.execute("SELECT pg_advisory_unlock_all()")
        except StoreError as exc:
            # The locks die with the connection anyway, and the row with its lease.
            logger.warning("member %s left uncleanly: %s", self.member_id, exc)
        finally:
            conn.close()
