"""Every Linux command in SETUP_AND_TESTING.md works: each ```sh block runs, in order, in a
fresh copy of the project (the committed files and a venv that borrows this checkout's
packages), as a new user would run it, under the system's plain `sh` (dash on Debian), so
nothing in them needs bash."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import borrowing_venv

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "SETUP_AND_TESTING.md"


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def fresh_copy(target: Path) -> Path:
    """The files git tracks (or, without git, the tree minus local state) and a venv."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        names = [n for n in listed.stdout.decode().split("\0") if n]
    else:
        skip = {".venv", ".git", "data", "logs", ".pytest_cache", ".ruff_cache"}
        names = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts)
        ]
    for name in names:
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    borrowing_venv(target / ".venv")
    return target


def run_block(block: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One block in its own `sh` and process group; whatever it left running is killed."""
    process = subprocess.Popen(
        ["sh", "-eu", "-c", block],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def tails(project: Path) -> str:
    return "\n".join(f"{log.name}: {log.read_text()[-1500:]}" for log in project.glob("*.log"))


def test_the_guide_has_the_stages():
    blocks = sh_blocks(GUIDE.read_text())
    assert len(blocks) >= 6
    joined = "\n".join(blocks)
    for command in (
        "--check",
        "--dry-run",
        "dashboard.py",
        "KILL_SWITCH",
        "kill -KILL",
        "audit_logger verify",
    ):
        assert command in joined


@pytest.mark.slow
def test_every_linux_command_in_the_guide_works(tmp_path):
    project = fresh_copy(tmp_path / "project")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for number, block in enumerate(sh_blocks(GUIDE.read_text()), start=1):
        done = run_block(block, project, env)
        assert done.returncode == 0, (
            f"block {number} failed ({done.returncode}):\n{block}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n"
            f"{done.stderr[-3000:]}\n--- logs\n{tails(project)}"
        )
        if "HAVING count(*) > 1" in block:
            assert "(no rows)" in done.stdout, f"block {number} found duplicates"
    assert (project / "sma_report.html").stat().st_size > 10_000
    assert not (project / "KILL_SWITCH").exists()
