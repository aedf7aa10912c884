"""``python -m framework log repartition`` on the file store: every stream keeps
its events and their order in a topic of another partition count, projections
switch or replay, and an interrupted or refused run leaves the store as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from example_ledger.domain import Account
from framework import Application
from framework.log.partitioner import partition_for
from framework.store.repartition import read_switch, write_switch
from tests.cli import cli_app
from tests.cli.commands import APP, ROOT, Started, cli, environment

#: The command-line application with 4 partitions; ``unlucky`` never fails.
ENV = {"CLI_PARTITIONS": "4", "CLI_PROJECTIONS": "balances,unlucky", "CLI_FIXED": "1"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file:{tmp_path / 'store'}"


@pytest.fixture(autouse=True)
def _app_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def seed(url: str, *, streams: int, events: int) -> list[str]:
    """``streams`` accounts of ``events`` events each (opening included), saved
    in several rounds so that the streams' batches interleave in every
    partition; ``balances`` caught up, ``unlucky`` registered but never run."""
    rounds = 4
    with cli_app.build(url) as app:
        accounts = [Account.open(f"owner {n}") for n in range(streams)]
        per_round = -(-(events - 1) // rounds)
        for r in range(rounds):
            for n, account in enumerate(accounts):
                for i in range(r * per_round, min((r + 1) * per_round, events - 1)):
                    account.deposit(1 + (n + i) % 97)
                app.save(account)
        app.projections["balances"].catch_up()
        return [a.id for a in accounts]


def streams(url: str, ids: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every stream as loaded: each event's id, version, name, data, time and
    metadata, in order (not where it is stored)."""
    with Application(url) as app:
        return {
            stream_id: [
                (
                    *(e.event_id, e.stream_version, e.name, e.version, e.data),
                    *(e.timestamp_ms, e.correlation_id, e.causation_id),
                    dict(e.headers),
                )
                for e in app.store.read_stream(stream_id)
            ]
            for stream_id in ids
        }


def read_model(app: Application, name: str) -> dict[str, Any]:
    return dict(app.read_model(name).table("balances").items())


def log_files(url: str) -> dict[str, Any]:
    """The bytes of every file of the store's log and stream index, and what
    the projections hold (the read-model file's bytes change on every open)."""
    root = Path(url[len("file:") :])
    files: dict[str, Any] = {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted([*root.glob("log/**/*"), *root.glob("index/*")])
        if p.is_file()
    }
    with cli_app.build(url) as app:
        for name in ("balances", "unlucky"):
            state = app.read_models.state(name)
            assert state is not None
            files[name] = (
                state,
                app.read_models.checkpoints(name, state.generation),
                read_model(app, name),
            )
    return files


def repartition(url: str, partitions: int, *extra: str, now: int = 4) -> Any:
    """The command with the application of ``--app`` built for the ``now``
    partitions the store has."""
    return cli(
        "log", "repartition", "--app", APP, "--url", url,
        "--partitions", str(partitions), *extra,
        **{**ENV, "CLI_PARTITIONS": str(now)},
    )  # fmt: skip


def check_repartition(url: str, *, streams_count: int, events: int) -> None:
    ids = seed(url, streams=streams_count, events=events)
    before = streams(url, ids)
    with cli_app.build(url) as app:
        balances_before = read_model(app, "balances")
    assert sum(len(s) for s in before.values()) == streams_count * events

    done = repartition(url, 16, "--yes")
    assert done.code == 0, done.err
    assert f"copied {streams_count * events:,} events of 'events' (4 partitions)" in (
        done.out
    )
    assert "into 'events.g1' (16 partitions)" in done.out
    assert "balances continues from the new topic's end" in done.out
    assert "unlucky was emptied to replay it" in done.out

    assert streams(url, ids) == before
    # The application now asks for the count the store has.
    os.environ["CLI_PARTITIONS"] = "16"
    with cli_app.build(url) as app:
        assert app.store.partitions == 16
        for stream_id in ids:
            (partition,) = {e.partition for e in app.store.read_stream(stream_id)}
            assert partition == partition_for(stream_id, 16)
        # Caught up before, it serves the same answers and goes on from the new
        # topic's end: events saved now reach it, and nothing is applied twice.
        assert read_model(app, "balances") == balances_before
        assert app.projections["balances"].catch_up() == 0
        account = app.load(Account, ids[0])
        account.deposit(1000)
        app.save(account)
        assert app.projections["balances"].catch_up() == 1
        expected = dict(balances_before)
        expected[ids[0]] = {
            **expected[ids[0]],
            "balance": expected[ids[0]]["balance"] + 1000,
            "events": expected[ids[0]]["events"] + 1,
        }
        assert read_model(app, "balances") == expected
        # Emptied, the other replays the new topic from its start; rebuilt, both
        # give the read model the events say.
        assert read_model(app, "unlucky") == {}
        app.projections["unlucky"].catch_up()
        assert read_model(app, "unlucky") == expected
        app.rebuild("balances")
        app.rebuild("unlucky")
        assert read_model(app, "balances") == expected
        assert read_model(app, "unlucky") == expected


