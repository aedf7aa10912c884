"""Atomic appends across partitions on segment files, as Kafka's transactions.

A transaction holds the write locks of its partitions and of the coordinator (the
one partition of the internal ``__transactions`` topic) from its first write to its
last. Its id is the coordinator's end offset, where its commit record will go. It
writes one batch per partition, marked ``TRANSACTIONAL`` with that id, fsyncs them,
then appends the commit record (the partitions and base offsets it wrote) to the
coordinator and fsyncs it: that append is the instant every batch becomes visible.

Readers stop before a partition's last batch while it is transactional and its
commit is undecided (the last stable offset). Nobody appends after such a batch
without deciding it first, under the partition's lock:

- a commit record at the transaction's id that names this batch: committed;
- anything else: the writer is gone without committing (it would hold the lock),
  so the batch is aborted, noted in the partition's ``aborted.txns`` file before
  anything is appended after it, and its offsets read as void records.

So every transactional batch that is not a partition's last is decided: aborted
if ``aborted.txns`` names it, committed otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from framework.errors import CorruptLogError
from framework.files import sync_dir

#: The internal topic of commit records; listed by no ``topics()``.
COORDINATOR = "__transactions"
#: A partition's aborted transactional batches, one ``base last txn-id`` per line.
ABORTED_FILE = "aborted.txns"


class TailTxn:
    """A partition's last batch, when it is transactional: its commit may still
    be undecided (``committed`` False)."""

    __slots__ = ("base", "committed", "last", "txn_id")

    def __init__(self, txn_id: int, base: int, last: int) -> None:
        self.txn_id = txn_id
        self.base = base
        self.last = last
        self.committed = False


def commit_record(topic: str, parts: list[tuple[int, int, int]]) -> bytes:
    """The coordinator's record of a commit: (partition, base, last) per batch."""
    return json.dumps({"topic": topic, "parts": [list(p) for p in parts]}).encode()


def commits(value: bytes, topic: str, partition: int, base: int) -> bool:
    """Whether the commit record ``value`` names the batch at ``base``."""
    try:
        stored = json.loads(value)
        return stored["topic"] == topic and any(
            p[0] == partition and p[1] == base for p in stored["parts"]
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise CorruptLogError(
            f"a commit record of the {COORDINATOR} topic is unreadable ({exc}); "
            "only the log writes that topic"
        ) from None


def load_aborted(directory: Path) -> list[tuple[int, int]]:
    """The aborted (base, last) ranges noted in a partition's folder, sorted. A
    last line without its newline is a note torn by a crash: the next writer
    decides that batch again."""
    try:
        text = (directory / ABORTED_FILE).read_text()
    except FileNotFoundError:
        return []
    ranges = []
    for number, line in enumerate(text.split("\n")[:-1], 1):
        try:
            base, last, _ = (int(field) for field in line.split())
        except ValueError:
            raise CorruptLogError(
                f"{directory / ABORTED_FILE} line {number} is not 'base last "
                f"txn-id' ({line!r}); only the log writes this file"
            ) from None
        ranges.append((base, last))
    return sorted(set(ranges))


def note_aborted(directory: Path, base: int, last: int, txn_id: int) -> None:
    """Add an aborted batch to the partition's file, durably, before anything is
    appended after it."""
    path = directory / ABORTED_FILE
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A note torn by a crash: cut off, so that lines never merge.
            whole = os.pread(fd, size, 0)
            os.ftruncate(fd, whole.rfind(b"\n") + 1)
        os.write(fd, f"{base} {last} {txn_id}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        sync_dir(directory)
