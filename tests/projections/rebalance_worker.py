"""Processes for the rebalance tests, and the projection they check:
``python -m tests.projections.rebalance_worker member|write URL ...``.

A ``member`` runs the ``stream_order`` projection as one member of its consumer
group and prints, flushed, the lines the test synchronises on::

    joined MEMBER
    owns MEMBER [0, 1, 2]           after every rebalance that moved something
    applied MEMBER {"0": 41, ...}   after each commit: what this process committed
    hanging MEMBER                  a handler blocks inside an open transaction,
                                    until a line comes on stdin
    resumed MEMBER                  that handler goes on
    left MEMBER                     it left its group cleanly (after SIGTERM)

A ``write`` process opens accounts, then, for each line ``N`` it reads, makes N
saves of one to three deposits to its accounts and prints ``wrote N``; at the end
of its input it prints the version of every account it wrote, as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
from types import FrameType
from typing import Any

from example_ledger.domain import Account, AccountOpened, FundsDeposited
from framework import Application, AppSettings
from framework.domain import EventEnvelope
from framework.projections import Projection, RunnerSettings, Transaction, on
from framework.projections.member import GroupSettings
from framework.projections.ports import ConsumerGroup
from framework.store.position import Position

#: Partitions of the events topic in every rebalance test.
PARTITIONS = 6


class StreamOrder(Projection):
    """Per stream, the last version applied and how many events were applied;
    a row in ``violations`` for every event seen out of order (a version at or
    below the last one applied: a repeat or a step back) or after a gap."""

    name = "stream_order"
    tables = ("streams", "violations")
    #: The handler call after which a member started with ``--hang-after``
    #: blocks inside its open transaction, its changes made there (0: never).
    hang_after = 0
    calls = 0
    #: The member id this process prints.
    member = ""

    @on(AccountOpened, FundsDeposited)
    def _seen(self, e: EventEnvelope[Any], tx: Transaction) -> None:
        streams = tx.table("streams")
        row = streams.get(e.stream_id) or {"last": 0, "applied": 0, "amount": 0}
        version = e.stream_version
        if version != row["last"] + 1:
            kind = "repeat" if version <= row["last"] else "gap"
            tx.table("violations").put(
                f"{e.stream_id}@{version}:{e.partition}/{e.offset}",
                {"kind": kind, "after": row["last"], "version": version},
            )
        row["last"] = max(row["last"], version)
        row["applied"] += 1
        row["amount"] += getattr(e.event, "amount", 0)
        streams.put(e.stream_id, row)
        type(self).calls += 1
        if type(self).calls == self.hang_after:
            print(f"hanging {self.member}", flush=True)
            sys.stdin.readline()
            print(f"resumed {self.member}", flush=True)


class _Announcing:
    """A consumer group that prints what it owns whenever a rebalance moves it."""

    def __init__(self, group: ConsumerGroup) -> None:
        self._group = group
        self.member_id = group.member_id

    def join(self) -> None:
        self._group.join()
        print(f"joined {self.member_id}", flush=True)

    @property
    def owned(self) -> list[int]:
        return self._group.owned

    def rebalance(self) -> tuple[list[int], list[int]]:
        taken, released = self._group.rebalance()
        if taken or released:
            print(f"owns {self.member_id} {json.dumps(self.owned)}", flush=True)
        return taken, released

    def leave(self) -> None:
        self._group.leave()


def _stop_on_sigterm(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)


def member(url: str, member_id: str, batch: int, hang_after: int) -> None:
    stop = threading.Event()
    _stop_on_sigterm(stop)
    StreamOrder.hang_after = hang_after
    StreamOrder.member = member_id
    with Application(url, settings=AppSettings(partitions=PARTITIONS)) as app:
        app.project(StreamOrder(), settings=RunnerSettings(batch_size=batch))

        # The board announces after each commit the offsets this process has
        # committed so far (its runner's, merged).
        def announce(name: str, position: Position) -> None:
            line = json.dumps({str(p): o for p, o in sorted(position.items())})
            print(f"applied {member_id} {line}", flush=True)

        app.board.subscribe(announce)
        group_member = app.group_member(
            StreamOrder.name,
            member_id=member_id,
            settings=GroupSettings(heartbeat=0.05, lease=2.0),
        )
        group_member.group = _Announcing(group_member.group)
        group_member.run(stop)
    print(f"left {member_id}", flush=True)


def write(url: str, accounts: int, seed: int) -> None:
    rng = random.Random(seed)
    with Application(url, settings=AppSettings(partitions=PARTITIONS)) as app:
        opened = [Account.open(f"owner-{seed}-{n}") for n in range(accounts)]
        app.save(*opened)
        for line in sys.stdin:
            saves = int(line)
            for _ in range(saves):
                account = rng.choice(opened)
                for _ in range(rng.randint(1, 3)):
                    account.deposit(rng.randint(1, 100))
                app.save(account)
            print(f"wrote {saves}", flush=True)
        versions = {a.id: app.store.stream_version(a.id) for a in opened}
    print(json.dumps(versions), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="rebalance_worker")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("member")
    run.add_argument("url")
    run.add_argument("member_id")
    run.add_argument("--batch", type=int, default=5)
    run.add_argument("--hang-after", type=int, default=0)
    writer = commands.add_parser("write")
    writer.add_argument("url")
    writer.add_argument("--accounts", type=int, default=30)
    writer.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "member":
        member(args.url, args.member_id, args.batch, args.hang_after)
    else:
        write(args.url, args.accounts, args.seed)


if __name__ == "__main__":
    main()
