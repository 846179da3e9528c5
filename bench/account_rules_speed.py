"""What the account rules (ACCOUNT_RULES) cost the live loop, against the target of under
1 ms per loop for 100 symbols, in one run.

    python bench/account_rules_speed.py

1. The per-loop check (equity against every floor, the day and the marks) inside real loops
   of a trader on 100 symbols, a bar closed on each, with the in-process simulator: its own
   time, and the loop's median with the rules and without them (the named baseline).
2. The check before an entry with 100 open positions, each with a stop (the loss at every
   stop asked from the terminal: order_calc_profit), which runs only when an entry is sent.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.live_speed import make_config, make_trader  # noqa: E402
from live.sim_terminal import SimConfig, SimTerminal  # noqa: E402
from live.sim_terminal.market import CATALOG  # noqa: E402

NAMES = [f"FX{i:03d}" for i in range(100)]
PRESET = "static_5_10"


def _symbols() -> None:
    for name in NAMES:  # copies of EURUSD under new names, for this benchmark only
        CATALOG.setdefault(name, dataclasses.replace(CATALOG["EURUSD"], name=name))


def loop_cost(loops: int, rules: str) -> tuple[list[float], list[float]]:
    """(loop seconds, rule-check seconds) over `loops` loops on 100 symbols."""
    with tempfile.TemporaryDirectory() as folder:
        sim = SimTerminal(SimConfig(symbols=tuple(NAMES), n_bars=1100 + loops, history_bars=1000))
        config = make_config(
            Path(folder), symbols=tuple(NAMES), account_rules=rules, max_total_lots=0.0
        )
        trader = make_trader(config, sim, fast=10, slow=30)
        checks: list[float] = []
        protect = trader._protect_account

        def timed(account: object) -> None:
            started = time.perf_counter()
            protect(account)
            checks.append(time.perf_counter() - started)

        trader._protect_account = timed
        trader.start()
        loops_s = []
        for _ in range(loops):
            started = time.perf_counter()
            trader.iterate()
            loops_s.append(time.perf_counter() - started)
            sim.sim_step_bar()
        trader.audit.close()
    return loops_s, checks


def pre_trade_cost(calls: int) -> tuple[float, int]:
    """(median seconds, open positions) of the check before an entry, 100 stops held."""
    with tempfile.TemporaryDirectory() as folder:
        sim = SimTerminal(SimConfig(symbols=tuple(NAMES), n_bars=1100, history_bars=1000))
        config = make_config(Path(folder), symbols=tuple(NAMES), account_rules=PRESET)
        trader = make_trader(config, sim, fast=10, slow=30)
        trader.start()
        for name in NAMES:
            tick = sim.symbol_info_tick(name)
            order = {"action": 1, "symbol": name, "volume": 0.01, "type": 0, "price": tick.ask,
                     "sl": round(tick.bid - 0.005, 5), "magic": config.magic_number}  # fmt: skip
            sim.order_send(order)
        trader.positions.sync()
        account, tick = trader.broker.account(), sim.symbol_info_tick(NAMES[0])
        request = {"symbol": NAMES[0], "type": 0, "volume": 0.01, "price": 1.1, "sl": 1.095}
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            trader.positions.entries._rules_refusal(request, account, tick)
            samples.append(time.perf_counter() - started)
        held = len(trader.state.positions)
        trader.audit.close()
    return statistics.median(samples), held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    _symbols()
    with_rules, checks = loop_cost(args.loops, PRESET)
    without, _ = loop_cost(args.loops, "")
    pre_trade, held = pre_trade_cost(args.calls)
    rows = [
        (
            f"rule check per loop, 100 symbols ({PRESET}); target < 1 ms",
            f"median {1e6 * statistics.median(checks):.0f} us, max {1e6 * max(checks):.0f} us "
            f"({len(checks)} loops; the first records the day and the initial balance)",
        ),
        (
            "one loop over 100 symbols, a bar closed on each: with the rules",
            f"median {statistics.median(with_rules):.3f} s",
        ),
        (
            "the same loop without the rules (baseline)",
            f"median {statistics.median(without):.3f} s",
        ),
        (
            f"check before an entry, {held} open positions with stops",
            f"median {1e3 * pre_trade:.2f} ms (only when an entry is sent)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
