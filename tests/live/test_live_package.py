"""What the original design names, working as it names it: the `live` package's exports, the
quick-start connection check run from live/, `start_trader strategy.py --dry-run` with the
strategy given without --strategy, and the end-of-session hint when started from live/."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import live
from live.mt5_connector import MT5Connector
from live.trader_cli import main as trader_main
from tests.live.conftest import ROOT, SMA_CROSS
from tests.live.test_live_trader_cli import script_copy, settings

SEED = Path("/work/shared/seed/000_0bac072cdbdc83ab.txt")
# the design's step 2, "Test connection", as it is written there
QUICK_START = (
    "from mt5_connector import MT5Connector; from config import LiveConfig; c = LiveConfig(); "
    "m = MT5Connector(c); print('OK' if m.initialize() else 'FAIL'); m.shutdown()"
)


def test_each_exported_name_is_its_module_class():
    assert live.__all__ == sorted(live.__all__) and "LiveTrader" in live.__all__
    for name in live.__all__:
        owner = importlib.import_module(live._EXPORTS[name])
        assert getattr(live, name) is getattr(owner, name), name
        assert name in dir(live)
    from live import AlertSystem, LiveConfig, MT5Connector  # the design's import form

    assert MT5Connector.__module__ == "live.mt5_connector" and LiveConfig.__name__ == "LiveConfig"
    assert AlertSystem.__module__ == "live.alerts"
    with pytest.raises(AttributeError, match="NoSuchThing"):
        live.NoSuchThing  # noqa: B018


def test_importing_the_package_alone_loads_nothing_heavy():
    code = (
        "import sys, live; heavy = [m for m in ('pandas', 'flask', 'numpy', 'live.live_trader') "
        "if m in sys.modules]; print(heavy); "
        "from live import LiveConfig; print(LiveConfig.__module__, 'flask' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "live.config False"]


def test_the_design_quick_start_check_prints_ok_from_live():
    if SEED.is_file():  # the snippet is still the design's
        assert QUICK_START in SEED.read_text()
    done = subprocess.run(
        [sys.executable, "-c", QUICK_START],
        cwd=ROOT / "live",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "OK\n"  # no MT5 terminal here: the dry-run default reaches the simulator
    assert "BUILT-IN SIMULATOR" in done.stderr


def test_initialize_answers_true_or_false_like_metatrader5(live_config, make_sim):
    wall = [100.0]
    terminal = make_sim(wall=lambda: wall[0])
    terminal.sim_drop_connection(seconds=5)
    connector = MT5Connector(live_config(), api=terminal)
    assert connector.initialize() is False and not connector.connected
    assert "IPC timeout" in connector.initialize_error
    wall[0] += 6
    assert connector.initialize() is True and connector.connected
    assert connector.initialize_error == ""
    unreachable = MT5Connector(live_config(backend="mt5linux", mt5linux_port=9))
    assert unreachable.initialize() is False
    assert "mt5linux" in unreachable.initialize_error


def test_two_different_strategies_are_a_usage_error_naming_both(capsys):
    with pytest.raises(SystemExit) as exit_code:
        trader_main(["one.py", "--strategy", "two.py", "--dry-run"])
    assert exit_code.value.code == 2
    err = capsys.readouterr().err
    assert "one.py" in err and "two.py" in err and "two strategies" in err


def test_the_same_strategy_given_both_ways_is_accepted(tmp_path):
    relative = os.path.relpath(SMA_CROSS, ROOT)
    done = subprocess.run(
        [
            sys.executable,
            "live/live_trader.py",
            relative,
            "--strategy",
            str(SMA_CROSS),
            "--config",
            str(settings(tmp_path)),
            "--check",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK    strategy SmaCross" in done.stdout


def hint_commands(log: str) -> tuple[str, str]:
    found = re.search(r"browse it with `([^`]+)`, check it with `([^`]+)`", log)
    assert found, log[-2000:]
    return found.group(1), found.group(2)


@pytest.mark.skipif(os.name == "nt", reason="runs the hint with sh")
def test_started_from_live_with_a_positional_strategy_the_hint_works(tmp_path):
    """`cd live && ../.venv/bin/python live_trader.py strategy.py --dry-run`, as the design's
    step 3 (the interpreter named relative to live/, so it knows itself by a path with ..);
    the hint it prints at the end then runs as printed."""
    python = os.path.relpath(sys.executable, ROOT / "live")
    config = ["--config", str(settings(tmp_path))]
    strategy = os.path.relpath(SMA_CROSS, ROOT / "live")
    done = subprocess.run(
        [python, "live_trader.py", strategy, "--dry-run", "--max-bars", "3", *config],
        cwd=ROOT / "live",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "closed bars 3" in done.stderr and "dry-run trading SmaCross" in done.stderr
    browse, check = hint_commands(done.stderr)
    assert check.startswith(f"cd {ROOT} && ") and browse.startswith(f"cd {ROOT} && ")
    verified = subprocess.run(
        ["sh", "-c", check], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert re.search(r"^signals +ok +3 rows", verified.stdout, re.MULTILINE), verified.stdout
    python_named, script = browse.split(" && ", 1)[1].split()[:2]
    assert (ROOT / python_named).is_file()  # relative to the root, or absolute
    assert (ROOT / script).is_file() and script.endswith("dashboard.py")


@pytest.mark.skipif(os.name == "nt", reason="the POSIX start script")
def test_the_start_script_takes_the_strategy_without_strategy(tmp_path):
    """`./start_trader.sh strategy.py --dry-run` (its .venv ready: no install step)."""
    project = script_copy(tmp_path)
    venv_python = project / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    venv_python.chmod(0o755)
    shutil.copy2(ROOT / "requirements.txt", project / ".venv" / ".installed-requirements")
    rest = ["--max-bars", "3", "--config", str(settings(tmp_path))]
    done = subprocess.run(
        [str(project / "start_trader.sh"), "backtest/strategies/sma_cross.py", "--dry-run", *rest],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Setting up" not in done.stdout and "closed bars 3" in done.stderr


def test_the_windows_start_script_passes_the_strategy_through():
    """start_trader.bat cannot run here: it must hand every argument to live_trader.py,
    whose parser takes the design's `strategy.py --dry-run`."""
    from live.trader_cli import build_parser

    lines = (ROOT / "start_trader.bat").read_text().splitlines()
    run = [line for line in lines if "live\\live_trader.py" in line and not line.startswith("rem")]
    assert run == ['".venv\\Scripts\\python.exe" live\\live_trader.py %*']
    args = build_parser().parse_args(["..\\Backtest\\codes\\my_strategy.py", "--dry-run"])
    assert args.strategy_file == "..\\Backtest\\codes\\my_strategy.py" and args.dry_run
