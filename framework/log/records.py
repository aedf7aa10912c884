"""Records: what a producer hands the log, and what it hands back with a position."""

from __future__ import annotations

from typing import NamedTuple

import attrs

#: Record headers, Kafka-style: ordered (name, value) pairs; a name may repeat.
Headers = tuple[tuple[str, bytes], ...]


class Record(NamedTuple):
    """One record to append; ``timestamp`` (UTC milliseconds) defaults to now.

    A named tuple, as ``LogRecord``: every append builds one per record.
    """

    value: bytes
    key: bytes | None = None
    headers: Headers = ()
    timestamp: int | None = None


class LogRecord(NamedTuple):
    """A stored record at its position: ``offset`` in ``partition`` of ``topic``.

    A named tuple rather than a frozen attrs class: replay builds one per record,
    and a tuple is built in half the time.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: Headers = ()


@attrs.frozen(kw_only=True, slots=True)
class AppendResult:
    """Where one appended batch landed: offsets ``base_offset..last_offset``."""

    topic: str
    partition: int
    base_offset: int
    last_offset: int
    #: The log-assigned or producer-given timestamp of the batch's last record.
    timestamp: int

    @property
    def count(self) -> int:
        return self.last_offset - self.base_offset + 1
