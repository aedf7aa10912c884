"""A hot statement run below psycopg's cursor: prepared once per connection, with
binary parameters encoded here, in one round trip.

A single-event append spends about 40 µs of client time in psycopg's cursor
(query conversion, the prepared-statement cache, dumpers, result objects) against
about 10 µs for the same work done directly on the libpq connection. ``Prepared``
keeps what the cursor would look up on every call: the statement with ``$n``
placeholders, the parameters' order and types, and their encoders. Errors come back
as psycopg's own exceptions, so ``translate`` maps them as for any statement.
"""

from __future__ import annotations

import hashlib
import operator
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any, Protocol

#: Parameter types, by PostgreSQL type OID.
INT4 = 23
INT8 = 20
TEXT = 25
BYTEA = 17
UUID = 2950

_PLACEHOLDER = re.compile(rb"%\((\w+)\)s")


def _raw(value: bytes) -> bytes:
    return value


#: One-dimensional arrays of those types, by array type OID.
INT4_ARRAY = 1007
INT8_ARRAY = 1016
TEXT_ARRAY = 1009
BYTEA_ARRAY = 1001
UUID_ARRAY = 2951

_ARRAY_HEAD = struct.Struct(">iiiii").pack
_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)


def _array_of(element: int, fixed: int = 0) -> Callable[[Sequence[Any]], bytes]:
    """The binary encoder of a one-dimensional array of ``element`` (PostgreSQL's
    ``array_recv`` layout: dimensions, null flag, element type, length and lower
    bound, then each element's length and bytes). ``fixed``: the byte size of
    every element of a fixed-size type, whose length prefix is then shared."""
    encode = _ENCODERS[element]
    prefix = _LENGTH(fixed)

    def encode_array(values: Sequence[Any]) -> bytes:
        # A multi-event append encodes eight arrays per save, three of them
        # usually all NULL: the common shapes are joined in C (``map``, ``join``)
        # rather than element by element (a 100-event save's client time went
        # from 305 to 285 µs).
        count = len(values)
        # By identity: ``values.count(None)`` calls UUID's ``__eq__``, in Python,
        # once per event id (15.6 against 3.1 µs for 100 ids).
        nulls = sum(map(operator.is_, values, repeat(None)))
        head = _ARRAY_HEAD(1, 1 if nulls else 0, element, count, 1)
        if not count:
            return head
        if nulls == count:
            return head + _NULL * count
        if not nulls:
            if fixed:
                # The shared length prefix doubles as the separator.
                return head + prefix + prefix.join(map(encode, values))
            raws = list(map(encode, values))
            return head + b"".join([_LENGTH(len(raw)) + raw for raw in raws])
        parts = [head]
        for value in values:
            if value is None:
                parts.append(_NULL)
            else:
                raw = encode(value)
                parts.append(_LENGTH(len(raw)))
                parts.append(raw)
        return b"".join(parts)

    return encode_array


#: Binary-format encoders per type.
_ENCODERS: dict[int, Callable[[Any], bytes]] = {
    INT4: struct.Struct(">i").pack,
    INT8: struct.Struct(">q").pack,
    # C-level callables: a Python function per parameter costs a single-event
    # append 0.15 µs each, twelve times.
    TEXT: str.encode,
    BYTEA: _raw,
    UUID: operator.attrgetter("bytes"),
}
_ENCODERS.update(
    {
        INT4_ARRAY: _array_of(INT4, 4),
        INT8_ARRAY: _array_of(INT8, 8),
        TEXT_ARRAY: _array_of(TEXT),
        BYTEA_ARRAY: _array_of(BYTEA),
        UUID_ARRAY: _array_of(UUID, 16),
    }
)


def _unencodable(value: Any) -> bool:
    values = value if isinstance(value, list | tuple) else (value,)
    for item in values:
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
    return False


class _TextResult(Protocol):
    """What ``Prepared.first_row`` reads of a libpq result (psycopg's ``PGresult``)."""

    def get_value(self, row_number: int, column_number: int) -> bytes | None: ...


class Prepared:
    """A statement written with ``%(name)s`` placeholders (as psycopg takes it),
    ready to run directly: ``types`` gives each parameter's type OID, ``parse``
    turns each result column's bytes (text format) into its Python value
    (``int``, ``bytes.decode``...)."""

    __slots__ = (
        "encoders",
        "formats",
        "name",
        "names",
        "parse",
        "query",
        "result_format",
        "source",
        "types",
    )

    def __init__(
        self,
        name: str,
        source: bytes,
        types: Mapping[str, int],
        parse: Sequence[Callable[[bytes], Any]] | None = None,
    ) -> None:
        names: list[str] = []

        def number(match: re.Match[bytes]) -> bytes:
            param = match.group(1).decode()
            if param not in names:
                names.append(param)
            return b"$%d" % (names.index(param) + 1)

        #: The statement as psycopg takes it, for connections this does not run on.
        self.source = source
        self.query = _PLACEHOLDER.sub(number, source)
        # Named after the text too: a connection may serve several schemas' stores.
        self.name = (
            f"{name}_{hashlib.blake2b(self.query, digest_size=6).hexdigest()}".encode()
        )
        self.names = tuple(names)
        missing = [n for n in names if n not in types]
        if missing:
            raise ValueError(f"no type given for parameters {missing} of {name}")
        self.types = tuple(types[n] for n in names)
        self.encoders = tuple(_ENCODERS[t] for t in self.types)
        self.formats = (1,) * len(names)
        self.parse = None if parse is None else tuple(parse)
        #: Without ``parse``, results come in binary for psycopg's loaders.
        self.result_format = 1 if parse is None else 0

    def values(self, params: Mapping[str, Any]) -> list[bytes | None]:
        """The parameters, encoded in binary, in ``$n`` order. ``ValueError``
        names a parameter whose text UTF-8 cannot encode (a lone surrogate)."""
        try:
            return [
                None if (value := params[name]) is None else encode(value)
                for name, encode in zip(self.names, self.encoders, strict=True)
            ]
        except UnicodeEncodeError as exc:
            bad = next((n for n in self.names if _unencodable(params[n])), "?")
            raise ValueError(
                f"parameter {bad!r} of {self.name.decode()} holds text that UTF-8 "
                f"cannot encode ({exc.reason}: {exc.object[exc.start : exc.end]!r}), "
                "which PostgreSQL cannot store; nothing was written; pass text "
                "without lone surrogates"
            ) from exc

    def first_row(self, result: _TextResult) -> tuple[Any, ...]:
        """The first row of ``result`` (text format) as Python values; NULL stays
        None."""
        if self.parse is None:
            raise TypeError(
                f"{self.name!r} returns binary rows: load them with psycopg"
            )
        parse = self.parse
        if len(parse) == 1:
            # An append's offset: a comprehension (a function call of its own on
            # Python 3.11) cost a single-event save 5,000 of its 98,000
            # instructions.
            value = result.get_value(0, 0)
            return (None if value is None else parse[0](value),)
        get = result.get_value
        return tuple(
            [
                None if (value := get(0, column)) is None else load(value)
                for column, load in enumerate(parse)
            ]
        )
