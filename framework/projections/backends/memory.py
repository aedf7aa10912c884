"""Read models in process memory: the reference ``ReadModelStore`` for tests."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from framework.projections.backends.base import (
    DELETED,
    BaseReadModelStore,
    BufferedDocuments,
    BufferedTransaction,
)
from framework.projections.errors import UnknownProjectionError, UnknownTableError
from framework.projections.ports import (
    Document,
    Documents,
    ParkedEvent,
    ProjectionFailure,
    ProjectionState,
    Transaction,
)


class _Table:
    def __init__(self, rows: dict[str, Document], lock: threading.Lock) -> None:
        self._rows = rows
        self._lock = lock

    def get(self, key: str) -> Document | None:
        with self._lock:
            return copy.deepcopy(self._rows.get(key))

    def items(self) -> Iterator[tuple[str, Document]]:
        with self._lock:
            found = sorted(copy.deepcopy(self._rows).items())
        return iter(found)

    def count(self) -> int:
        with self._lock:
            return len(self._rows)


class _BufferedTable(BufferedDocuments):
    # Kept as Python objects (deep copies) rather than encoded: the same
    # isolation, and documents come back with the types they were put with.
    _keep = _copy = staticmethod(copy.deepcopy)

    def __init__(self, rows: dict[str, Document]) -> None:
        super().__init__()
        self.rows = rows

    def _committed(self, key: str) -> Document | None:
        return copy.deepcopy(self.rows.get(key))

    def _merged(self) -> dict[str, Document]:
        merged = dict(self.rows)
        for key, value in self.pending.items():
            if value is DELETED:
                merged.pop(key, None)
            else:
                merged[key] = value
        return merged

    def items(self) -> Iterator[tuple[str, Document]]:
        return iter(sorted(copy.deepcopy(self._merged()).items()))

    def count(self) -> int:
        return len(self._merged())

    def commit(self) -> None:
        for key, value in self.pending.items():
            if value is DELETED:
                self.rows.pop(key, None)
            else:
                self.rows[key] = value


class _MemoryTransaction(BufferedTransaction[_BufferedTable]):
    def __init__(self, store: MemoryReadModelStore, name: str, generation: int) -> None:
        super().__init__(name, generation)
        self._store = store

    def _open(self, table: str) -> _BufferedTable:
        return _BufferedTable(self._store._rows(self.name, self.generation, table))

    def checkpoint(self, partition: int) -> int:
        committed = self._store._checkpoints.get((self.name, self.generation))
        return -1 if committed is None else committed.get(partition, -1)


class MemoryReadModelStore(BaseReadModelStore):
    """A ``ReadModelStore`` in memory, held to the same contract as the others."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, ProjectionState] = {}
        self._tables: dict[tuple[str, int, str], dict[str, Document]] = {}
        self._checkpoints: dict[tuple[str, int], dict[int, int]] = {}
        self._parked: dict[tuple[str, int], dict[tuple[int, int], ParkedEvent]] = {}
        self._failures: dict[tuple[str, int], dict[int, ProjectionFailure]] = {}
        #: Each projection's document tables, as declared when it was ensured,
        #: rebuilt or reset (the other stores find them in their catalogs).
        self._declared: dict[str, set[str]] = {}

    def _rows(self, name: str, generation: int, table: str) -> dict[str, Document]:
        return self._tables.setdefault((name, generation, table), {})

    def ensure(
        self, name: str, version: int, tables: tuple[str, ...]
    ) -> ProjectionState:
        with self._lock:
            state = self._states.get(name)
            if state is None:
                state = self._states[name] = ProjectionState(
                    name=name, version=version, generation=1, building=None
                )
            self._declared.setdefault(name, set()).update(tables)
            return state

    def state(self, name: str) -> ProjectionState | None:
        with self._lock:
            return self._states.get(name)

    def checkpoints(self, name: str, generation: int) -> dict[int, int]:
        with self._lock:
            return dict(self._checkpoints.get((name, generation), {}))

    @contextmanager
    def transaction(self, name: str, generation: int) -> Iterator[Transaction]:
        with self._lock:
            transaction = _MemoryTransaction(self, name, generation)
            yield transaction
            for table in transaction.tables.values():
                table.commit()
            self._checkpoints.setdefault((name, generation), {}).update(
                transaction.checkpoints
            )
            failures = self._failures.get((name, generation))
            if failures:
                # Moving on clears the partition's failure, as the other stores
                # do by rewriting the checkpoint row.
                for partition in transaction.checkpoints:
                    failures.pop(partition, None)
            parked = self._parked.setdefault((name, generation), {})
            for event in transaction.parked:
                parked[(event.partition, event.offset)] = event
            for key in transaction.unparked:
                parked.pop(key, None)

    def table(self, name: str, table: str) -> Documents:
        with self._lock:
            state = self._states.get(name)
            if state is None:
                raise UnknownProjectionError(name, self._states)
            declared = self._declared.get(name, set())
            if table not in declared:
                raise UnknownTableError(name, table, declared)
            rows = self._rows(name, state.generation, table)
        return _Table(rows, self._lock)

    def _drop(self, name: str, generation: int) -> None:
        for key in [k for k in self._tables if k[:2] == (name, generation)]:
            del self._tables[key]
        self._checkpoints.pop((name, generation), None)
        self._parked.pop((name, generation), None)
        self._failures.pop((name, generation), None)

    def begin_rebuild(self, name: str, tables: tuple[str, ...]) -> int:
        with self._lock:
            state = self._states[name]
            self._declared.setdefault(name, set()).update(tables)
            if state.building is None:
                building = state.generation + 1
                self._drop(name, building)
                self._states[name] = ProjectionState(
                    name=name,
                    version=state.version,
                    generation=state.generation,
                    building=building,
                )
                return building
            return state.building

    def finish_rebuild(self, name: str, generation: int, version: int) -> None:
        with self._lock:
            old = self._states[name].generation
            self._states[name] = ProjectionState(
                name=name, version=version, generation=generation, building=None
            )
            self._drop(name, old)

    def reset(self, name: str, tables: tuple[str, ...], version: int) -> None:
        with self._lock:
            state = self._states.get(name)
            if state is None:
                return
            self._declared.setdefault(name, set()).update(tables)
            self._drop(name, state.generation)
            if state.building is not None:
                self._drop(name, state.building)
            self._states[name] = ProjectionState(
                name=name, version=version, generation=state.generation, building=None
            )

    def parked(self, name: str, generation: int) -> list[ParkedEvent]:
        with self._lock:
            found = self._parked.get((name, generation), {})
            return [found[k] for k in sorted(found)]

    def record_failure(
        self, name: str, generation: int, failure: ProjectionFailure
    ) -> None:
        with self._lock:
            failures = self._failures.setdefault((name, generation), {})
            failures[failure.partition] = failure

    def failures(self, name: str, generation: int) -> list[ProjectionFailure]:
        with self._lock:
            found = self._failures.get((name, generation), {})
            checkpoints = self._checkpoints.get((name, generation), {})
            return [
                found[p]
                for p in sorted(found)
                if found[p].offset > checkpoints.get(p, -1)
            ]

    def projection_names(self) -> list[str]:
        with self._lock:
            return sorted(self._states)

    def close(self) -> None:
        """Nothing to release."""
