"""``make demo`` on PostgreSQL: the ledger adds up, and a second run in the same
schema continues from what the first one stored."""

from __future__ import annotations

import pytest

from tests.docs.test_docs import make_demo

pytestmark = pytest.mark.postgres


def test_make_demo_adds_up_and_a_second_run_continues_from_the_schema(
    pg_url: str,
) -> None:
    first = make_demo(pg_url)
    assert "adds up" in first
    assert "DOES NOT" not in first
    second = make_demo(pg_url)
    assert "continuing from the stored state: 12 events already stored" in second
    assert "alice    14702 /    14702" in second
    assert "adds up" in second
    assert "DOES NOT" not in second
