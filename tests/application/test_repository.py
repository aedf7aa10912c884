"""The repository: aggregates load back as saved, at any version, and a save that
fails keeps the pending events of every aggregate it did not write."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from example_ledger.domain import Account, FundsDeposited
from framework import (
    AggregateNotFoundError,
    Application,
    ConcurrencyError,
    Position,
    UnknownEventError,
    UnserializableEventError,
)
from framework.application import Repository
from framework.store.events import NewEvent
from tests.conftest import database_url
from tests.postgres.fixtures import drop_schema, with_schema


@pytest.fixture(
    params=[
        "memory",
        "file",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    """A repository on each store: PostgreSQL appends several streams in one
    transaction, the others one stream at a time."""
    schema = None
    if request.param == "memory":
        url = "memory://"
    elif request.param == "file":
        url = f"file:{tmp_path / 'store'}"
    else:
        schema = f"fwtest_repo_{secrets.token_hex(4)}"
        url = with_schema(database_url(), schema)
    try:
        with Application(url) as app:
            yield app.repository
    finally:
        if schema is not None:
            drop_schema(schema)


def _stale(repository: Repository, account: Account) -> Account:
    """A copy of ``account`` (saved) that another save has made stale."""
    mine, theirs = (repository.load(Account, account.id) for _ in range(2))
    theirs.deposit(5)
    repository.save([theirs])
    return mine


def test_saved_aggregates_load_back_with_their_state_and_version(
    repository: Repository,
) -> None:
    account = Account.open("alice")
    account.deposit(100)
    position = repository.save([account])
    loaded = repository.load(Account, account.id)
    assert (loaded.owner, loaded.balance, loaded.version) == ("alice", 100, 2)
    partition = repository.store.partition_of(account.id)
    assert position == Position({partition: 1})
    assert account.pending_events == ()


def test_load_at_a_version_travels_back_in_time(repository: Repository) -> None:
    account = Account.open("alice")
    for amount in (10, 20, 30):
        account.deposit(amount)
    repository.save([account])
    assert repository.load(Account, account.id, version=2).balance == 10
    assert repository.load(Account, account.id, version=3).balance == 30
    with pytest.raises(AggregateNotFoundError, match=r"at version 9 .it has 4"):
        repository.load(Account, account.id, version=9)


def test_loading_an_unknown_id_raises_a_lookup_error(repository: Repository) -> None:
    with pytest.raises(AggregateNotFoundError, match="'nope' was not found") as info:
        repository.load(Account, "nope")
    assert isinstance(info.value, LookupError)


def test_saving_a_stale_copy_raises_and_keeps_its_pending_events(
    repository: Repository,
) -> None:
    account = Account.open("alice")
    repository.save([account])
    mine = _stale(repository, account)
    mine.deposit(7)
    with pytest.raises(ConcurrencyError) as info:
        repository.save([mine])
    assert (info.value.expected_version, info.value.actual_version) == (1, 2)
    assert len(mine.pending_events) == 1
    assert repository.load(Account, account.id).balance == 5


def test_save_of_several_aggregates_returns_one_position_covering_all(
    repository: Repository,
) -> None:
    accounts = [Account.open(f"owner{n}") for n in range(12)]
    position = repository.save(accounts)
    for account in accounts:
        assert account.pending_events == ()
        stored = repository.store.read_stream(account.id)[-1]
        assert position.covers({stored.partition: stored.offset})
    assert repository.store.end_position() == position


def test_save_all_returns_the_saved_events_as_stored_and_the_streams_written(
    repository: Repository,
) -> None:
    first, second = Account.open("first"), Account.open("second")
    second.deposit(5)
    written: list[str] = []
    position, saved = repository.save_all([first, second], written)
    assert written == [first.id, second.id]
    assert [(e.stream_id, e.name) for e in saved] == [
        (first.id, "ledger.AccountOpened"),
        (second.id, "ledger.AccountOpened"),
        (second.id, "ledger.FundsDeposited"),
    ]
    for envelope in saved:
        stored = repository.store.read_stream(envelope.stream_id)
        offsets = {(s.partition, s.offset) for s in stored}
        assert (envelope.partition, envelope.offset) in offsets
        assert position.covers({envelope.partition: envelope.offset})  # type: ignore[dict-item]


def test_a_conflict_in_a_save_of_several_keeps_the_events_not_written(
    repository: Repository,
) -> None:
    saved_before = Account.open("before")
    repository.save([saved_before])
    stale = _stale(repository, saved_before)
    first, last = Account.open("first"), Account.open("last")
    stale.deposit(7)
    written: list[str] = []
    with pytest.raises(ConcurrencyError):
        repository.save_all([first, stale, last], written)
    assert len(stale.pending_events) == 1
    if repository.store.atomic_multi_stream:
        # One transaction: nothing was written, every aggregate keeps its events.
        assert written == []
        assert len(first.pending_events) == 1
    else:
        # One stream at a time: those before the conflict are saved.
        assert written == [first.id]
        assert first.pending_events == ()
    assert len(last.pending_events) == 1


def test_save_encodes_every_aggregate_before_writing_any(
    repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = Account.open("first"), Account.open("second")
    second.deposit(5)
    real_encode = repository.codec.encode

    def encode(event: object) -> bytes:
        if isinstance(event, FundsDeposited):
            raise UnserializableEventError("cannot encode this one")
        return real_encode(event)  # type: ignore[arg-type]

    monkeypatch.setattr(repository.codec, "encode", encode)
    with pytest.raises(UnserializableEventError):
        repository.save([first, second])
    assert repository.store.end_position() == Position()
    assert len(first.pending_events) == 1
    assert len(second.pending_events) == 2


def test_a_lone_aggregate_that_cannot_be_encoded_keeps_its_events_and_writes_none(
    repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account.open("alice")
    account.deposit(5)
    real_encode = repository.codec.encode

    def encode(event: object) -> bytes:
        if isinstance(event, FundsDeposited):
            raise UnserializableEventError("cannot encode this one")
        return real_encode(event)  # type: ignore[arg-type]

    monkeypatch.setattr(repository.codec, "encode", encode)
    with pytest.raises(UnserializableEventError):
        repository.save([account])
    assert repository.store.end_position() == Position()
    assert len(account.pending_events) == 2
    monkeypatch.undo()
    position = repository.save([account])
    assert repository.load(Account, account.id).balance == 5
    assert repository.store.end_position() == position
    assert repository.save([account]) == Position()  # nothing pending: nothing written


def test_an_unknown_stored_event_names_its_position_and_the_registered_names(
    repository: Repository,
) -> None:
    account = Account.open("alice")
    repository.save([account])
    event_id = uuid.uuid4()
    repository.store.append(
        account.id,
        [
            NewEvent(
                event_id=event_id,
                name="ledger.Frozen",
                version=1,
                data=b"{}",
                timestamp_ms=0,
                correlation_id=str(event_id),
                causation_id=str(event_id),
            )
        ],
        expected_version=1,
    )
    with pytest.raises(UnknownEventError) as info:
        repository.load(Account, account.id)
    message = str(info.value)
    partition = repository.store.partition_of(account.id)
    assert "'ledger.Frozen' version 1" in message
    assert f"events/{partition} offset" in message
    assert "version 2)" in message
    assert "ledger.FundsDeposited v1" in message
