"""Repartitioning: copying an events topic into a topic of another partition
count, stream by stream, and the durable record of which topic a store uses.

A stream lives in partition ``murmur2(stream id) % N``, so a new N moves streams;
the copy keeps each stream whole and in version order because a stream lives
wholly in one old partition, and each old partition is copied in offset order.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from framework.errors import ConfigurationError, CorruptLogError
from framework.files import sync_dir
from framework.log.partitioner import partition_for
from framework.log.ports import Log
from framework.log.records import LogRecord, Record, is_void
from framework.store.records import stamp_of

__all__ = [
    "COPY_BATCH",
    "SWITCH_FILE",
    "TopicSwitch",
    "copy_topic",
    "current_events_topic",
    "next_topic_name",
    "read_switch",
    "write_switch",
]

#: Records appended to a new partition at a time: one fsync per batch, so the
#: copy costs a few hundred fsyncs for 100,000 events rather than one each.
COPY_BATCH = 2000

#: The switch record of a file store, beside the topic catalog in the log's folder
#: (not inside ``topics/``, where every ``.json`` names a topic).
SWITCH_FILE = "topic-switch.json"

_FORMAT = 1

#: ``<base>.g<generation>``: the topics a repartition writes.
_GENERATION = re.compile(r"(?P<base>.+)\.g(?P<generation>[0-9]+)")


@attrs.frozen(kw_only=True)
class TopicSwitch:
    """The store's events topic ``base`` (the name the settings give) is read from
    ``topic`` since a repartition copied ``source`` into it. Until ``done``, the
    projections' switch (``projections``: name -> ``"continue"`` or
    ``"rebuild"``) is not yet applied and the store must not be opened."""

    base: str
    source: str
    topic: str
    source_ends: dict[int, int]
    topic_ends: dict[int, int]
    projections: dict[str, str]
    done: bool

    def to_json(self) -> bytes:
        document = {"format": _FORMAT, **attrs.asdict(self)}
        return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, path: Path, data: bytes) -> TopicSwitch:
        try:
            document = json.loads(data)
            if document.pop("format") != _FORMAT:
                raise ValueError("unknown format")
            for field in ("source_ends", "topic_ends"):
                document[field] = {int(p): int(o) for p, o in document[field].items()}
            return cls(**document)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CorruptLogError(
                f"the topic switch {path} cannot be read ({exc}); restore it from "
                "a backup (it names the events topic the store reads)"
            ) from exc


def read_switch(folder: Path) -> TopicSwitch | None:
    """The switch recorded in the log folder ``folder``, or None (the store reads
    the topic its settings name)."""
    path = folder / SWITCH_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return TopicSwitch.from_json(path, data)


def write_switch(folder: Path, switch: TopicSwitch) -> None:
    """Record ``switch`` so that a crash leaves the old record or the new one whole
    (temporary file, fsync, rename, fsync of the folder)."""
    path = folder / SWITCH_FILE
    tmp = folder / f".{SWITCH_FILE}.tmp"
    with open(tmp, "wb") as file:
        file.write(switch.to_json())
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    sync_dir(folder)


def next_topic_name(base: str, current: str) -> str:
    """The topic a repartition of ``current`` (the store's events topic, named
    ``base`` in its settings) writes: ``<base>.g<n+1>``."""
    found = _GENERATION.fullmatch(current)
    generation = int(found["generation"]) if found and found["base"] == base else 0
    return f"{base}.g{generation + 1}"


def copy_topic(
    log: Log,
    source: str,
    target: str,
    partitions: int,
    *,
    progress: Callable[[int], None] | None = None,
    batch: int = COPY_BATCH,
) -> dict[int, int]:
    """Create ``target`` with ``partitions`` partitions (the rest of its settings as
    ``source``'s) and copy every record of ``source`` into the partition of its key,
    as it is (key, value, headers, timestamp); records of aborted transactions are
    left out. Returns the source's end offsets the copy went to.

    The caller keeps writers out of ``source`` meanwhile. ``target`` must not exist
    or be empty. Raises ``ConfigurationError`` for a record without a key (it has
    no partition to go to) and ``ConfigurationError`` if ``target`` holds records.
    Records are taken in Lamport-stamp order across the source partitions (a
    stream's order is kept: its stamps grow with its versions). Records go to
    each new partition ``batch`` at a time; ``progress(copied)``
    is called after every batch appended.
    """
    config = attrs.evolve(log.topic_config(source), partitions=partitions)
    log.ensure_topic(target, config)
    if any(log.end_offsets(target).values()):
        raise ConfigurationError(
            f"topic {target!r} already holds records; a repartition writes into "
            "a new topic: delete that one first"
        )
    ends = log.end_offsets(source)
    pending: list[list[Record]] = [[] for _ in range(partitions)]
    copied = 0

    def flush(partition: int) -> None:
        nonlocal copied
        batch = pending[partition]
        log.append(target, partition, batch)
        copied += len(batch)
        pending[partition] = []
        if progress is not None:
            progress(copied)

    # The source partitions merged by (Lamport stamp, partition, offset): each
    # new partition then receives its events in stamp order, so its stamps grow
    # along it as causal order needs, and a stream (in one source partition, its
    # stamps growing with its versions) keeps its order.
    merged = heapq.merge(
        *(_stamped(log, source, p, end, batch) for p, end in sorted(ends.items()))
    )
    for _, source_partition, offset, record in merged:
        if record.key is None:
            raise ConfigurationError(
                f"{source}/{source_partition} offset {offset} has no key, so its "
                "stream's partition is unknown: only keyed topics (the events "
                "topic) can be repartitioned"
            )
        partition = partition_for(record.key, partitions)
        pending[partition].append(
            Record(record.value, record.key, record.headers, record.timestamp)
        )
        if len(pending[partition]) >= batch:
            flush(partition)
    for partition in range(partitions):
        if pending[partition]:
            flush(partition)
    return ends


def _stamped(
    log: Log, topic: str, partition: int, end: int, batch: int
) -> Iterator[tuple[int, int, int, LogRecord]]:
    """The records of one partition up to ``end`` as (stamp, partition, offset,
    record), in offset order, without void records."""
    offset = log.start_offset(topic, partition)
    while offset < end:
        records = log.read(topic, partition, offset, batch)
        if not records:
            return
        for record in records:
            if record.offset >= end:
                return
            offset = record.offset + 1
            if not is_void(record):
                yield stamp_of(record), partition, record.offset, record


def current_events_topic(log_folder: Path, base: str) -> str:
    """The topic a file store whose settings name ``base`` reads; raises
    ``ConfigurationError`` while a repartition is unfinished."""
    switch = read_switch(log_folder)
    if switch is None or switch.base != base:
        return base
    if not switch.done:
        raise ConfigurationError(
            f"a repartition of {switch.source!r} into {switch.topic!r} in "
            f"{log_folder.parent} was interrupted after its copy; its projections "
            "may be half moved, so the store does not open: run `python -m "
            f"framework log repartition --url file:{log_folder.parent} "
            f"--partitions {len(switch.topic_ends)} --yes` again to finish it"
        )
    return switch.topic
