"""The application's key flows on ``Application("postgresql://...")``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import attrs
import pytest

from example_ledger.commands import Deposit, OpenAccount, Transfer, router
from example_ledger.domain import Account, FundsDeposited
from framework import (
    AggregateNotFoundError,
    Application,
    AppSettings,
    CommandRouter,
    ConcurrencyError,
    Position,
    RetryPolicy,
    UnitOfWork,
    UnknownEventError,
)
from framework.store.backends.postgres import DEFAULT_PARTITIONS, PostgresEventStore
from framework.store.events import NewEvent

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(pg_url: str) -> Iterator[Application]:
    with Application(pg_url, router=router) as app:
        yield app


def test_a_postgresql_url_opens_the_native_store_with_atomic_saves(
    app: Application,
) -> None:
    assert isinstance(app.store, PostgresEventStore)
    assert app.store.atomic_multi_stream
    assert app.store.partitions == DEFAULT_PARTITIONS == 64


def test_saved_aggregates_load_back_with_their_state_and_version(
    app: Application,
) -> None:
    account = Account.open("alice")
    account.deposit(100)
    position = app.save(account)
    loaded = app.load(Account, account.id)
    assert (loaded.owner, loaded.balance, loaded.version) == ("alice", 100, 2)
    assert position == Position({app.store.partition_of(account.id): 1})


def test_load_at_a_version_travels_back_in_time(app: Application) -> None:
    account = Account.open("alice")
    for amount in (10, 20, 30):
        account.deposit(amount)
    app.save(account)
    assert app.load(Account, account.id, version=2).balance == 10
    assert app.load(Account, account.id, version=3).balance == 30
    with pytest.raises(AggregateNotFoundError, match=r"at version 9 .it has 4"):
        app.load(Account, account.id, version=9)


def test_an_unregistered_stored_event_is_named_with_its_position(
    app: Application,
) -> None:
    account = Account.open("alice")
    app.save(account)
    event_id = uuid.uuid4()
    frozen = NewEvent(event_id, "ledger.Frozen", 1, b"{}", 0, "c", "c")
    app.store.append(account.id, [frozen], expected_version=1)
    with pytest.raises(UnknownEventError) as info:
        app.load(Account, account.id)
    partition = app.store.partition_of(account.id)
    # Loads read three columns; the error still says where the event is stored.
    assert f"events/{partition} offset 1 (stream {account.id!r} version 2)" in str(
        info.value
    )


def test_saving_a_stale_copy_raises_and_keeps_its_pending_events(
    app: Application,
) -> None:
    account = Account.open("alice")
    app.save(account)
    mine, theirs = app.load(Account, account.id), app.load(Account, account.id)
    theirs.deposit(5)
    app.save(theirs)
    mine.deposit(7)
    with pytest.raises(ConcurrencyError) as info:
        app.save(mine)
    assert (info.value.expected_version, info.value.actual_version) == (1, 2)
    assert len(mine.pending_events) == 1
    assert app.load(Account, account.id).balance == 5


def test_a_save_of_several_aggregates_writes_all_or_none(app: Application) -> None:
    stale = Account.open("stale")
    app.save(stale)
    app.save(_bumped(app, stale))
    fresh = Account.open("fresh")
    stale.deposit(3)
    before = app.end_position()
    with pytest.raises(ConcurrencyError):
        app.save(fresh, stale)
    assert app.end_position() == before
    assert len(fresh.pending_events) == 1
    assert len(stale.pending_events) == 1
    position = app.save(*(Account.open(f"o{n}") for n in range(12)))
    assert app.end_position() == before.merge(position)


def _bumped(app: Application, account: Account) -> Account:
    other = app.load(Account, account.id)
    other.deposit(1)
    return other


def test_handle_with_a_policy_saves_both_accounts(app: Application) -> None:
    alice = app.handle(OpenAccount("alice")).value
    bob = app.handle(OpenAccount("bob")).value
    app.handle(Deposit(alice, 100))
    result = app.handle(Transfer(alice, bob, 40), correlation_id="request-42")
    assert app.load(Account, alice).balance == 60
    assert app.load(Account, bob).balance == 40
    received = app.read_stream(bob)[-1]
    assert received.correlation_id == "request-42"
    assert result.position.covers(
        {received.partition: received.offset}  # type: ignore[dict-item]
    )


@attrs.frozen
class Contended:
    account_id: str
    conflicts: int


def test_a_conflicting_command_is_retried_on_a_fresh_load(pg_url: str) -> None:
    local = CommandRouter()
    local.include(router)
    settings = AppSettings(command_retry=RetryPolicy(max_attempts=5, jitter=False))
    with Application(pg_url, router=local, settings=settings) as app:

        @local.handles(Contended)
        def contended(command: Contended, uow: UnitOfWork) -> int:
            account = uow.load(Account, command.account_id)
            account.deposit(10)
            if uow.attempt <= command.conflicts:
                app.handle(Deposit(command.account_id, 1))
            return account.balance

        account_id = app.handle(OpenAccount("alice")).value
        result = app.handle(Contended(account_id, conflicts=2))
        assert result.attempts == 3
        assert app.load(Account, account_id).balance == 12


def test_replay_decodes_every_event_in_partition_order(app: Application) -> None:
    ids = [app.handle(OpenAccount(f"o{n}")).value for n in range(5)]
    for account_id in ids:
        app.handle(Deposit(account_id, 3))
    events = list(app.iter_all_events())
    assert len(events) == 10
    assert sum(e.event.amount for e in events if isinstance(e.event, FundsDeposited))
    for partition in range(app.store.partitions):
        offsets = [e.offset for e in app.iter_events(partition)]
        assert offsets == list(range(len(offsets)))


def test_a_second_application_on_the_same_schema_keeps_the_partition_count(
    pg_url: str,
) -> None:
    with Application(pg_url, settings=AppSettings(partitions=3)) as first:
        account = Account.open("alice")
        first.save(account)
    with Application(pg_url, settings=AppSettings(partitions=3)) as second:
        assert second.store.partitions == 3
        assert second.load(Account, account.id).owner == "alice"
