"""The ledger's commands and their handlers; a transfer credits the payee by policy."""

from __future__ import annotations

import uuid

import attrs

from example_ledger.domain import Account, TransferSent
from framework import CommandRouter, EventEnvelope, UnitOfWork

router = CommandRouter()


@attrs.frozen
class OpenAccount:
    owner: str
    #: A chosen id (for example a customer number); a new UUID if ``None``.
    account_id: str | None = None


@attrs.frozen
class Deposit:
    account_id: str
    amount: int


@attrs.frozen
class Withdraw:
    account_id: str
    amount: int


@attrs.frozen
class Transfer:
    from_account: str
    to_account: str
    amount: int


@attrs.frozen
class ReceiveTransfer:
    account_id: str
    transfer_id: str
    from_account: str
    amount: int


@router.handles(OpenAccount)
def open_account(command: OpenAccount, uow: UnitOfWork) -> str:
    account = Account.open(command.owner, command.account_id)
    uow.add(account)
    return account.id


@router.handles(Deposit)
def deposit(command: Deposit, uow: UnitOfWork) -> int:
    account = uow.load(Account, command.account_id)
    account.deposit(command.amount)
    return account.balance


@router.handles(Withdraw)
def withdraw(command: Withdraw, uow: UnitOfWork) -> int:
    account = uow.load(Account, command.account_id)
    account.withdraw(command.amount)
    return account.balance


@router.handles(Transfer)
def transfer(command: Transfer, uow: UnitOfWork) -> str:
    # Only the payer changes here; the payee is credited by the policy below, so
    # each command changes one aggregate and can always be retried safely.
    uow.load(Account, command.to_account)  # refuse unknown payees up front
    payer = uow.load(Account, command.from_account)
    transfer_id = str(uuid.uuid4())
    payer.send(transfer_id, command.to_account, command.amount)
    return transfer_id


@router.handles(ReceiveTransfer)
def receive_transfer(command: ReceiveTransfer, uow: UnitOfWork) -> None:
    payee = uow.load(Account, command.account_id)
    payee.receive(command.transfer_id, command.from_account, command.amount)


@router.reacts_to(TransferSent)
def credit_payee(sent: EventEnvelope[TransferSent]) -> ReceiveTransfer:
    return ReceiveTransfer(
        account_id=sent.event.to_account,
        transfer_id=sent.event.transfer_id,
        from_account=sent.stream_id,
        amount=sent.event.amount,
    )
