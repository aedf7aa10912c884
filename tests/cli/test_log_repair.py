"""``python -m framework log repair``: damage that recovery refuses to guess about is
cut off only when asked, and the command says what it dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from example_ledger.domain import Account
from framework import Application, AppSettings
from framework.cli.main import main
from framework.errors import CorruptLogError


def damaged_store(tmp_path: Path) -> tuple[str, Account]:
    url = f"file:{tmp_path / 'store'}"
    with Application(url, settings=AppSettings(partitions=1)) as app:
        account = Account.open("alice")
        app.save(account)
        for amount in range(1, 6):
            account.deposit(amount)
            app.save(account)
    (segment,) = (tmp_path / "store" / "log" / "events-0").glob("*.log")
    data = bytearray(segment.read_bytes())
    # Flip a byte inside the third batch: valid batches follow it, so this is not a
    # torn tail and opening must refuse to guess.
    end = data.rstrip(b"\0")
    data[len(end) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    return url, account


def test_damage_mid_log_is_refused_until_repaired_and_the_repair_says_what_it_drops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, account = damaged_store(tmp_path)
    with (
        pytest.raises(CorruptLogError, match=r"\.log.* byte"),
        Application(url, settings=AppSettings(partitions=1)) as app,
    ):
        app.load(Account, account.id)
    files = _files(tmp_path)
    # Without --yes: a dry run that says what it would drop and changes nothing.
    assert main(["log", "repair", "--url", url]) == 1
    dry = capsys.readouterr().out
    assert "events/0:" in dry
    assert "would drop" in dry
    assert "--yes" in dry
    assert _files(tmp_path) == files
    assert main(["log", "repair", "--url", url, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "events/0:" in out
    assert "dropped" in out
    assert "1 partition(s) repaired" in out
    # The same file, byte, reason, offsets and byte count as the dry run promised.
    (promised,) = (line for line in dry.splitlines() if line.startswith("events/0:"))
    (done,) = (line for line in out.splitlines() if line.startswith("events/0:"))
    assert done == promised.replace("would drop", "dropped").replace(
        "would end", "now ends"
    )
    with Application(url, settings=AppSettings(partitions=1)) as app:
        loaded = app.load(Account, account.id)
        assert 1 <= loaded.version < 6
        assert loaded.balance == sum(range(1, loaded.version))
    assert main(["log", "repair", "--url", url, "--yes"]) == 0
    assert "nothing dropped" in capsys.readouterr().out
    assert main(["log", "repair", "--url", url]) == 0
    assert "nothing would be dropped" in capsys.readouterr().out


def _files(tmp_path: Path) -> dict[str, bytes]:
    """Every file of the store's log and its bytes."""
    log = tmp_path / "store" / "log"
    return {str(p): p.read_bytes() for p in sorted(log.rglob("*")) if p.is_file()}


def test_repair_wants_a_file_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "repair", "--url", "memory://", "--yes"]) == 1
    assert "file:PATH" in capsys.readouterr().err
