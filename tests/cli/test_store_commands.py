"""``python -m framework store drop``: deletes a file store when told to, and only
a folder that is one."""

from __future__ import annotations

from pathlib import Path

from tests.cli.commands import APP, Started, cli, seed


def test_drop_says_what_it_would_delete_and_deletes_only_with_yes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    url = f"file:{root}"
    seed(url)
    asked = cli("store", "drop", "--url", url)
    assert asked.code == 1
    assert f"would delete {root}" in asked.out
    assert "--yes" in asked.out
    assert (root / "log").is_dir()
    done = cli("store", "drop", "--url", url, "--yes")
    assert done.code == 0, done.err
    assert f"deleted {root}" in done.out
    assert not root.exists()
    # Nothing is left to look at afterwards.
    gone = cli("projections", "status", "--app", APP, "--url", url)
    assert gone.code == 1
    assert "there is no store" in gone.err
    assert not root.exists()


def test_drop_refuses_a_folder_that_is_not_a_store(tmp_path: Path) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    done = cli("store", "drop", "--url", f"file:{folder}", "--yes")
    assert done.code == 1
    assert "there is no store" in done.err
    assert (folder / "thesis.txt").exists()


def test_drop_refuses_a_store_folder_holding_other_things(tmp_path: Path) -> None:
    root = tmp_path / "store"
    url = f"file:{root}"
    seed(url)
    (root / "notes.txt").write_text("mine")
    done = cli("store", "drop", "--url", url, "--yes")
    assert done.code == 1
    assert "notes.txt" in done.err
    assert (root / "log").is_dir()


def test_drop_refuses_a_store_that_a_runner_is_using(tmp_path: Path) -> None:
    root = tmp_path / "store"
    url = f"file:{root}"
    seed(url)
    runner = Started("projections", "run", "--app", APP, "--url", url)
    try:
        runner.wait_for_line("running")
        done = cli("store", "drop", "--url", url, "--yes")
    finally:
        runner.interrupt()
    assert done.code == 1
    assert "in use" in done.err
    assert (root / "log").is_dir()
