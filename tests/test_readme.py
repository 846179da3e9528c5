"""README's commands work on a fresh copy of the project, as a new user types them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.test_setup_and_testing import fresh_copy

ROOT = Path(__file__).resolve().parents[1]


def tracked_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    return set(listed.stdout.split())


def backtest_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Backtest in one minute", 1)[1]
    block = re.search(r"^```\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE).group(1)
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_backtest_commands_run_in_order_on_a_fresh_copy(tmp_path):
    project = fresh_copy(tmp_path / "project")
    commands = backtest_block()
    assert any("--data data/EURUSD_H1.csv" in c for c in commands)
    for command in commands:
        done = subprocess.run(
            ["sh", "-eu", "-c", command],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
    assert (project / "reports" / "sma.html").is_file()
    assert (project / "reports" / "out.json").is_file()
    written = [str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()
               and str(p.relative_to(project)) not in tracked_files()
               and not {".venv", "__pycache__"} & set(p.relative_to(project).parts)]  # fmt: skip
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)  # to read its .gitignore
    kept_out = subprocess.run(["git", "check-ignore", "--no-index", *written], cwd=project,
                              capture_output=True, text=True)  # fmt: skip
    assert written and set(kept_out.stdout.split()) == set(written)  # git ignores every output
