"""Shared fixtures for the live package: simulated terminals (in-process and served), configs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from backtest.strategy import Strategy
from live.audit_logger import AuditLogger
from live.backtesting_bridge import get_strategy_from_file
from live.config import LiveConfig
from live.live_trader import LiveTrader
from live.mt5_connector import MT5Connector
from live.sim_terminal import SimConfig, SimTerminal
from live.sim_terminal.launch import ServedSim, start_served_sim

ROOT = Path(__file__).resolve().parents[2]
SMA_CROSS = ROOT / "backtest" / "strategies" / "sma_cross.py"


@pytest.fixture
def make_sim() -> Callable[..., SimTerminal]:
    """Factory: an initialized in-process simulator with a stepped clock (speed None)."""

    def factory(**overrides: object) -> SimTerminal:
        options = {"symbols": ("EURUSD",), "n_bars": 3000, "history_bars": 200, **overrides}
        terminal = SimTerminal(SimConfig(**options))
        assert terminal.initialize(), terminal.last_error()
        return terminal

    return factory


@pytest.fixture
def sim(make_sim: Callable[..., SimTerminal]) -> SimTerminal:
    return make_sim()


@pytest.fixture
def live_config(tmp_path: Path) -> Callable[..., LiveConfig]:
    """Factory: a LiveConfig on the simulator whose files all live in tmp_path."""

    def factory(**overrides: object) -> LiveConfig:
        base: dict[str, object] = {
            "backend": "sim",
            "audit_db": tmp_path / "audit.db",
            "log_dir": tmp_path / "logs",
            "kill_switch_file": tmp_path / "KILL_SWITCH",
            "lock_dir": tmp_path / "locks",  # never the machine's account locks
            "sim_speed": "max",
            "strategy_path": str(SMA_CROSS),
            "order_retry_base_seconds": 0.0,
            "order_retry_max_seconds": 0.0,
        }
        base.update(overrides)
        return LiveConfig.load(env_file=_empty_env(tmp_path), environ={}, overrides=base)

    return factory


def _empty_env(folder: Path) -> Path:
    """An explicit empty settings file, so a developer's own .env never leaks into tests."""
    path = folder / "empty.env"
    path.touch()
    return path


@pytest.fixture
def served_sim(tmp_path: Path) -> Iterator[ServedSim]:
    served = start_served_sim(tmp_path / "sim_state.json")
    yield served
    served.stop()


@pytest.fixture
def make_trader() -> Iterator[Callable[..., LiveTrader]]:
    """Factory: a LiveTrader on an injected (test-driven) simulator; closed at teardown."""
    made: list[LiveTrader] = []

    def factory(
        config: LiveConfig,
        terminal: SimTerminal,
        *,
        strategy: Strategy | None = None,
        alerts: object = None,
        busy_timeout_s: float = 5.0,
        wall_clock: Callable[[], float] | None = None,
    ) -> LiveTrader:
        strategy = strategy or get_strategy_from_file(
            config.strategy_path, config.strategy_param_pairs()
        )
        trader = LiveTrader(
            config,
            connector=MT5Connector(config, api=terminal),
            strategy=strategy,
            audit=AuditLogger(config.audit_db, busy_timeout_s=busy_timeout_s),
            alerts=alerts,
            **({"wall_clock": wall_clock} if wall_clock else {}),
        )
        made.append(trader)
        return trader

    yield factory
    for trader in made:
        trader.audit.close()


def run_bars(trader: LiveTrader, terminal: SimTerminal, bars: int) -> None:
    """Let the trader decide on `bars` closed bars, stepping the simulator in lockstep."""
    for _ in range(bars):
        trader.iterate()
        terminal.sim_step_bar()


@contextmanager
def serve_app(app: object) -> Iterator[str]:
    """A WSGI app under waitress on a free loopback port, as `python dashboard.py` serves it;
    yields its base URL. On the way out every connection is closed too, so the server's loop
    ends at its next poll instead of waiting for clients that keep a connection open."""
    from waitress import create_server, wasyncore

    server = create_server(app, host="127.0.0.1", port=0, threads=4, asyncore_loop_timeout=0.05)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # closed from inside the server's own loop (its trigger runs the call there): closing
        # sockets under a select() in another thread would fail it with EBADF
        with contextlib.suppress(OSError):  # a closed trigger: the loop has ended on its own
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive(), "the test server did not stop"


def copy_audit_db(source: Path, target: Path) -> Path:
    """A consistent copy of an audit database (SQLite's backup, WAL included) with its chain
    key beside it, as an operator's backup would have both; returns `target`."""
    import shutil
    import sqlite3

    from live.audit_chain import key_file_for

    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(source) as a, sqlite3.connect(target) as b:
        a.backup(b)
    a.close()
    b.close()
    if key_file_for(source).exists():
        shutil.copy2(key_file_for(source), key_file_for(target))
    return target


_TINY_DISK_SCRIPT = """
size=$1; disk=$2; keep=$3; shift 3
mount -t tmpfs -o "size=$size" tmpfs "$disk" || exit 97
"$@"; code=$?
cp -a "$disk"/. "$keep"/
exit $code
"""


def on_tiny_disk(
    size: str, disk: Path, keep: Path, command: list[str], *, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run `command` with a real, small filesystem (a tmpfs of `size`, e.g. "64k") mounted on
    `disk` in a private mount namespace, so writes there fill it up and fail as a full disk
    does (ENOSPC); what the command left on it is copied to `keep` afterwards."""
    disk.mkdir(parents=True, exist_ok=True)
    keep.mkdir(parents=True, exist_ok=True)
    wrappers = [["unshare", "-m"]] if os.geteuid() == 0 else []
    wrappers.append(["unshare", "-rm"])  # a user namespace: no root needed
    for wrapper in wrappers:
        done = subprocess.run(
            [*wrapper, "sh", "-c", _TINY_DISK_SCRIPT, "sh", size, str(disk), str(keep), *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 97 and "unshare:" not in done.stderr:
            return done
    pytest.fail(f"cannot mount a small tmpfs here (unshare/mount refused): {done.stderr}")


class WallClock:
    """A wall clock the test moves (seconds since the epoch); `advance(s)` moves it on."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingAlerts:
    """An alert channel that keeps what it was given (kind, text, severity)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def notify(self, kind: str, text: str, *, severity: str = "info", **data: object) -> None:
        self.sent.append((kind, text, severity))

    def close(self) -> None:
        return None
