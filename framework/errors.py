"""The error families: one root, a family per subsystem, facts as attributes.

Every error says whether retrying the same call can help (``retriable``) and its message
names the thing, what was expected, what was found, and what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable


class FrameworkError(Exception):
    """Root of every error the framework raises on purpose."""

    #: Whether repeating the same call (after reloading, or after a pause) may succeed.
    retriable: bool = False


class ConfigurationError(FrameworkError, ValueError):
    """A URL, setting or registration is wrong; fix the configuration, start again."""


class StoreError(FrameworkError):
    """Reading or writing the log or the event store failed."""


class LogError(StoreError):
    """The partitioned log refused an operation."""


class UnknownTopicError(LogError, LookupError):
    """A topic that was never created was named."""

    def __init__(self, topic: str, known: Iterable[str]) -> None:
        self.topic = topic
        self.known = tuple(sorted(known))
        shown = ", ".join(self.known) or "none"
        super().__init__(
            f"topic {topic!r} does not exist (topics: {shown}); "
            "create it with Log.create_topic() first"
        )


class TopicConfigConflictError(LogError):
    """A topic exists with a configuration other than the one asked for."""

    def __init__(self, topic: str, existing: object, requested: object) -> None:
        self.topic = topic
        self.existing = existing
        self.requested = requested
        super().__init__(
            f"topic {topic!r} already exists as {existing!r}, which differs from the "
            f"requested {requested!r}; open it with its stored settings or use a new "
            "topic name"
        )


class UnknownPartitionError(LogError, IndexError):
    """A partition number outside ``0..partitions-1`` was named."""

    def __init__(self, topic: str, partition: int, partitions: int) -> None:
        self.topic = topic
        self.partition = partition
        self.partitions = partitions
        super().__init__(
            f"topic {topic!r} has partitions 0..{partitions - 1}; "
            f"partition {partition} does not exist"
        )


class OffsetOutOfRangeError(LogError, IndexError):
    """An offset before the log start or at/after the log end was asked for."""

    def __init__(
        self, topic: str, partition: int, offset: int, start: int, end: int
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.start = start
        self.end = end
        super().__init__(
            f"offset {offset} is outside {topic}/{partition}, which holds offsets "
            f"{start}..{end - 1} (end offset {end})"
        )


class EndOffsetMismatchError(LogError):
    """A conditional append found the partition's end somewhere other than expected.

    Another writer appended first. Nothing of this append was written; catch up with
    the records up to ``actual`` and decide again.
    """

    retriable = True

    def __init__(self, topic: str, partition: int, expected: int, actual: int) -> None:
        self.topic = topic
        self.partition = partition
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"append to {topic}/{partition} expected the end offset {expected} but it "
            f"is {actual}: another writer appended first; nothing was written"
        )


class CorruptLogError(LogError):
    """Stored bytes fail their checksum or structure where a crash cannot explain it."""


class ConcurrencyError(StoreError):
    """An append's expected version did not match the stream's actual version.

    Someone else changed the aggregate since it was loaded. Nothing was written:
    reload the aggregate, apply the command again, and save.
    """

    retriable = True

    def __init__(
        self,
        stream_id: str,
        expected_version: int | None,
        actual_version: int,
        *,
        note: str = "",
    ) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        message = (
            f"stream {stream_id!r} is at version {actual_version}, not the expected "
            f"version {expected_version}: it changed since it was loaded; nothing was "
            "written; reload it and try the command again"
        )
        super().__init__(f"{message}; {note}" if note else message)


class StoreInputError(StoreError, ValueError):
    """A value handed to the event store breaks one of its documented limits
    (``framework.store.limits``). Every backend refuses it the same way, before
    anything is written; retrying the same call cannot help."""

    def __init__(
        self,
        what: str,
        problem: str,
        *,
        stream_id: object = None,
        appending: bool = True,
    ) -> None:
        #: The thing refused ("stream id", "event name", "to_version", ...).
        self.what = what
        self.problem = problem
        self.stream_id = stream_id
        where = "" if stream_id is None else f" (stream {shortened(stream_id)})"
        done = "; nothing was written" if appending else ""
        super().__init__(f"{what}{where}: {problem}{done}")


def shortened(value: object, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut in the middle when long (a 1 MB stream
    id would otherwise fill the terminal)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...{text[-limit // 4 :]} ({len(text):,} characters)"


class AggregateNotFoundError(StoreError, LookupError):
    """No events are stored for the aggregate id (or not up to the asked version)."""

    def __init__(self, aggregate: str, aggregate_id: str, detail: str = "") -> None:
        self.aggregate = aggregate
        self.aggregate_id = aggregate_id
        super().__init__(
            f"{aggregate} {aggregate_id!r} was not found{detail}; check the id, or "
            "create the aggregate and save it first"
        )


class SchemaError(FrameworkError):
    """An event could not be turned into bytes or back."""


class EventRegistrationError(SchemaError, TypeError):
    """An event class was declared or registered wrongly (found at import time)."""


class UnserializableEventError(SchemaError, TypeError):
    """An event's payload holds a value its codec cannot store; nothing recorded."""


class UnknownEventError(SchemaError, LookupError):
    """A stored event names an event type (or version) no loaded class registers."""

    def __init__(
        self,
        name: str,
        version: int,
        *,
        where: str,
        registered: Iterable[str],
        hint: str = "",
    ) -> None:
        self.name = name
        self.version = version
        self.where = where
        self.registered = tuple(sorted(registered))
        shown = list(self.registered[:20])
        if len(self.registered) > 20:
            shown.append(f"... and {len(self.registered) - 20} more")
        super().__init__(
            f"cannot decode event {name!r} version {version} at {where}: no event "
            f"class is registered under that name and version "
            f"(registered: {', '.join(shown) or 'none'}); "
            + (hint or "import the module that defines it, or register an upcaster")
        )


class DomainError(FrameworkError):
    """Base for an application's own business-rule errors (nothing was recorded)."""


class CommandError(FrameworkError):
    """A command could not be dispatched or handled."""


class ProjectionError(FrameworkError):
    """A projection could not apply an event or keep its checkpoint."""


class TransportError(FrameworkError):
    """A queue, pub/sub or exchange operation failed."""
