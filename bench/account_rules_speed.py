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
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.live_speed import (  # noqa: E402
    hundred_names,
    hundred_symbol_loops,
    make_config,
    make_trader,
    print_rows,
)
from live.live_trader import LiveTrader  # noqa: E402
from live.sim_terminal import SimConfig, SimTerminal  # noqa: E402

PRESET = "static_5_10"


def loop_cost(loops: int, rules: str) -> tuple[list[float], list[float]]:
    """(loop seconds, rule-check seconds) over `loops` loops on 100 symbols."""
    checks: list[float] = []

    def time_the_check(trader: LiveTrader) -> None:
        protect = trader._protect_account

        def timed(account: object) -> None:
            started = time.perf_counter()
            protect(account)
            checks.append(time.perf_counter() - started)

        trader._protect_account = timed

    loops_s = hundred_symbol_loops(loops, time_the_check, account_rules=rules, max_total_lots=0.0)
    return loops_s, checks


def pre_trade_cost(calls: int) -> tuple[float, int]:
    """(median seconds, open positions) of the check before an entry, 100 stops held."""
    names = hundred_names()
    with tempfile.TemporaryDirectory() as folder:
        sim = SimTerminal(SimConfig(symbols=tuple(names), n_bars=1100, history_bars=1000))
        config = make_config(Path(folder), symbols=tuple(names), account_rules=PRESET)
        trader = make_trader(config, sim, fast=10, slow=30)
        trader.start()
        for name in names:
            tick = sim.symbol_info_tick(name)
            order = {"action": 1, "symbol": name, "volume": 0.01, "type": 0, "price": tick.ask,
                     "sl": round(tick.bid - 0.005, 5), "magic": config.magic_number}  # fmt: skip
            sim.order_send(order)
        trader.positions.sync()
        account, tick = trader.broker.account(), sim.symbol_info_tick(names[0])
        request = {"symbol": names[0], "type": 0, "volume": 0.01, "price": 1.1, "sl": 1.095}
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            trader.positions.entries.rules_refusal(request, account, tick)
            samples.append(time.perf_counter() - started)
        held = len(trader.state.positions)
        trader.audit.close()
    return statistics.median(samples), held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
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
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
