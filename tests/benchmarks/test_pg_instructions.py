"""``benchmarks.pg_instructions`` feeds PostgreSQL statements that must keep up with
the migrations and the store's append; they run here on the real server."""

from __future__ import annotations

import psycopg
import pytest

from benchmarks.pg_instructions import append_execute, append_prepare, setup_sql
from tests.conftest import database_url

pytestmark = pytest.mark.postgres


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";\n\n") if s.strip()]


def test_the_counted_statements_run_and_append_gaplessly(schema: str) -> None:
    prepare, names = append_prepare(schema)
    script = setup_sql("", schema) + prepare
    script += "".join(append_execute(names, i) for i in range(16))
    offsets = []
    with psycopg.connect(database_url(), autocommit=True) as conn:
        for statement in _statements(script):
            cursor = conn.execute(statement)
            if statement.startswith("EXECUTE"):
                offsets += cursor.fetchall()
        conn.execute("DEALLOCATE ALL")
    # Sixteen new streams over eight partitions: offsets 0 and 1 of each (a new
    # stream's single event is its version 1, so its offset and stamp come back).
    assert sorted(o for o, _ in offsets) == sorted(
        offset for offset in (0, 1) for _ in range(8)
    )
    stamps = [stamp for _, stamp in offsets]
    assert len(set(stamps)) == 16  # one from the sequence each
