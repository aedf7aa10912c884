"""The ledger's events, its one aggregate (``Account``) and its business errors."""

from __future__ import annotations

from framework import Aggregate, DomainError, DomainEvent, event, when


@event("ledger.AccountOpened", version=1)
class AccountOpened(DomainEvent):
    owner: str


@event("ledger.FundsDeposited", version=1)
class FundsDeposited(DomainEvent):
    amount: int


@event("ledger.FundsWithdrawn", version=1)
class FundsWithdrawn(DomainEvent):
    amount: int


@event("ledger.TransferSent", version=1)
class TransferSent(DomainEvent):
    transfer_id: str
    to_account: str
    amount: int


@event("ledger.TransferReceived", version=1)
class TransferReceived(DomainEvent):
    transfer_id: str
    from_account: str
    amount: int


class InvalidAmountError(DomainError, ValueError):
    def __init__(self, amount: int) -> None:
        self.amount = amount
        super().__init__(f"amounts are positive whole cents, got {amount}")


class InsufficientFundsError(DomainError):
    def __init__(self, account_id: str, balance: int, amount: int) -> None:
        self.account_id = account_id
        self.balance = balance
        self.amount = amount
        super().__init__(
            f"account {account_id} holds {balance} cents and cannot pay out {amount}; "
            "nothing was recorded"
        )


class Account(Aggregate):
    """An account's balance in cents. It never goes below zero."""

    owner: str = ""
    balance: int = 0

    @classmethod
    def open(cls, owner: str, account_id: str | None = None) -> Account:
        account = cls(account_id)
        account.record(AccountOpened(owner=owner))
        return account

    def deposit(self, amount: int) -> None:
        _check_amount(amount)
        self.record(FundsDeposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        _check_amount(amount)
        if amount > self.balance:
            raise InsufficientFundsError(self.id, self.balance, amount)
        self.record(FundsWithdrawn(amount=amount))

    def send(self, transfer_id: str, to_account: str, amount: int) -> None:
        _check_amount(amount)
        if to_account == self.id:
            raise DomainError(f"account {self.id} cannot transfer to itself")
        if amount > self.balance:
            raise InsufficientFundsError(self.id, self.balance, amount)
        self.record(
            TransferSent(transfer_id=transfer_id, to_account=to_account, amount=amount)
        )

    def receive(self, transfer_id: str, from_account: str, amount: int) -> None:
        self.record(
            TransferReceived(
                transfer_id=transfer_id, from_account=from_account, amount=amount
            )
        )

    @when(AccountOpened)
    def _opened(self, e: AccountOpened) -> None:
        self.owner = e.owner

    @when(FundsDeposited, TransferReceived)
    def _credited(self, e: FundsDeposited | TransferReceived) -> None:
        self.balance += e.amount

    @when(FundsWithdrawn, TransferSent)
    def _debited(self, e: FundsWithdrawn | TransferSent) -> None:
        self.balance -= e.amount


def _check_amount(amount: int) -> None:
    if type(amount) is not int or amount <= 0:
        raise InvalidAmountError(amount)
