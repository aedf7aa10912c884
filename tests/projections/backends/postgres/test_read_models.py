"""PostgreSQL read models pass the read-model contract, share the event store's
pool, and keep queries on a whole generation while a rebuild swaps it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from framework import Application
from framework.errors import ProjectionError
from framework.projections.backends.postgres import PostgresReadModelStore
from framework.projections.ports import ReadModelStore
from framework.testing.read_model_contract import ReadModelStoreContract

pytestmark = pytest.mark.postgres


class TestPostgresReadModelStore(ReadModelStoreContract):
    @pytest.fixture
    def read_models(self, pg_url: str) -> Iterator[ReadModelStore]:
        store = PostgresReadModelStore(pg_url)
        yield store
        store.close()


def test_a_postgresql_application_keeps_read_models_in_its_own_database(
    pg_url: str,
) -> None:
    with Application(pg_url) as app:
        read_models = app.read_models
        assert isinstance(read_models, PostgresReadModelStore)
        assert read_models.db is app.store.db  # type: ignore[attr-defined]


def test_reading_a_projection_that_was_never_run_says_so(pg_url: str) -> None:
    store = PostgresReadModelStore(pg_url)
    try:
        with pytest.raises(ProjectionError, match="no read model"):
            store.table("nothing", "docs")
    finally:
        store.close()


def test_queries_during_a_rebuild_see_the_old_model_or_the_new_one_whole(
    pg_url: str,
) -> None:
    store = PostgresReadModelStore(pg_url)
    other = PostgresReadModelStore(pg_url)  # another process's view
    tables = ("docs",)
    try:
        store.ensure("proj", 1, tables)
        with store.transaction("proj", 1) as tx:
            for n in range(50):
                tx.table("docs").put(f"k{n}", 1)
        seen: set[int] = set()
        stop = threading.Event()
        errors: list[BaseException] = []

        def query() -> None:
            try:
                while not stop.is_set():
                    docs = dict(other.table("proj", "docs").items())
                    assert len(docs) == 50
                    seen.update(docs.values())
                    assert len(set(docs.values())) == 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        thread = threading.Thread(target=query)
        thread.start()
        for version in (2, 3, 4):
            building = store.begin_rebuild("proj", tables)
            for n in range(50):
                with store.transaction("proj", building) as tx:
                    tx.table("docs").put(f"k{n}", version)
            store.finish_rebuild("proj", building, version)
        stop.set()
        thread.join()
        assert not errors, errors
        assert other.table("proj", "docs").get("k0") == 4
    finally:
        other.close()
        store.close()
