"""Start a served simulator (`python -m live.sim_terminal serve`) as a subprocess and wait until
it listens; used by tests, benchmarks and the crash trials."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServedSim:
    """A running `serve` subprocess on a loopback port."""

    process: subprocess.Popen
    port: int
    state: Path

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=20)


def start_served_sim(
    state: Path,
    *extra: str,
    port: int = 0,
    bars: int = 3000,
    history_bars: int = 200,
    timeout_s: float = 60.0,
) -> ServedSim:
    """Serve a stepped simulator (speed max) keeping its state in `state`; port 0 = any free.

    Raises RuntimeError when it does not print its address within `timeout_s`.
    """
    command = [
        sys.executable,
        "-m",
        "live.sim_terminal",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state",
        str(state),
        "--speed",
        "max",
        "--bars",
        str(bars),
        "--history-bars",
        str(history_bars),
        *extra,
    ]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if not ready:
            if process.poll() is not None:
                break
            continue
        line = process.stdout.readline()
        if not line:
            break
        if "serving on" in line:
            return ServedSim(process, int(line.rsplit(":", 1)[1]), state)
    process.kill()
    raise RuntimeError(f"served simulator did not start: exit {process.poll()}")
