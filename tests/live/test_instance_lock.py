"""One trader per audit database and per account: a second one is refused naming the first, a
SIGKILLed one leaves nothing that blocks its restart, `--check` names a running one."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from live.instance_lock import AlreadyRunning, InstanceLock, holder_of
from tests.live.conftest import ROOT, SMA_CROSS

HOLD = (
    "import sys; from pathlib import Path; from live.instance_lock import InstanceLock; "
    "lock = InstanceLock(Path(sys.argv[1]), 'the test file', command='holder --secret-free'); "
    "lock.acquire(); print('locked', flush=True); sys.stdin.read()"
)


@pytest.fixture
def holder_process(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the lock on tmp_path/x.lock (it says so before we go on)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "x.lock")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "locked"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def test_a_second_holder_is_refused_naming_the_first(holder_process, tmp_path):
    with pytest.raises(AlreadyRunning) as refused:
        InstanceLock(tmp_path / "x.lock", "the test file").acquire()
    holder = refused.value.holder
    assert holder is not None and holder.pid == holder_process.pid
    assert holder.host == socket.gethostname() and holder.command == "holder --secret-free"
    message = str(refused.value)
    assert f"pid {holder_process.pid}" in message and "the test file" in message
    assert holder_of(tmp_path / "x.lock") == holder


def test_a_sigkilled_holder_leaves_no_lock_behind(holder_process, tmp_path):
    holder_process.send_signal(signal.SIGKILL)
    holder_process.wait(timeout=10)
    assert (tmp_path / "x.lock").exists()  # the file stays; without its holder it means nothing
    assert holder_of(tmp_path / "x.lock") is None
    with InstanceLock(tmp_path / "x.lock", "the test file") as lock:
        assert holder_of(lock.path).pid == os.getpid()
    assert holder_of(tmp_path / "x.lock") is None  # released on the way out


def test_one_process_cannot_hold_the_same_lock_twice(tmp_path):
    """flock locks belong to an open file, not a process: a second open in the same process
    must be refused too (a trader built twice in one process)."""
    with InstanceLock(tmp_path / "x.lock", "the test file"), pytest.raises(AlreadyRunning):
        InstanceLock(tmp_path / "x.lock", "the test file").acquire()


# ---------------------------------------------------------------- whole traders


def settings(folder: Path, **extra: object) -> Path:
    path = folder / "trader.env"
    lines = {
        "AUDIT_DB": folder / "audit.db",
        "LOG_DIR": folder / "logs",
        "KILL_SWITCH_FILE": folder / "KILL",
        "LOCK_DIR": folder / "locks",
        "MT5_BACKEND": "sim",
        "LOG_LEVEL": "INFO",
        **extra,
    }
    path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
    return path


def trader(env: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "live" / "live_trader.py"),
        "--config",
        str(env),
        "--strategy",
        str(SMA_CROSS),
        *extra,
    ]


def startups(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM events WHERE kind = 'startup'").fetchone()[0]


def start_running(command: list[str]) -> subprocess.Popen:
    """A trader that idles once started (real-time simulated clock, no new bar for a while);
    returns when it says it is trading."""
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    for line in process.stderr:
        if "kill switch: touch" in line:  # the last line start() logs
            return process
    raise AssertionError(f"the first trader did not start: exit {process.wait(timeout=30)}")


@pytest.mark.slow
def test_a_second_trader_on_one_database_is_refused_and_a_killed_one_restarts(tmp_path):
    env = settings(tmp_path)
    first = start_running(trader(env, "--dry-run", "--sim-speed", "1", "--interval", "0.2"))
    try:
        second = subprocess.run(
            trader(env, "--dry-run", "--max-bars", "5"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
        assert "started 20" in second.stderr and "live_trader.py" in second.stderr
        assert str(tmp_path / "audit.db") in second.stderr
        check = subprocess.run(
            trader(env, "--check"), cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert f"a trader is running on this database: pid {first.pid}" in check.stdout
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert startups(tmp_path / "audit.db") == 1  # the refused one wrote nothing
        again = subprocess.run(
            trader(env, "--dry-run", "--max-bars", "5"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
    finally:
        if first.poll() is None:
            first.kill()
        first.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.served
def test_a_second_live_trader_on_one_account_is_refused_even_with_its_own_database(
    tmp_path, served_sim
):
    folders = [tmp_path / "one", tmp_path / "two"]
    envs = []
    for folder in folders:
        folder.mkdir()
        envs.append(
            settings(
                folder,
                MT5_BACKEND="mt5linux",
                MT5LINUX_PORT=served_sim.port,
                LOCK_DIR=tmp_path / "machine-locks",
            )
        )
    first = start_running(trader(envs[0], "--live", "--sim-speed", "1", "--interval", "0.2"))
    try:
        second = subprocess.run(
            trader(envs[1], "--live", "--sim-speed", "1", "--max-bars", "1"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr
        assert "magic number 240601" in second.stderr and f"pid {first.pid}" in second.stderr
        assert not (folders[1] / "audit.db").exists()  # refused before writing anything
        # a dry run sends nothing to the account: it may run beside, on its own database
        start_running(trader(envs[1], "--dry-run", "--sim-speed", "1", "--interval", "0.2")).kill()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
