"""Benchmark: what the account-protection rules cost a backtest, and the Monte Carlo.

    .venv/bin/python -m bench.challenge_speed [--bars 100000] [--paths 10000] [--trades 1000]

Prints, on seeded EURUSD H1 bars, in one run:

1. SmaCross (10/30, 1 lot on 100,000): run_backtest alone, and run_backtest followed by the
   challenge evaluation (`backtest.challenge.evaluate`) of each shipped preset; median and
   best of 15 and their ratios (issue target: at most 1.2x); then static_5_10 after three
   other shipped strategies, whose runs take longer.
2. The bootstrap pass probability (`backtest.challenge_mc`): PATHS paths of the first TRADES
   trades of that run, each shipped preset (issue target: 10,000 paths of 1,000 trades in
   under 2 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest.broker_clock import parse_zone
from backtest.challenge import evaluate
from backtest.challenge_mc import pass_probability
from backtest.engine import BacktestConfig, run_backtest
from backtest.prop_rules import list_presets, load_preset
from backtest.sizing import Sizing
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from backtest.trading_windows import with_broker_time

ROOT = Path(__file__).resolve().parent.parent
CASH = 100_000.0
OTHER_STRATEGIES = ("rsi_reversion", "session_momentum", "breakeven_partial")


def timed(action, repeats: int = 15) -> tuple[float, float]:
    """(median, best) seconds of `repeats` calls: this machine's timings are noisy."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--trades", type=int, default=1_000)
    args = parser.parse_args()
    zone = parse_zone("NY+7")
    bars = with_broker_time(generate_bars("EURUSD", "H1", args.bars, seed=5), zone)
    spec = get_symbol_spec("EURUSD")
    strategy = get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")()
    config = BacktestConfig(cash=CASH, sizing=Sizing.fixed(1.0))
    result = run_backtest(bars, strategy, spec=spec, config=config)
    alone, alone_best = timed(lambda: run_backtest(bars, strategy, spec=spec, config=config))
    print(
        f"{args.bars:,} H1 bars, {len(result.trades):,} trades; run_backtest median "
        f"{alone:.4f} s, best {alone_best:.4f} s"
    )
    presets = [load_preset(name) for name in list_presets()]
    for preset in presets:

        def both(preset=preset):
            run = run_backtest(bars, strategy, spec=spec, config=config)
            evaluate(preset, run, bars, spec, cash=CASH, broker_zone=zone)

        with_rules, best = timed(both)
        print(
            f"  with {preset.name:24s} median {with_rules:.4f} s ({with_rules / alone:.2f}x), "
            f"best {best:.4f} s ({best / alone_best:.2f}x)"
        )
    print("static_5_10 on other shipped strategies (the same cost, a different run time):")
    preset = load_preset("static_5_10")
    for name in OTHER_STRATEGIES:
        other = get_strategy_from_file(ROOT / "backtest" / "strategies" / f"{name}.py")()
        alone_other, _ = timed(lambda o=other: run_backtest(bars, o, spec=spec, config=config), 7)
        with_other, _ = timed(
            lambda o=other: evaluate(
                preset, run_backtest(bars, o, spec=spec, config=config), bars, spec,
                cash=CASH, broker_zone=zone,
            ),
            7,
        )  # fmt: skip
        print(
            f"  {name:24s} alone {alone_other:.4f} s, with the rules {with_other:.4f} s "
            f"({with_other / alone_other:.2f}x)"
        )
    first = type(result)(**{**vars(result), "trades": result.trades.iloc[: args.trades]})
    print(f"Monte Carlo: {args.paths:,} paths of {len(first.trades):,} trades")
    for preset in presets:
        started = time.perf_counter()
        chances = pass_probability(
            preset, first, bars, spec, cash=CASH, broker_zone=zone, paths=args.paths, seed=1
        )
        seconds = time.perf_counter() - started
        print(f"  {preset.name:24s} {seconds:.2f} s  pass {100 * chances.probability:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
