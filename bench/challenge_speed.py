"""Benchmark: what the account-protection rules cost a backtest, and the Monte Carlo.

    .venv/bin/python -m bench.challenge_speed [--bars 100000] [--paths 10000] [--trades 1000]

Prints, on seeded EURUSD H1 bars, in one run:

1. SmaCross (10/30, 1 lot on 100,000): run_backtest alone, and run_backtest followed by the
   challenge evaluation (`backtest.challenge.evaluate`) of each shipped preset, timed in
   alternating pairs on the same bars (as a grid runs: the trading days of bar times are
   remembered); the medians and their ratio (issue target: at most 1.2x); the evaluation
   alone on new and on the same bar times; static_5_10 after three other shipped
   strategies, whose runs take longer; the whole `python -m backtest run` command.
2. The bootstrap pass probability (`backtest.challenge_mc`): PATHS paths of the first TRADES
   trades of that run, each shipped preset (issue target: 10,000 paths of 1,000 trades in
   under 2 s).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest.broker_clock import parse_zone
from backtest.challenge import evaluate
from backtest.challenge_mc import pass_probability
from backtest.data import save_csv
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


def paired(alone, with_rules, repeats: int = 31) -> tuple[float, float, float]:
    """Median seconds of `alone` and of `with_rules`, timed in alternating pairs (this
    machine's speed drifts: both sides see the same drift), and the median of the pairs'
    ratios."""
    alone_times, rules_times = [], []
    for _ in range(repeats):
        for action, times in ((alone, alone_times), (with_rules, rules_times)):
            started = time.perf_counter()
            action()
            times.append(time.perf_counter() - started)
    ratios = [b / a for a, b in zip(alone_times, rules_times, strict=True)]
    return (
        statistics.median(alone_times),
        statistics.median(rules_times),
        statistics.median(ratios),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--trades", type=int, default=1_000)
    args = parser.parse_args()
    zone = parse_zone("NY+7")
    bars = with_broker_time(generate_bars("EURUSD", "H1", args.bars, seed=5), zone)
    spec = get_symbol_spec("EURUSD")
    config = BacktestConfig(cash=CASH, sizing=Sizing.fixed(1.0))

    def run(strategy):
        return run_backtest(bars, strategy, spec=spec, config=config)

    def run_and_evaluate(strategy, preset):
        evaluate(preset, run(strategy), bars, spec, cash=CASH, broker_zone=zone)

    strategy = shipped("sma_cross")
    result = run(strategy)
    print(
        f"{args.bars:,} H1 bars; medians of 31 alternating pairs (run_backtest alone, then "
        f"run_backtest + the challenge evaluation); target: at most 1.2x"
    )
    print(f"SmaCross ({len(result.trades):,} trades), each shipped preset:")
    presets = [load_preset(name) for name in list_presets()]
    for preset in presets:
        alone, with_rules, ratio = paired(
            lambda: run(strategy), lambda p=preset: run_and_evaluate(strategy, p)
        )
        report(preset.name, alone, with_rules, ratio)
    first_and_repeat(result, bars, spec, zone)
    print("static_5_10 after the other shipped strategies:")
    preset = load_preset("static_5_10")
    for name in OTHER_STRATEGIES:
        other = shipped(name)
        alone, with_rules, ratio = paired(
            lambda o=other: run(o), lambda o=other: run_and_evaluate(o, preset), 15
        )
        report(name, alone, with_rules, ratio)
    whole_command(bars)
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


def first_and_repeat(result, bars, spec, zone) -> None:
    """The evaluation alone: on bar times new to it (the trading days worked out), and again
    on the same times (remembered: a grid or the pairs above)."""
    preset = load_preset("static_5_10")
    other = generate_bars("EURUSD", "H1", 500, seed=6)
    other_run = run_backtest(other, shipped("sma_cross"), spec=spec)
    first, repeat = [], []
    for _ in range(15):
        evaluate(preset, other_run, other, spec, cash=CASH, broker_zone=zone)  # forgets
        for times in (first, repeat):
            started = time.perf_counter()
            evaluate(preset, result, bars, spec, cash=CASH, broker_zone=zone)
            times.append(time.perf_counter() - started)
    print(
        f"  the evaluation alone (static_5_10): {1000 * statistics.median(first):.1f} ms on "
        f"new bar times, {1000 * statistics.median(repeat):.1f} ms on the same times again"
    )


def whole_command(bars) -> None:
    """`python -m backtest run` on a CSV of the bars, with and without --rules: what a user
    waits for (start-up, loading, the run, the report)."""
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "EURUSD_H1.csv"
        save_csv(bars.drop(columns=["broker_time"], errors="ignore"), data)
        command = [
            sys.executable, "-m", "backtest", "run", "--strategy",
            str(ROOT / "backtest" / "strategies" / "sma_cross.py"), "--data", str(data),
            "--lots", "1", "--cash", str(CASH), "--broker-tz", "NY+7",
        ]  # fmt: skip

        def run(extra=()):
            subprocess.run([*command, *extra], cwd=ROOT, check=True, capture_output=True)

        alone, with_rules, ratio = paired(run, lambda: run(("--rules", "static_5_10")), 7)
    print("the whole `python -m backtest run` command on a CSV of those bars (7 pairs):")
    report("static_5_10", alone, with_rules, ratio)


def shipped(name: str):
    return get_strategy_from_file(ROOT / "backtest" / "strategies" / f"{name}.py")()


def report(name: str, alone: float, with_rules: float, ratio: float) -> None:
    print(
        f"  {name:24s} alone {1000 * alone:6.1f} ms, with the rules {1000 * with_rules:6.1f} ms: "
        f"{with_rules / alone:.2f}x (median pair {ratio:.2f}x)"
    )


if __name__ == "__main__":
    sys.exit(main())
