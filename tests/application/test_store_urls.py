"""file: URLs name a folder; the application keeps log, index and read models there."""

from __future__ import annotations

from pathlib import Path

import pytest

from example_ledger.domain import Account
from framework import Application, ConfigurationError
from framework.application.settings import file_root


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:./var/ledger", Path("var/ledger")),
        ("file:var/ledger", Path("var/ledger")),
        ("file:/srv/ledger", Path("/srv/ledger")),
        ("file:///srv/ledger", Path("/srv/ledger")),
        ("file://localhost/srv/ledger", Path("/srv/ledger")),
        ("file:///srv/my%20ledger", Path("/srv/my ledger")),
    ],
)
def test_file_urls_name_a_folder(url: str, path: Path) -> None:
    assert file_root(url) == path


@pytest.mark.parametrize("url", ["file:", "file://otherhost/srv/ledger"])
def test_bad_file_urls_say_what_to_write(url: str) -> None:
    with pytest.raises(ConfigurationError, match="file:"):
        file_root(url)


def test_a_file_store_keeps_everything_under_its_folder_and_reopens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Application("file:./store") as app:
        account = Account.open("alice")
        account.deposit(5)
        app.save(account)
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["index", "log"]
    with Application(f"file://{tmp_path / 'store'}") as app:
        assert app.load(Account, account.id).balance == 5
