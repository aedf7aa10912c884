"""The projections commands: status, rebuild, reset and dead letters."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.cli.projections import add_projection_commands
from framework.errors import ConfigurationError

APP_MODULE = textwrap.dedent(
    """
    from example_ledger.commands import Deposit, OpenAccount, router
    from example_ledger.projections import Balances
    from framework import Application, AppSettings

    # Eight partitions: the status lists each one.
    app = Application("memory://", router=router, settings=AppSettings(partitions=8))
    balances = app.project(Balances())
    ids = [app.handle(OpenAccount(f"o{n}")).value for n in range(4)]
    for account in ids:
        app.handle(Deposit(account, 10))
    """
)


@pytest.fixture
def app_spec(tmp_path: Path) -> Iterator[str]:
    name = f"cli_app_{abs(hash(tmp_path))}"
    (tmp_path / f"{name}.py").write_text(APP_MODULE)
    sys.path.insert(0, str(tmp_path))
    yield f"{name}:app"
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    groups = parser.add_subparsers(dest="group", required=True)
    add_projection_commands(groups)
    args = parser.parse_args(argv)
    return int(args.run(args))


def test_status_shows_lag_per_partition_then_none_after_a_rebuild(
    app_spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("projections", "status", "--app", app_spec) == 0
    before = capsys.readouterr().out
    assert "behind" in before
    assert run("projections", "rebuild", "balances", "--app", app_spec) == 0
    rebuilt = capsys.readouterr()
    assert "rebuilt as generation 2" in rebuilt.out
    assert "100.0%" in rebuilt.err
    assert "ev/s" in rebuilt.err
    assert run("projections", "status", "--app", app_spec) == 0
    after = capsys.readouterr().out
    assert "behind" not in after
    assert after.count(" ok") == 8


def test_reset_wants_confirmation(app_spec: str) -> None:
    with pytest.raises(ConfigurationError, match="--yes"):
        run("projections", "reset", "balances", "--app", app_spec)
    assert run("projections", "reset", "balances", "--app", app_spec, "--yes") == 0


def test_an_unknown_projection_names_the_registered_ones(app_spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"registered: balances"):
        run("projections", "rebuild", "nope", "--app", app_spec)


def test_dead_letters_list_says_when_there_are_none(
    app_spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run("projections", "dead-letters", "list", "balances", "--app", app_spec) == 0
    )
    assert "no parked events" in capsys.readouterr().out
    assert (
        run("projections", "dead-letters", "retry", "balances", "--app", app_spec) == 0
    )


def test_a_bad_app_spec_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match=r"package\.module:attribute"):
        run("projections", "status", "--app", "nocolon")
    with pytest.raises(ConfigurationError, match="cannot import"):
        run("projections", "status", "--app", "no_such_module_x:app")
