"""``python -m framework projections ...`` on the file store, run as users run it:
status and its exit codes, failures, no store created by mistake, ``--url``,
Ctrl-C during ``run`` and ``rebuild``, and resuming a rebuild."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from framework import Application
from tests.cli import cli_app
from tests.cli.commands import APP, Started, cli, seed, wait_until_failures_cleared

COMMANDS = [
    ("status",),
    ("run",),
    ("rebuild", "balances"),
    ("reset", "balances", "--yes"),
    ("dead-letters", "list", "balances"),
]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file:{tmp_path / 'store'}"


def balances(url: str, name: str = "balances") -> dict[str, int]:
    with Application(url) as app:
        table = app.read_model(name).table("balances")
        return {k: v["balance"] for k, v in table.items()}


# -- status ------------------------------------------------------------------


def test_status_of_a_healthy_store_exits_zero_then_shows_lag_until_run(
    url: str,
) -> None:
    seed(url, deposits=(5, 6))
    done = cli("projections", "status", "--app", APP, "--url", url)
    assert done.code == 0, done.err
    assert "behind" in done.out
    rebuilt = cli("projections", "rebuild", "balances", "--app", APP, "--url", url)
    assert rebuilt.code == 0, rebuilt.err
    assert "rebuilt as generation 2" in rebuilt.out
    assert "100.0%" in rebuilt.err
    after = cli("projections", "status", "--app", APP, "--url", url)
    assert after.code == 0
    assert "behind" not in after.out
    assert after.out.count(" ok") == 2  # a line per partition


def test_status_shows_a_stopped_projection_and_exits_three(url: str) -> None:
    accounts = seed(url, projections="balances,unlucky")
    with cli_app.build(url, "balances,unlucky") as app:
        with pytest.raises(Exception, match="unlucky amount"):
            app.projections["unlucky"].catch_up()
        (failure,) = app.read_models.failures("unlucky", 1)
    done = cli(
        "projections", "status", "--app", APP, "--url", url,
        CLI_PROJECTIONS="balances,unlucky",
    )  # fmt: skip
    assert done.code == 3, done.err
    assert f"STOPPED at offset {failure.offset}" in done.out
    for fact in (
        f"events/{failure.partition} offset {failure.offset}",
        repr(failure.stream_id),
        "ledger.FundsDeposited",
        "ValueError('unlucky amount')",
    ):
        assert fact in done.out
    assert failure.stream_id in accounts
    # Fixed and run again, it applies the event, and the failure is gone.
    runner = Started(
        "projections", "run", "unlucky", "--app", APP, "--url", url,
        CLI_PROJECTIONS="balances,unlucky", CLI_FIXED="1",
    )  # fmt: skip
    try:
        runner.wait_for_line("running")
        with cli_app.build(url, "balances,unlucky") as app:
            wait_until_failures_cleared(app, "unlucky")
            end = app.end_position()
            assert app.read_model("unlucky").wait_for(end, timeout=600)
    finally:
        stopped = runner.interrupt()
    assert stopped.code == 0, stopped.err
    healthy = cli(
        "projections", "status", "--app", APP, "--url", url,
        CLI_PROJECTIONS="balances,unlucky",
    )  # fmt: skip
    assert "STOPPED" not in healthy.out
    assert healthy.code == 0


def test_status_with_parked_events_exits_four(url: str) -> None:
    seed(url, projections="parking")
    with cli_app.build(url, "parking") as app:
        app.projections["parking"].catch_up()
    done = cli(
        "projections", "status", "--app", APP, "--url", url,
        CLI_PROJECTIONS="parking",
    )  # fmt: skip
    assert done.code == 4, done.err
    assert "parked" in done.out
    assert "dead-letters" in done.out


# -- no store is ever created --------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_command_on_a_path_without_a_store_says_so_and_creates_nothing(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    missing = tmp_path / "nothing" / "here"
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (missing, empty):
        done = cli("projections", *command, "--app", APP, "--url", f"file:{folder}")
        assert done.code == 1
        assert f"there is no store at {folder}" in done.err
        assert "Traceback" not in done.err
    assert not missing.parent.exists()
    assert list(empty.iterdir()) == []


def test_an_app_built_from_the_environment_gets_the_url(url: str) -> None:
    seed(url, deposits=(5,))
    done = cli("projections", "status", "--app", "tests.cli.cli_app:app", "--url", url)
    assert done.code == 0, done.err
    assert "balances" in done.out


def test_an_app_with_its_own_url_refuses_another_url(url: str, tmp_path: Path) -> None:
    other = f"file:{tmp_path / 'other'}"
    seed(url)
    seed(other)
    done = cli(
        "projections", "status", "--app", "tests.cli.cli_app:fixed", "--url", url,
        CLI_FIXED_URL=other,
    )  # fmt: skip
    assert done.code == 1
    assert "would be ignored" in done.err
    assert str(tmp_path / "other") in done.err
    assert str(tmp_path / "store") in done.err


def test_a_misspelt_projection_names_the_registered_ones(url: str) -> None:
    seed(url)
    done = cli("projections", "rebuild", "balance", "--app", APP, "--url", url)
    assert done.code == 1
    assert "'balance'" in done.err
    assert "projections: balances" in done.err


def test_reset_wants_confirmation(url: str) -> None:
    seed(url)
    refused = cli("projections", "reset", "balances", "--app", APP, "--url", url)
    assert refused.code == 1
    assert "--yes" in refused.err
    done = cli("projections", "reset", "balances", "--app", APP, "--url", url, "--yes")
    assert done.code == 0, done.err


def test_dead_letters_list_says_when_there_are_none(url: str) -> None:
    seed(url)
    where = ("balances", "--app", APP, "--url", url)
    done = cli("projections", "dead-letters", "list", *where)
    assert (done.code, "no parked events" in done.out) == (0, True)
    retried = cli("projections", "dead-letters", "retry", *where)
    assert retried.code == 0


def test_a_bad_app_spec_is_a_clear_error(url: str) -> None:
    done = cli("projections", "status", "--app", "nocolon", "--url", url)
    assert (done.code, "package.module:attribute" in done.err) == (1, True)
    done = cli("projections", "status", "--app", "no_such_module_x:app")
    assert (done.code, "cannot import" in done.err) == (1, True)


# -- run -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_run_says_when_it_runs_and_stops_on_ctrl_c_with_one_line(
    url: str, signum: int
) -> None:
    accounts = seed(url)
    runner = Started("projections", "run", "--app", APP, "--url", url)
    try:
        line = runner.wait_for_line("running")
        assert re.fullmatch(r"running balances \(member \d+-[0-9a-f]+\); .*\n", line)
        with Application(url) as app:
            read = app.read_model("balances")
            assert read.wait_for(app.end_position(), timeout=600)
    finally:
        done = runner.interrupt(signum)
    assert done.code == 0
    assert done.err.strip().splitlines() == [
        "stopped balances: every member left its group (run the command again to go on)"
    ]
    assert balances(url) == dict.fromkeys(accounts, 18)


# -- rebuild -------------------------------------------------------------------


def test_ctrl_c_stops_a_rebuild_with_one_line_and_running_it_again_resumes(
    url: str,
) -> None:
    accounts = seed(url, projections="blocking", deposits=tuple(range(1, 31)))
    rebuild = Started(
        "projections", "rebuild", "blocking", "--app", APP, "--url", url,
        CLI_PROJECTIONS="blocking", CLI_BLOCK_AT="25",
    )  # fmt: skip
    try:
        rebuild.wait_for_line("blocked")  # mid-batch, after some progress
    except BaseException:
        rebuild.kill()
        raise
    done = rebuild.interrupt()
    assert done.code == 130
    assert "Traceback" not in done.err
    assert "ev/s" in done.err  # the progress bar was showing
    last = done.err.strip().splitlines()[-1]
    match = re.fullmatch(
        r"interrupted: rebuilt (\d+) of 62 events of 'blocking'; the old copy "
        r"still serves queries; run the same command again to resume from there",
        last,
    )
    assert match, done.err
    done_before = int(match[1])
    assert 0 < done_before < 62
    # What it says it did is what it committed: at least what it showed.
    shown_before = [int(n) for n in re.findall(r" (\d+)/62 events", done.err)]
    assert 0 < max(shown_before) <= done_before
    again = cli(
        "projections", "rebuild", "blocking", "--app", APP, "--url", url,
        CLI_PROJECTIONS="blocking",
    )  # fmt: skip
    assert again.code == 0, again.err
    assert "rebuilt as generation 2" in again.out
    # It went on from where it was: no progress below what was done before.
    shown = [int(n) for n in re.findall(r" (\d+)/62 events", again.err)]
    assert shown
    assert min(shown) > done_before
    assert balances(url, "blocking") == dict.fromkeys(accounts, sum(range(1, 31)))
