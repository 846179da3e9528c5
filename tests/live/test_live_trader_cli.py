"""The trader's command line as a user runs it: exit codes, messages, signals, working folder."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import borrowing_venv
from tests.live.conftest import ROOT, SMA_CROSS

TRADER = ROOT / "live" / "live_trader.py"


def settings(tmp_path: Path, **extra: str) -> Path:
    """A settings file keeping every file the trader writes inside tmp_path."""
    values = {
        "AUDIT_DB": tmp_path / "audit.db",
        "LOG_DIR": tmp_path / "logs",
        "KILL_SWITCH_FILE": tmp_path / "KILL_SWITCH",
        "LOCK_DIR": tmp_path / "locks",
        "MT5_BACKEND": "sim",
        **extra,
    }
    path = tmp_path / "test.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def run_trader(
    tmp_path: Path, *args: str, cwd: Path = ROOT, timeout: float = 120, config: Path | None = None
) -> subprocess.CompletedProcess:
    config = config or settings(tmp_path)
    return subprocess.run(
        [sys.executable, str(TRADER), "--config", str(config), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nowhere/missing.py"], "nowhere/missing.py"),
        (["--strategy", str(SMA_CROSS), "--timeframe", "H7"], "H7"),
        (["--strategy", str(SMA_CROSS), "--param", "fast=ten"], "fast"),
        (["--strategy", str(SMA_CROSS), "--param", "fast=40"], "fast=40"),
        (["--strategy", str(SMA_CROSS), "--symbols", "NOSUCH"], "NOSUCH"),
        (["--strategy", str(SMA_CROSS), "--sim-speed", "fast"], "fast"),
        (["--strategy", str(SMA_CROSS), "--backend", "mt5"], "MetaTrader5"),
        ([], "--strategy"),
        (["--strategy", str(SMA_CROSS), "--config", "nowhere/missing.env"], "missing.env"),
    ],
)
def test_bad_input_exits_2_naming_the_value(tmp_path, args, message):
    done = run_trader(tmp_path, *args, "--max-bars", "3")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


STRATEGY_FAULTS = {
    "raises_in_init": (
        "from backtest.strategies.sma_cross import SmaCross\n\n\n"
        "class Broken(SmaCross):\n    def __init__(self, **params):\n"
        "        raise ValueError('no licence key')\n",
        "no licence key",
    ),
    "exits_on_import": ("import sys\nsys.exit(5)\n", "SystemExit"),
    "raises_on_import": ("raise RuntimeError('half-written file')\n", "half-written file"),
}


@pytest.mark.parametrize("fault", sorted(STRATEGY_FAULTS))
def test_a_strategy_that_fails_to_load_exits_2_and_writes_no_database(tmp_path, fault):
    source, message = STRATEGY_FAULTS[fault]
    strategy = tmp_path / f"{fault}.py"
    strategy.write_text(source)
    done = run_trader(tmp_path, "--strategy", str(strategy), "--max-bars", "3")
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and str(strategy) in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count(message) == 1
    assert not (tmp_path / "audit.db").exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"SIM_DATA": "{tmp}/nowhere.csv"}, "nowhere.csv"),
        ({"AUDIT_DB": "{tmp}/a_file/audit.db"}, "a_file"),
        ({"LOG_DIR": "{tmp}/a_file/logs"}, "LOG_DIR"),
        ({"SYMBOLS": "EURUSD,NOSUCH"}, "NOSUCH"),
        ({"BROKER_TZ": "Mars/Olympus"}, "BROKER_TZ"),
        ({"SESSIONS": "EURUSD=Fri 10:00-Mon 08:00"}, "inverted"),
        ({"SESSIONS": "*=Mon 00:00-Fri 23:00 break 10:00-12:00 break 11:00-13:00"}, "overlaps"),
        ({"TRADE_HOURS": "20:00-08:00"}, "TRADE_HOURS"),
        ({"CALENDAR_FILE": "{tmp}/calendar.csv", "NEWS_BEFORE_MIN": "30"}, "line 3"),
        ({"NEWS_IMPACT": "huge"}, "NEWS_IMPACT"),
    ],
)
def test_settings_that_cannot_work_exit_2_and_write_no_database(tmp_path, setting, message):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "calendar.csv").write_text(  # its second event names no currency
        "time,currency,impact,title\n2020-03-09 13:30,USD,high,CPI\n2020-03-10 13:30,US,high,X\n"
    )
    extra = {k: v.format(tmp=tmp_path) for k, v in setting.items()}
    config = settings(tmp_path, **extra)
    done = subprocess.run(
        [
            sys.executable,
            str(TRADER),
            "--config",
            str(config),
            "--strategy",
            str(SMA_CROSS),
            "--max-bars",
            "3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "audit.db").exists()


def test_runs_the_same_from_the_live_folder(tmp_path):
    done = run_trader(
        tmp_path,
        "--strategy",
        "backtest/strategies/sma_cross.py",
        "--max-bars",
        "40",
        cwd=ROOT / "live",
    )
    assert done.returncode == 0, done.stderr
    assert "closed bars 40" in done.stderr + done.stdout
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        assert conn.execute("SELECT count(*) FROM signals").fetchone()[0] == 40


def wait_for_event(db: Path, kind: str, process: subprocess.Popen, deadline_s: float = 60) -> None:
    """Poll the audit DB until `kind` is recorded (the trader writes it; no fixed sleep)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    found = conn.execute("SELECT 1 FROM events WHERE kind = ?", (kind,)).fetchone()
            except sqlite3.OperationalError:
                found = None  # the tables are being created
            if found:
                return
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event within {deadline_s} s")


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully_with_a_summary(tmp_path, sig):
    process = subprocess.Popen(
        [
            sys.executable,
            str(TRADER),
            "--config",
            str(settings(tmp_path)),
            "--strategy",
            str(SMA_CROSS),
            "--sim-speed",
            "60",
            "--interval",
            "0.05",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_event(tmp_path / "audit.db", "startup", process)
    process.send_signal(sig)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"stopped: signal {sig.name}" in err
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        (message,) = conn.execute("SELECT message FROM events WHERE kind = 'shutdown'").fetchone()
    assert message == f"signal {sig.name}"


def script_copy(tmp_path: Path) -> Path:
    """The start script beside the code it starts (linked), without a .venv yet."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("start_trader.sh", "requirements.txt"):
        shutil.copy2(ROOT / name, project / name)
    for name in ("live", "backtest"):
        (project / name).symlink_to(ROOT / name)
    return project


def start_script(
    project: Path, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(project / "start_trader.sh"),
            "--config",
            str(settings(tmp_path)),
            "--strategy",
            str(SMA_CROSS),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env},
    )


@pytest.mark.skipif(os.name == "nt", reason="the POSIX start script")
def test_start_script_sets_up_once_then_passes_its_arguments_to_the_trader(tmp_path):
    project = script_copy(tmp_path)
    borrowing_venv(project / ".venv")  # as an install cut short: no marker yet
    first = start_script(project, tmp_path, "--max-bars", "7")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Setting up the virtual environment" in first.stdout
    assert "closed bars 7" in first.stderr
    assert (project / ".venv" / ".installed-requirements").read_bytes() == (
        project / "requirements.txt"
    ).read_bytes()
    again = start_script(project, tmp_path, "--max-bars", "3")
    assert again.returncode == 0, again.stderr
    assert "Setting up" not in again.stdout and "closed bars 3" in again.stderr
    with (project / "requirements.txt").open("a") as requirements:
        requirements.write("# changed\n")
    changed = start_script(project, tmp_path, "--max-bars", "3")
    assert changed.returncode == 0, changed.stderr
    assert "Setting up the virtual environment" in changed.stdout


@pytest.mark.skipif(os.name == "nt", reason="the POSIX start script")
def test_start_script_refuses_a_python_older_than_3_11(tmp_path):
    project = script_copy(tmp_path)
    old_python = tmp_path / "python3.10"  # answers the version probe as a 3.10 would
    old_python.write_text("#!/bin/sh\n[ \"$1\" = -V ] && echo 'Python 3.10.14' && exit 0\nexit 1\n")
    old_python.chmod(0o755)
    done = start_script(project, tmp_path, PYTHON=str(old_python))
    assert done.returncode == 2
    assert "Python 3.10.14 is too old" in done.stderr and "3.11 or newer" in done.stderr
    assert not (project / ".venv").exists()


def test_strategy_raising_on_import_exits_2(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('half-written strategy')\n")
    done = run_trader(tmp_path, "--strategy", str(broken), "--max-bars", "3")
    assert done.returncode == 2
    assert "broken.py" in done.stderr and "half-written strategy" in done.stderr


def test_malformed_settings_file_exits_2_naming_the_key(tmp_path):
    env = settings(tmp_path)
    env.write_text(env.read_text() + "MAX_DAILY_LOSS_PCT=lots\n")
    done = subprocess.run(
        [sys.executable, str(TRADER), "--config", str(env), "--strategy", str(SMA_CROSS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "MAX_DAILY_LOSS_PCT" in done.stderr and "lots" in done.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("THIS IS NOT A LINE", "{env} line {n}: cannot parse 'THIS IS NOT A LINE' (expected KEY"),
        ('MT5_PASSWORD="pw-never-shown', "{env} line {n}: cannot parse 'MT5_PASSWORD=***'"),
        ("TELEGRAM_BOT_TOKEN=123456:tok-never-shown", "TELEGRAM_CHAT_ID is empty"),
    ],
    ids=["unparseable", "unclosed-quote-of-a-secret", "telegram-token-alone"],
)
def test_a_settings_file_the_trader_cannot_use_exits_2_naming_it(tmp_path, line, message):
    env = settings(tmp_path)
    env.write_text(env.read_text() + f"{line}\n")
    done = run_trader(tmp_path, "--strategy", str(SMA_CROSS), "--max-bars", "3", config=env)
    assert done.returncode == 2, done.stderr
    shown = message.format(env=env, n=len(env.read_text().splitlines()))  # the last line
    assert f"error: {shown}" in done.stderr
    assert "never-shown" not in done.stderr and "dotenv" not in done.stderr
    assert not (tmp_path / "audit.db").exists()


def test_locked_audit_database_exits_2_and_writes_nothing(tmp_path):
    db = tmp_path / "audit.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        done = run_trader(tmp_path, "--strategy", str(SMA_CROSS), "--max-bars", "3")
    finally:
        holder.execute("ROLLBACK")
    assert done.returncode == 2
    assert "locked" in done.stderr and str(db) in done.stderr
    assert [r[0] for r in holder.execute("SELECT name FROM sqlite_master")] == ["other"]
    holder.close()


def test_a_second_run_on_the_simulator_carries_on_where_the_first_stopped(tmp_path):
    for _ in range(2):
        done = run_trader(tmp_path, "--strategy", str(SMA_CROSS), "--max-bars", "30")
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        bars = [r[0] for r in conn.execute("SELECT bar_time FROM signals ORDER BY id")]
    assert len(bars) == 60 and bars == sorted(set(bars))  # no bar decided twice, no gap back
    assert "simulated market resumed" in done.stderr


def test_rows_removed_from_the_end_are_caught_by_the_heads_in_the_log(tmp_path):
    from tests.live.test_audit_logger import tamper

    done = run_trader(
        tmp_path,
        "--strategy",
        str(SMA_CROSS),
        "--param",
        "fast=2",
        "--param",
        "slow=4",
        "--max-bars",
        "30",
    )
    assert done.returncode == 0, done.stderr
    db, log = tmp_path / "audit.db", tmp_path / "logs" / "live_trader.log"

    def verify(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "live.audit_logger", "verify", str(db), *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )

    intact = verify("--anchor", str(log))
    assert intact.returncode == 0 and "recorded heads: all 5 still in place" in intact.stdout
    head = next(
        line.split("head ")[1] for line in intact.stdout.splitlines() if line.startswith("trades")
    )
    tamper(db, "DELETE FROM trades WHERE id = (SELECT max(id) FROM trades)")
    assert verify().returncode == 0  # the chain alone cannot see a shortened end
    for anchor in (["--anchor", str(log)], ["--expect", head]):
        cut = verify(*anchor)
        assert cut.returncode == 1 and "TRUNCATED  trades: row" in cut.stdout, cut.stdout
