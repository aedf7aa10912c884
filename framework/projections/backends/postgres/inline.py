"""Inline projections on PostgreSQL: applied inside the append's own transaction.

The event store calls ``InlineProjection`` after writing an append's rows and before
the commit, with the written partitions' heads locked. It applies every event of
those partitions after the projection's checkpoint (other writers' events first, if
they appended without this hook, then the new ones) and moves the checkpoint, all
on the append's connection: the events and the read model commit together or not
at all. A handler that fails therefore fails the append.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from framework.errors import ProjectionError
from framework.postgres.database import Cursor
from framework.projections.backends.postgres.statements import ReadModelStatements
from framework.projections.backends.postgres.transaction import PostgresTransaction
from framework.projections.ports import InlineRunner
from framework.store.backends.postgres import PostgresEventStore
from framework.store.events import Appended


class InlineHost(Protocol):
    """What an inline projection needs of its read-model store
    (``PostgresReadModelStore``, which creates it)."""

    @property
    def statements(self) -> ReadModelStatements: ...

    def lock(self, cursor: Cursor, name: str) -> None: ...

    def announce(
        self, name: str, generation: int, checkpoints: Mapping[int, int]
    ) -> None: ...


class InlineProjection:
    """An ``AppendHook`` applying one projection to the live generation."""

    def __init__(
        self,
        read_models: InlineHost,
        store: PostgresEventStore,
        runner: InlineRunner,
    ) -> None:
        self._read_models = read_models
        self._store = store
        self._runner = runner
        self._name = runner.name
        self._statements = read_models.statements
        # The generation each appending thread wrote, for ``committed``.
        self._local = threading.local()

    def in_transaction(self, cursor: Cursor, written: Sequence[Appended]) -> None:
        last = _last_offsets(written)
        partitions = sorted(last)
        self._read_models.lock(cursor, self._name)
        row = cursor.execute(self._statements.live_generation, (self._name,)).fetchone()
        if row is None:
            raise ProjectionError(
                f"inline projection {self._name!r} lost its read model (was the "
                "schema changed?); the append was rolled back"
            )
        projection_id, generation = int(row[0]), int(row[1])
        key = (self._name, generation, partitions)
        checkpoints: dict[int, int] = {
            int(p): int(o)
            for p, o in cursor.execute(self._statements.checkpoints_of, key).fetchall()
        }
        parked: dict[int, set[str]] = {p: set() for p in partitions}
        for partition, stream_id in cursor.execute(
            self._statements.parked_streams, key
        ).fetchall():
            parked[partition].add(stream_id)
        transaction = PostgresTransaction(
            self._statements, cursor, self._name, projection_id, generation
        )
        chunk = self._runner.settings.batch_size
        for partition in partitions:
            start = checkpoints.get(partition, -1) + 1
            while start <= last[partition]:
                # Committed and stable up to our own rows: we hold the head lock.
                batch = self._store.read_partition_in(
                    cursor, partition, start, min(chunk, last[partition] - start + 1)
                )
                if not batch or batch[0].offset != start:
                    raise ProjectionError(
                        f"inline projection {self._name!r}: partition {partition} "
                        f"has no event at offset {start} inside the append; the "
                        "append was rolled back"
                    )
                self._runner.apply_within(transaction, batch, parked[partition])
                start = batch[-1].offset + 1
        transaction.flush()
        self._local.generation = generation

    def committed(self, written: Sequence[Appended]) -> None:
        generation = getattr(self._local, "generation", None)
        if generation is None:
            return
        last = _last_offsets(written)
        self._read_models.announce(self._name, generation, last)
        self._runner.publish(last)


def _last_offsets(written: Sequence[Appended]) -> dict[int, int]:
    last: dict[int, int] = {}
    for appended in written:
        last[appended.partition] = max(
            last.get(appended.partition, -1), appended.last_offset
        )
    return last
