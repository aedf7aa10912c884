"""``Position``: how far into each partition of the events topic something reaches."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from framework.errors import ConfigurationError


class Position(Mapping[int, int]):
    """An immutable map partition -> offset of the last record covered.

    A ``save`` returns the position of what it wrote; a projection reports the
    position it has applied. ``a.covers(b)`` tells whether ``a`` reaches every offset
    of ``b`` (read-your-writes). ``str(position)`` is a compact token
    (``"0:15,3:7"``) that ``Position.parse`` reads back, for use in HTTP headers.
    """

    __slots__ = ("_offsets",)

    def __init__(self, offsets: Mapping[int, int] | None = None) -> None:
        # Every save makes one, usually of one partition, which needs no sorting.
        self._offsets: dict[int, int] = (
            dict(offsets)
            if offsets is not None and len(offsets) < 2
            else dict(sorted((offsets or {}).items()))
        )

    def __getitem__(self, partition: int) -> int:
        return self._offsets[partition]

    def __iter__(self) -> Iterator[int]:
        return iter(self._offsets)

    def __len__(self) -> int:
        return len(self._offsets)

    def __hash__(self) -> int:
        return hash(tuple(self._offsets.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Position):
            return self._offsets == other._offsets
        return NotImplemented

    def __repr__(self) -> str:
        return f"Position({self._offsets!r})"

    def __str__(self) -> str:
        return ",".join(f"{p}:{o}" for p, o in self._offsets.items())

    def merge(self, other: Mapping[int, int]) -> Position:
        """The furthest offset of either, per partition."""
        merged = dict(self._offsets)
        for partition, offset in other.items():
            if offset > merged.get(partition, -1):
                merged[partition] = offset
        return Position(merged)

    def covers(self, other: Mapping[int, int]) -> bool:
        """Whether this position reaches at least as far as ``other`` everywhere."""
        return all(self._offsets.get(p, -1) >= o for p, o in other.items())

    @classmethod
    def parse(cls, token: str) -> Position:
        """Read what ``str(position)`` wrote; ``ConfigurationError`` if malformed."""
        offsets: dict[int, int] = {}
        if token.strip():
            try:
                for part in token.split(","):
                    partition, offset = part.split(":")
                    offsets[int(partition)] = int(offset)
            except ValueError:
                raise ConfigurationError(
                    f"{token!r} is not a position token; expected "
                    "'partition:offset,...' as str(position) writes it"
                ) from None
        return cls(offsets)
