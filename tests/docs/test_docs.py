"""Every code block in README.md and docs/ runs, so the documentation cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def test_every_block_is_python_or_console() -> None:
    for path in DOCS:
        for lang, _ in FENCE.findall(path.read_text()):
            assert lang in {"python", "console"}, f"{path.name}: unknown block {lang}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_python_blocks_run_in_order(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    for number, body in enumerate(blocks(path, "python"), 1):
        code = compile(body, f"{path.name} block {number}", "exec", dont_inherit=True)
        exec(code, namespace)  # noqa: S102 - running our own documentation


def test_readme_console_commands_are_make_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    commands = [
        line.split("#")[0].strip()
        for body in blocks(ROOT / "README.md", "console")
        for line in body.splitlines()
    ]
    assert commands == ["make demo", "make test"]
    for command in commands:
        assert re.search(rf"^{command.split()[1]}:", makefile, re.MULTILINE)


def make_demo(url: str) -> str:
    env = {**os.environ, "PYTHON": sys.executable, "DEMO_URL": url}
    done = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_demo_adds_up_and_a_second_run_continues_from_the_files(
    tmp_path: Path,
) -> None:
    url = f"file:{tmp_path / 'ledger'}"
    first = make_demo(url)
    assert "adds up" in first
    assert "DOES NOT" not in first
    assert f"data kept in {tmp_path / 'ledger'}" in first
    second = make_demo(url)
    assert "continuing from the stored state: 12 events already stored" in second
    assert "alice    14702 /    14702" in second
    assert "adds up" in second
