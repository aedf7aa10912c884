"""A child process for the atomic-save tests: transfers between accounts in
different partitions, each saved as two aggregates in one ``app.save``.

``python transfer_worker.py URL RUN`` prints ``ready``, then the id of every
transfer whose save returned, until it is killed.
"""

from __future__ import annotations

import random
import sys

from example_ledger.domain import Account
from framework import Application, AppSettings
from framework.errors import AggregateNotFoundError

#: Accounts, each opened with this much: transfers of 1 never run out.
ACCOUNTS = 8
OPENING = 1_000_000
SETTINGS = AppSettings(partitions=4)


def account_ids() -> list[str]:
    return [f"account-{n}" for n in range(ACCOUNTS)]


def main(url: str, run: int) -> None:
    rng = random.Random(run)
    with Application(url, settings=SETTINGS) as app:
        for account_id in account_ids():
            try:
                app.load(Account, account_id)
            except AggregateNotFoundError:
                account = Account.open(account_id, account_id=account_id)
                account.deposit(OPENING)
                app.save(account)
        pairs = [
            (a, b)
            for a in account_ids()
            for b in account_ids()
            if app.store.partition_of(a) != app.store.partition_of(b)
        ]
        print("ready", flush=True)
        number = 0
        while True:
            source, target = rng.choice(pairs)
            transfer_id = f"{run}:{number}"
            debit = app.load(Account, source)
            credit = app.load(Account, target)
            debit.send(transfer_id, target, 1)
            credit.receive(transfer_id, source, 1)
            app.save(debit, credit)
            print(transfer_id, flush=True)
            number += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
