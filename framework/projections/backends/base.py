"""What the read-model stores share: a transaction's buffered changes (documents,
checkpoints, dead letters) with database copy semantics, and the store methods that
are one transaction of their own."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

import orjson

from framework.projections.ports import Document, ParkedEvent, Transaction

#: Marks a key deleted inside a transaction's buffer.
DELETED = object()


class BufferedDocuments(ABC):
    """A document table inside a transaction. Writes wait in ``pending`` until the
    transaction ends, so a key written many times in a batch is written once; reads
    see them.

    Copy semantics are a database's: ``put`` keeps the document as it is now
    (encoded, so that later changes to the caller's object do not leak in), and
    ``get`` hands out a fresh copy (changing it changes nothing until it is put
    back).
    """

    def __init__(self) -> None:
        self.pending: dict[str, object] = {}

    # Kept encoded as JSON, as the SQLite and PostgreSQL tables store them;
    # orjson's own functions, so that a put or a buffered get costs one C call.
    _keep: Any = staticmethod(orjson.dumps)
    _copy: Any = staticmethod(orjson.loads)

    @abstractmethod
    def _committed(self, key: str) -> Document | None:
        """The committed document (a fresh copy), as if nothing were pending."""

    def get(self, key: str) -> Document | None:
        found = self.pending.get(key)
        if found is None:
            return self._committed(key)
        return None if found is DELETED else self._copy(found)

    def put(self, key: str, document: Document) -> None:
        self.pending[key] = self._keep(document)

    def delete(self, key: str) -> None:
        self.pending[key] = DELETED

    @abstractmethod
    def items(self) -> Iterator[tuple[str, Document]]: ...

    @abstractmethod
    def count(self) -> int: ...


DocumentsT = TypeVar("DocumentsT", bound=BufferedDocuments)


class BufferedTransaction(ABC, Generic[DocumentsT]):
    """One atomic change of a projection's read model: tables opened on first use,
    checkpoints advanced, events parked and unparked, all written when the store
    commits the transaction."""

    def __init__(self, name: str, generation: int) -> None:
        self.name = name
        self.generation = generation
        self.tables: dict[str, DocumentsT] = {}
        #: Partition -> offset advanced to in this transaction.
        self.checkpoints: dict[int, int] = {}
        self.parked: list[ParkedEvent] = []
        self.unparked: list[tuple[int, int]] = []

    @abstractmethod
    def _open(self, table: str) -> DocumentsT:
        """The buffered document table ``table`` of this generation."""

    @abstractmethod
    def checkpoint(self, partition: int) -> int: ...

    def table(self, name: str) -> DocumentsT:
        table = self.tables.get(name)
        if table is None:
            table = self.tables[name] = self._open(name)
        return table

    def advance(self, partition: int, offset: int) -> None:
        self.checkpoints[partition] = offset

    def park(self, parked: ParkedEvent) -> None:
        self.parked.append(parked)

    def unpark(self, partition: int, offset: int) -> None:
        self.unparked.append((partition, offset))

    def parked_rows(self) -> list[tuple[Any, ...]]:
        """The parked events as rows of (name, generation, then the columns of
        ``ParkedEvent.row``)."""
        return [(self.name, self.generation, *event.row()) for event in self.parked]

    def unparked_rows(self) -> list[tuple[str, int, int, int]]:
        """The unparked events as rows of (name, generation, partition, offset)."""
        return [(self.name, self.generation, p, o) for p, o in self.unparked]


class BaseReadModelStore(ABC):
    """What every read-model store builds from its own transactions."""

    @abstractmethod
    def transaction(
        self, name: str, generation: int
    ) -> AbstractContextManager[Transaction]: ...

    def park(self, name: str, generation: int, parked: ParkedEvent) -> None:
        with self.transaction(name, generation) as transaction:
            transaction.park(parked)

    def unpark(self, name: str, generation: int, partition: int, offset: int) -> None:
        with self.transaction(name, generation) as transaction:
            transaction.unpark(partition, offset)
