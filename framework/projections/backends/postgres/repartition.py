"""Repartitioning on PostgreSQL, the projections' part: each projection goes on
from the new topic's end or is emptied to replay it, in the transaction that
copies the topic, so the store and its projections switch together."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg import sql

__all__ = ["CONTINUE", "REBUILD", "live_members", "switch_projections"]

#: A projection's plan: its checkpoints covered the whole old topic; it goes on
#: from the new topic's end.
CONTINUE = "continue"
#: A projection's plan: its read model is emptied; it replays the new topic.
REBUILD = "rebuild"

Cursor = psycopg.Cursor[tuple[object, ...]]


def _t(schema: str, table: str) -> sql.Composable:
    return sql.Identifier(schema, table)


def live_members(cur: Cursor, schema: str) -> list[str]:
    """``projection/member`` for every group member whose lease runs."""
    rows = cur.execute(
        sql.SQL(
            "SELECT name, member_id FROM {} WHERE expires_at > now() "
            "ORDER BY name, member_id"
        ).format(_t(schema, "projection_members"))
    ).fetchall()
    return [f"{name}/{member}" for name, member in rows]


def switch_projections(
    cur: Cursor,
    schema: str,
    old_ends: Mapping[int, int],
    new_ends: Mapping[int, int] | None,
) -> dict[str, str]:
    """Each projection's plan: ``continue`` if its serving copy's checkpoints
    reach the end of every old partition, with no rebuild under way and no
    parked events (they name old offsets); ``rebuild`` otherwise. Given
    ``new_ends``, apply the plans: checkpoints at the new topic's ends, or the
    read model emptied with its checkpoints, dead letters and any copy being
    rebuilt dropped."""
    checkpoints, parked = (
        _t(schema, "projection_checkpoints"),
        _t(schema, "projection_parked"),
    )
    plans = {}
    for name, pid, generation, building in cur.execute(
        sql.SQL(
            "SELECT name, id, generation, building FROM {} ORDER BY name FOR UPDATE"
        ).format(_t(schema, "projections"))
    ).fetchall():
        reached = {
            int(str(p)): int(str(o))
            for p, o in cur.execute(
                sql.SQL(
                    'SELECT partition, "offset" FROM {} WHERE name = %s '
                    'AND generation = %s AND "offset" >= 0'
                ).format(checkpoints),
                (name, generation),
            ).fetchall()
        }
        has_parked = cur.execute(
            sql.SQL(
                "SELECT 1 FROM {} WHERE name = %s AND generation = %s LIMIT 1"
            ).format(parked),
            (name, generation),
        ).fetchone()
        covered = (
            building is None
            and has_parked is None
            and all(reached.get(p, -1) >= end - 1 for p, end in old_ends.items())
        )
        plans[str(name)] = CONTINUE if covered else REBUILD
        if new_ends is None:
            continue
        generations = [g for g in (generation, building) if g is not None]
        for table in (checkpoints, parked):
            cur.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE name = %s AND generation = ANY(%s)"
                ).format(table),
                (name, generations),
            )
        if covered:
            cur.executemany(
                sql.SQL(
                    'INSERT INTO {} (name, generation, partition, "offset") '
                    "VALUES (%s, %s, %s, %s)"
                ).format(checkpoints),
                [(name, generation, p, end - 1) for p, end in new_ends.items() if end],
            )
            continue
        for number in generations:
            for (found,) in cur.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s "
                "AND tablename LIKE %s ORDER BY tablename",
                (schema, f"rm\\_{pid}\\_{number}\\_%"),
            ).fetchall():
                # The serving copy's tables stay, empty; a copy being rebuilt
                # goes, as ``reset`` drops it.
                verb = "TRUNCATE {}" if number == generation else "DROP TABLE {}"
                cur.execute(sql.SQL(verb).format(_t(schema, str(found))))
        cur.execute(
            sql.SQL("UPDATE {} SET building = NULL WHERE name = %s").format(
                _t(schema, "projections")
            ),
            (name,),
        )
    return plans