def test_repartition_from_4_to_16_keeps_every_stream_and_every_read_model(
    url: str,
) -> None:
    check_repartition(url, streams_count=1000, events=10)


@pytest.mark.slow
def test_repartition_of_100_000_events_in_1000_streams(url: str) -> None:
    check_repartition(url, streams_count=1000, events=100)


def test_a_second_repartition_copies_the_current_topic_and_keeps_the_first(
    url: str, tmp_path: Path
) -> None:
    ids = seed(url, streams=50, events=3)
    before = streams(url, ids)
    assert repartition(url, 16, "--yes").code == 0
    done = repartition(url, 2, "--yes", now=16)
    assert done.code == 0, done.err
    assert "of 'events.g1' (16 partitions)" in done.out
    assert "into 'events.g2' (2 partitions)" in done.out
    assert streams(url, ids) == before
    with Application(url) as app:
        assert app.store.partitions == 2
    topics = sorted(p.stem for p in (tmp_path / "store/log/topics").glob("*.json"))
    assert topics == ["events", "events.g1", "events.g2"]
    # To the same count again: nothing to do.
    same = repartition(url, 2, "--yes", now=2)
    assert same.code == 1
    assert "has 2 partitions already" in same.err


def test_without_yes_it_says_what_it_would_do_changes_nothing_and_exits_one(
    url: str,
) -> None:
    seed(url, streams=20, events=3)
    files = log_files(url)
    done = repartition(url, 8)
    assert done.code == 1, done.err
    assert "would copy 60 events of 'events' (4 partitions)" in done.out
    assert "into 'events.g1' (8 partitions)" in done.out
    assert "balances would continue" in done.out
    assert "unlucky would be emptied" in done.out
    assert "--yes" in done.out
    assert log_files(url) == files


def _hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding the writer lock at ``path`` until its stdin
    closes; returns once it says it holds it."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from framework.log.backends.segments.lock import FileLock\n"
        f"lock = FileLock(Path({str(path)!r}))\n"
        "assert lock.try_acquire()\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0
    assert holder.stdout is not None
    holder.stdout.close()


def test_refused_while_another_process_holds_a_partition_writer_lock(
    url: str, tmp_path: Path
) -> None:
    ids = seed(url, streams=20, events=3)
    files = log_files(url)
    holder = _hold_lock(tmp_path / "store/log/events-2/writer.lock")
    try:
        done = repartition(url, 8, "--yes")
    finally:
        _release(holder)
    assert done.code == 1
    assert "partition 2 of 'events'" in done.err
    assert "being written" in done.err
    files.pop("log/events-2/writer.lock", None)
    after = log_files(url)
    after.pop("log/events-2/writer.lock", None)
    assert after == files
    # Free again, it goes through.
    before = streams(url, ids)
    assert repartition(url, 8, "--yes").code == 0
    assert streams(url, ids) == before


def test_sigkill_during_the_copy_leaves_the_store_on_its_old_topic_and_a_rerun_ends(
    url: str, tmp_path: Path
) -> None:
    ids = seed(url, streams=200, events=3)
    before = streams(url, ids)
    # The copy's last partition is held by another process, so the command is
    # certainly copying (it said so) and cannot finish when it is killed.
    target = tmp_path / "store/log/events.g1-15"
    target.mkdir()
    holder = _hold_lock(target / "writer.lock")
    try:
        started = Started(
            "log", "repartition", "--app", APP, "--url", url,
            "--partitions", "16", "--yes", **ENV,
        )  # fmt: skip
        try:
            started.wait_for_line("copied")
        finally:
            started.kill()
    finally:
        _release(holder)
    assert started.process.returncode == -9
    assert not (tmp_path / "store/log/topic-switch.json").exists()
    with cli_app.build(url) as app:
        assert app.store.partitions == 4
        assert app.projections["balances"].catch_up() == 0
    assert streams(url, ids) == before

    done = repartition(url, 16, "--yes")
    assert done.code == 0, done.err
    assert "into 'events.g1' (16 partitions)" in done.out
    assert streams(url, ids) == before
    os.environ["CLI_PARTITIONS"] = "16"
    with cli_app.build(url) as app:
        assert app.store.partitions == 16


def test_a_store_whose_repartition_stopped_after_the_copy_refuses_to_open_until_rerun(
    url: str, tmp_path: Path
) -> None:
    ids = seed(url, streams=20, events=3)
    before = streams(url, ids)
    assert repartition(url, 8, "--yes").code == 0
    folder = tmp_path / "store/log"
    switch = read_switch(folder)
    assert switch is not None
    assert switch.done
    # As a crash between recording the plan and applying it leaves it.
    write_switch(folder, attrs.evolve(switch, done=False))
    with pytest.raises(Exception, match=r"interrupted after its copy.*--partitions 8"):
        Application(url)
    done = cli("log", "repartition", "--url", url, "--partitions", "8", "--yes")
    assert done.code == 0, done.err
    assert done.out.startswith("finished: ")
    assert streams(url, ids) == before
