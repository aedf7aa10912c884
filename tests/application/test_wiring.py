"""The wiring: a store URL picks the log, the event store, the read-model store and
the consumer group of every backend; an unknown scheme is a clear error."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from example_ledger.projections import Balances
from framework import Application, AppSettings, ConfigurationError
from framework.application.settings import StoreNotFoundError, existing_stores_only
from framework.application.wiring import (
    GroupSettings,
    open_log,
    open_read_models,
    open_store,
    running_group_members,
)
from framework.log.backends.memory import MemoryLog
from framework.log.backends.segments import SegmentLog
from framework.projections.backends.file_group import FileGroup
from framework.projections.backends.memory import MemoryReadModelStore
from framework.projections.backends.sqlite import SQLiteReadModelStore
from framework.store.event_store import LogEventStore
from tests.conftest import database_url
from tests.postgres.fixtures import drop_schema, with_schema


def test_memory_urls_wire_a_memory_log_and_memory_read_models() -> None:
    with Application("memory://") as app:
        assert isinstance(app.store, LogEventStore)
        assert isinstance(app.store.log, MemoryLog)
        assert isinstance(app.read_models, MemoryReadModelStore)


def test_file_urls_wire_segments_and_sqlite_read_models_in_the_folder(
    tmp_path: Path,
) -> None:
    with Application(f"file:{tmp_path / 'store'}") as app:
        assert isinstance(app.store, LogEventStore)
        assert isinstance(app.store.log, SegmentLog)
        assert isinstance(app.read_models, SQLiteReadModelStore)
    assert (tmp_path / "store" / "read_models.sqlite").is_file()
    assert (tmp_path / "store" / "log").is_dir()


def test_an_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown store URL scheme 'redis'"):
        open_log("redis://localhost")
    with pytest.raises(ConfigurationError, match="unknown store URL scheme 'redis'"):
        open_store("redis://localhost", AppSettings())
    with pytest.raises(ConfigurationError, match="no default read-model store"):
        open_read_models(None, AppSettings())


def test_a_missing_file_store_is_not_created_within_existing_stores_only(
    tmp_path: Path,
) -> None:
    with existing_stores_only(), pytest.raises(StoreNotFoundError):
        open_store(f"file:{tmp_path / 'none'}", AppSettings())
    assert not (tmp_path / "none").exists()


def test_a_file_store_s_members_coordinate_in_its_groups_folder(
    tmp_path: Path,
) -> None:
    with Application(f"file:{tmp_path / 'store'}") as app:
        app.project(Balances())
        member = app.group_member("balances", member_id="one")
        assert isinstance(member.group, FileGroup)
        assert member.group.directory == tmp_path / "store" / "groups" / "balances"
        assert member.signal is None
        member.group.join()
        try:
            assert running_group_members(tmp_path / "store") == ["balances/one"]
        finally:
            member.group.leave()
    assert running_group_members(tmp_path / "store") == []


def test_members_off_a_file_store_need_a_group_dir(tmp_path: Path) -> None:
    with Application("memory://") as app:
        app.project(Balances())
        with pytest.raises(ConfigurationError, match="--group-dir is needed"):
            app.group_member("balances")
        member = app.group_member("balances", group_dir=tmp_path)
        assert isinstance(member.group, FileGroup)
        assert member.group.directory == tmp_path / "balances"


@pytest.fixture
def pg_app() -> Iterator[Application]:
    schema = f"fwtest_wiring_{secrets.token_hex(4)}"
    try:
        with Application(with_schema(database_url(), schema)) as app:
            yield app
    finally:
        drop_schema(schema)


@pytest.mark.postgres
def test_postgresql_urls_wire_the_native_store_and_database_groups(
    pg_app: Application, tmp_path: Path
) -> None:
    from framework.projections.backends.postgres import (
        PostgresAppendSignal,
        PostgresGroup,
        PostgresReadModelStore,
    )
    from framework.store.backends.postgres import PostgresEventStore

    assert isinstance(pg_app.store, PostgresEventStore)
    read_models = pg_app.read_models
    assert isinstance(read_models, PostgresReadModelStore)
    pg_app.project(Balances())
    member = pg_app.group_member("balances", settings=GroupSettings(lease=2.0))
    assert isinstance(member.group, PostgresGroup)
    assert member.group.lease == 2.0
    assert isinstance(member.signal, PostgresAppendSignal)
    member.signal.close()
    # A stopped member's transaction must not outlive its lease.
    assert read_models.idle_timeout == 2.0
    # A group folder, if given, is used on PostgreSQL too.
    member = pg_app.group_member("balances", group_dir=tmp_path)
    assert isinstance(member.group, FileGroup)


def test_an_unknown_projection_is_named_with_the_registered_ones() -> None:
    from framework.application import UnknownProjectionError

    with Application("memory://") as app:
        app.project(Balances())
        with pytest.raises(UnknownProjectionError, match="balances"):
            app.group_member("balance")
