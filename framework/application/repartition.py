"""Changing a store's partition count: copy its events topic into a new topic of
the new count, switch the store and its projections to it, keep the old one.

On PostgreSQL everything is one transaction: the head rows of the topic's
partitions are locked (``FOR UPDATE NOWAIT``: refused, naming the partition, if
one is busy), the rows copied with one ``INSERT ... SELECT``, the projections
switched, and the topics renamed so that the new one has the name the store
opens by (the old one is kept as ``<topic>.old<n>``). A crash anywhere leaves
all of it undone.

On a file store the switch is ``log/topic-switch.json`` (``framework.store.
repartition``), which the wiring reads when it opens the store. The order of
the steps is what makes an interrupted run safe:

1. every partition's writer lock of the current topic is taken (refused, naming
   the partition, if one is busy) and held to the end;
2. the topic is copied (a leftover copy of an interrupted run is deleted
   first); the store still reads the old topic, so a crash here changes nothing;
3. the switch is recorded as pending, with each projection's plan: ``continue``
   (its checkpoints covered the whole old topic, so it goes on from the new
   topic's end) or ``rebuild`` (its read model is emptied, and it replays the
   new topic from the start). A store with a pending switch refuses to open,
   since projections may be half moved;
4. the plans are applied (each is idempotent) and the switch is recorded done.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

import attrs

from framework.application.settings import AppSettings, StoreNotFoundError, file_root
from framework.application.wiring import open_read_models, running_group_members
from framework.errors import ConfigurationError
from framework.files import sync_dir
from framework.projections.ports import ReadModelStore
from framework.store.repartition import (
    TopicSwitch,
    copy_topic,
    current_events_topic,
    next_topic_name,
    read_switch,
    write_switch,
)

#: A projection's plan: go on from the new topic's end.
CONTINUE = "continue"
#: A projection's plan: empty the read model; it replays the new topic.
REBUILD = "rebuild"


@attrs.frozen(kw_only=True)
class Repartitioned:
    """What a repartition did (or, in a dry run, would do): the store ``where``
    moves from ``source`` (``partitions_before`` partitions, ``events`` records)
    to ``topic`` (``partitions``); each projection's plan in ``projections``.
    ``resumed`` when it finished an interrupted run."""

    where: str
    source: str
    topic: str
    partitions_before: int
    partitions: int
    events: int
    projections: dict[str, str]
    resumed: bool = False
    #: Where the old topic is kept under another name (PostgreSQL), or None
    #: (it keeps its name, ``source``).
    kept_as: str | None = None


@runtime_checkable
class _Tables(Protocol):
    """What the file and PostgreSQL read-model stores offer to reset a projection
    the application may not know (the command may run with ``--url`` only)."""

    def tables(self, name: str, generation: int) -> list[str]: ...


def plan_projections(
    read_models: ReadModelStore, source_ends: Mapping[int, int]
) -> dict[str, str]:
    """Each projection's plan: ``continue`` if its serving copy's checkpoints
    reach the end of every old partition, with no rebuild under way and no
    parked events (those name old offsets); ``rebuild`` otherwise."""
    plans = {}
    for name in read_models.projection_names():
        state = read_models.state(name)
        if state is None:
            continue
        checkpoints = read_models.checkpoints(name, state.generation)
        covered = (
            state.building is None
            and not read_models.parked(name, state.generation)
            and all(checkpoints.get(p, -1) >= end - 1 for p, end in source_ends.items())
        )
        plans[name] = CONTINUE if covered else REBUILD
    return plans


def apply_plans(read_models: ReadModelStore, switch: TopicSwitch) -> None:
    """Move every projection of ``switch.projections`` to the new topic; running
    it again does the same."""
    numbers = range(max(len(switch.source_ends), len(switch.topic_ends)))
    for name, plan in sorted(switch.projections.items()):
        state = read_models.state(name)
        if state is None:
            continue
        if plan == CONTINUE:
            with read_models.transaction(name, state.generation) as txn:
                # -1 is "nothing applied": an empty new partition, or an old
                # partition number the new topic does not have.
                for partition in numbers:
                    txn.advance(partition, switch.topic_ends.get(partition, 0) - 1)
            continue
        if not isinstance(read_models, _Tables):  # pragma: no cover - every
            # persistent store has tables(); a memory store never repartitions.
            raise ConfigurationError(
                f"cannot reset projection {name!r} in this read-model store"
            )
        tables = tuple(read_models.tables(name, state.generation))
        read_models.reset(name, tables, state.version)


def repartition_file_store(
    url: str,
    partitions: int,
    *,
    dry_run: bool,
    settings: AppSettings | None = None,
    read_models: ReadModelStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> Repartitioned:
    """Repartition the file store at ``url`` to ``partitions`` partitions (the
    module docs have the steps and what a crash leaves). With ``dry_run``, only
    check and say what would be done. ``read_models`` defaults to the store's own.

    Raises ``StoreNotFoundError`` for a folder without a store and
    ``ConfigurationError`` when a partition's writer or a projection member is
    busy, or the store already has ``partitions`` partitions.
    """
    # Imported here: the segment backend is only loaded by those who use it.
    from framework.log.backends.segments import SegmentLog

    settings = settings or AppSettings()
    if partitions < 1:
        raise ConfigurationError(f"--partitions must be at least 1, got {partitions}")
    root = file_root(url)
    folder = root / "log"
    base = settings.events_topic
    if not (folder / "topics" / f"{base}.json").is_file():
        raise StoreNotFoundError(
            str(root), f"the folder holds no {base!r} topic", "check --url"
        )
    busy = running_group_members(root)
    if busy:
        raise ConfigurationError(
            f"{root} has running projection members ({', '.join(busy)}); stop "
            "them (`projections run`), then repartition again"
        )
    switch = read_switch(folder)
    pending = switch if switch is not None and not switch.done else None
    source = (
        pending.source if pending is not None else current_events_topic(folder, base)
    )
    target = pending.topic if pending is not None else next_topic_name(base, source)
    own_read_models = read_models is None
    if read_models is None:
        read_models = open_read_models(url, settings)
    try:
        with SegmentLog(folder) as log:
            before = log.topic_config(source).partitions
        if pending is None and before == partitions:
            raise ConfigurationError(
                f"{source!r} in {root} has {partitions} partitions already; "
                "nothing to do"
            )
        with _writer_locks(folder, source, before):
            with SegmentLog(folder) as log:
                ends = log.end_offsets(source)
                starts = {p: log.start_offset(source, p) for p in ends}
            plans = plan_projections(read_models, ends)
            report = Repartitioned(
                where=str(root),
                source=source,
                topic=target,
                partitions_before=before,
                partitions=partitions,
                events=sum(ends.values()) - sum(starts.values()),
                projections=plans,
                resumed=pending is not None,
            )
            if dry_run:
                return report
            if pending is not None and pending.source_ends == ends:
                # The copy is whole and nothing was written since: finish it.
                apply_plans(read_models, pending)
                write_switch(folder, attrs.evolve(pending, done=True))
                return attrs.evolve(
                    report,
                    projections=pending.projections,
                    partitions=len(pending.topic_ends),
                    events=sum(pending.topic_ends.values()),
                )
            if pending is not None:
                # Written since the copy, by an application opened before it:
                # a projection that may have moved already must replay.
                plans = {
                    name: REBUILD if name in pending.projections else plan
                    for name, plan in plans.items()
                }
            _delete_topic(folder, root / "index", target)
            with SegmentLog(folder) as log:
                copy_topic(log, source, target, partitions, progress=progress)
                topic_ends = log.end_offsets(target)
            switch = TopicSwitch(
                base=base,
                source=source,
                topic=target,
                source_ends=ends,
                topic_ends=topic_ends,
                projections=plans,
                done=False,
            )
            write_switch(folder, switch)
            apply_plans(read_models, switch)
            write_switch(folder, attrs.evolve(switch, done=True))
        # Counted in the copy: records of aborted transactions were left out.
        return attrs.evolve(report, projections=plans, events=sum(topic_ends.values()))
    finally:
        if own_read_models:
            read_models.close()


@contextmanager
def _writer_locks(folder: Path, topic: str, partitions: int) -> Iterator[None]:
    """Hold the writer lock of every partition of ``topic`` (those an append
    takes, so no process appends meanwhile); ``ConfigurationError`` naming the
    first busy partition, with none held, if another process has one."""
    from framework.log.backends.segments.lock import FileLock
    from framework.log.backends.segments.partition import LOCK_FILE
    from framework.log.backends.segments.topics import partition_dir

    with ExitStack() as held:
        for partition in range(partitions):
            lock = FileLock(partition_dir(folder, topic, partition) / LOCK_FILE)
            held.callback(lock.close)
            if not lock.try_acquire():
                raise ConfigurationError(
                    f"partition {partition} of {topic!r} in {folder.parent} is being "
                    "written (another process holds its writer lock); stop the "
                    "applications writing to the store, then repartition again"
                )
            held.callback(lock.release)
        yield


def _delete_topic(folder: Path, index: Path, topic: str) -> None:
    """Delete what an interrupted repartition left of ``topic``: its catalog entry
    first (so that it never names missing partitions), then its partitions'
    files. A partition's ``writer.lock`` stays: a process may hold it, and a new
    file in its place would let two writers each hold a lock."""
    from framework.log.backends.segments.partition import LOCK_FILE

    entry = folder / "topics" / f"{topic}.json"
    if entry.exists():
        entry.unlink()
        sync_dir(entry.parent)
    for path in sorted(folder.glob(f"{topic}-*")):
        if not (path.is_dir() and path.name[len(topic) + 1 :].isdigit()):
            continue
        for item in path.iterdir():
            if item.is_dir():
                shutil.rmtree(item)
            elif item.name != LOCK_FILE:
                item.unlink()
    for path in sorted(index.glob(f"{topic}-*.streams")) if index.is_dir() else []:
        path.unlink()


def repartition_postgres_store(
    url_text: str,
    partitions: int,
    *,
    dry_run: bool,
    settings: AppSettings | None = None,
) -> Repartitioned:
    """Repartition the PostgreSQL store ``url_text`` names to ``partitions``
    partitions, in one transaction (the module docs say how); with ``dry_run``,
    check and say what would be done, changing nothing. Its projections are
    switched where their read models are, in the store's schema.

    Raises ``StoreNotFoundError`` for a schema without the events topic and
    ``ConfigurationError`` when a partition is being written, a projection
    member runs, or the topic has ``partitions`` partitions already."""
    # Imported here so that `import framework` never imports psycopg.
    import psycopg

    from framework.postgres.errors import translated
    from framework.postgres.url import parse_url
    from framework.projections.backends.postgres.repartition import (
        live_members,
        switch_projections,
    )
    from framework.store.backends.postgres.repartition import (
        copy_rows,
        lock_partitions,
        switch_names,
        topic_row,
    )

    settings = settings or AppSettings()
    if partitions < 1:
        raise ConfigurationError(f"--partitions must be at least 1, got {partitions}")
    url = parse_url(url_text)
    where = f"{url.redacted} schema {url.schema!r}"
    base = settings.events_topic
    with translated(url), psycopg.connect(url.conninfo) as conn:
        cur = conn.cursor()
        source = topic_row(cur, url.schema, base)
        if source is None:
            raise StoreNotFoundError(
                where, f"it holds no {base!r} topic", "check --url (its ?schema=)"
            )
        if source.partitions == partitions:
            raise ConfigurationError(
                f"{base!r} in {where} has {partitions} partitions already; nothing "
                "to do"
            )
        busy = live_members(cur, url.schema)
        if busy:
            raise ConfigurationError(
                f"{where} has running projection members ({', '.join(busy)}); "
                "stop them (`projections run`), then repartition again"
            )
        ends = lock_partitions(cur, url.schema, source)
        kept = 1
        while topic_row(cur, url.schema, f"{base}.old{kept}") is not None:
            kept += 1
        report = Repartitioned(
            where=where,
            source=base,
            topic=base,
            partitions_before=source.partitions,
            partitions=partitions,
            events=sum(ends.values()),
            projections=switch_projections(cur, url.schema, ends, None),
            kept_as=f"{base}.old{kept}",
        )
        if dry_run:
            conn.rollback()
            return report
        target, new_ends = copy_rows(cur, url.schema, source, f"{base}.new", partitions)
        plans = switch_projections(cur, url.schema, ends, new_ends)
        switch_names(cur, url.schema, source, target, report.kept_as or base)
        conn.commit()
    return attrs.evolve(report, projections=plans)
