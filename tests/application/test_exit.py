"""An application left open is closed when the interpreter exits: nothing is
printed at exit, and what it saved is there when the store is opened again."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from example_ledger.projections import Balances
from framework import Application

ROOT = Path(__file__).resolve().parents[2]

#: Opens an application, saves, projects in every way, and exits without
#: closing it (the application stays referenced by the module until exit).
LEFT_OPEN = textwrap.dedent(
    """
    import sys

    from example_ledger.commands import Deposit, OpenAccount, router
    from example_ledger.projections import Balances
    from framework import Application

    class Inline(Balances):
        name = "inline_balances"

    app = Application(sys.argv[1], router=router)
    pulled = app.project(Balances())
    inline = app.project(Inline(), inline=True)
    if sys.argv[2] == "runner":
        app.start_projections()  # never stopped
    account = app.handle(OpenAccount("alice")).value
    position = app.handle(Deposit(account, 7)).position
    if sys.argv[2] != "runner":
        app.projections["balances"].catch_up()
    assert pulled.get("balances", account, after=position, timeout=60)["balance"] == 7
    assert inline.answer("balances", account).value["balance"] == 7
    print(account, flush=True)
    """
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    import psycopg
    from psycopg import sql

    from tests.conftest import database_url

    schema = f"fwexit_{secrets.token_hex(4)}"
    base = database_url()
    yield f"{base}{'&' if '?' in base else '?'}schema={schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@pytest.fixture(
    params=["memory", "file", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "file":
        return f"file:{tmp_path / 'store'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("runner", ["runner", "no runner"])
def test_an_application_left_open_closes_quietly_at_exit(
    url: str, runner: str, tmp_path: Path
) -> None:
    script = tmp_path / "left_open.py"
    script.write_text(LEFT_OPEN)
    done = subprocess.run(
        # Development mode shows the ResourceWarnings of connections and files
        # that finalizers close; as errors, each would print a traceback.
        [sys.executable, "-X", "dev", "-W", "error", str(script), url, runner],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.stderr == ""
    assert done.returncode == 0
    account = done.stdout.strip()
    if url.startswith("memory:"):
        return
    with Application(url) as again:
        assert [e.stream_version for e in again.read_stream(account)] == [1, 2]
        read = again.project(Balances())
        assert read.answer("balances", account).value["balance"] == 7
