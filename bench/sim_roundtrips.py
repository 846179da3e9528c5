"""Simulator call rates: the same MetaTrader5 calls in-process and through the real mt5linux
client over RPyC to a served simulator, side by side.

    python bench/sim_roundtrips.py [--calls 2000]

The RPyC column is what a Linux trader pays talking to a terminal under Wine through
mt5linux (each call is at least one network round trip); the in-process column is the
simulator's own cost.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from live.sim_terminal import SimConfig, SimTerminal  # noqa: E402
from live.sim_terminal.launch import start_served_sim  # noqa: E402


def calls(api: object) -> dict[str, Callable[[], object]]:
    """The calls timed, each one request to the terminal (a trade = open and close)."""

    def round_trip() -> object:
        tick = api.symbol_info_tick("EURUSD")
        opened = api.order_send(
            {
                "action": 1,
                "symbol": "EURUSD",
                "volume": 0.01,
                "type": 0,
                "price": tick.ask,
                "deviation": 20,
                "magic": 1,
                "type_filling": 1,
                "comment": "bench",
            }
        )
        tick = api.symbol_info_tick("EURUSD")
        return api.order_send(
            {
                "action": 1,
                "symbol": "EURUSD",
                "volume": 0.01,
                "type": 1,
                "position": opened.order,
                "price": tick.bid,
                "deviation": 20,
                "magic": 1,
                "type_filling": 1,
                "comment": "bench",
            }
        )

    return {
        "symbol_info_tick": lambda: api.symbol_info_tick("EURUSD"),
        "copy_rates_from_pos(1000 bars)": lambda: api.copy_rates_from_pos("EURUSD", 16385, 0, 1000),
        "positions_get": lambda: api.positions_get(),
        "account_info": lambda: api.account_info(),
        "buy + close (4 calls)": round_trip,
    }


def measure(function: Callable[[], object], n: int) -> tuple[float, float, float]:
    """(calls per second, p50 ms, p99 ms) over n calls after one warm-up."""
    function()
    times = []
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        function()
        times.append(1000.0 * (time.perf_counter() - t0))
    total = time.perf_counter() - started
    times.sort()
    return n / total, times[len(times) // 2], times[min(n - 1, int(0.99 * n))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per row and side")
    args = parser.parse_args()
    local = SimTerminal(SimConfig(symbols=("EURUSD",), n_bars=5000, history_bars=2000))
    local.initialize()
    in_process = {name: measure(f, args.calls) for name, f in calls(local).items()}
    with tempfile.TemporaryDirectory() as folder:
        served = start_served_sim(Path(folder) / "state.json", bars=5000, history_bars=2000)
        try:
            from mt5linux import MetaTrader5

            remote = MetaTrader5(host="127.0.0.1", port=served.port)
            remote.initialize()
            over_rpyc = {
                name: measure(f, max(50, args.calls // 4)) for name, f in calls(remote).items()
            }
        finally:
            served.stop()
    print(
        f"{'call':<32} {'in-process /s':>14} {'p50 ms':>8} {'p99 ms':>8}   "
        f"{'mt5linux /s':>12} {'p50 ms':>8} {'p99 ms':>8}"
    )
    for name in in_process:
        a, b = in_process[name], over_rpyc[name]
        print(
            f"{name:<32} {a[0]:>14,.0f} {a[1]:>8.3f} {a[2]:>8.3f}   "
            f"{b[0]:>12,.0f} {b[1]:>8.3f} {b[2]:>8.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
