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


def test_make_demo_runs_and_the_balances_add_up() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
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
    assert "adds up" in done.stdout
    assert "DOES NOT" not in done.stdout
