"""Benchmark: the Optuna search against the full grid on the shipped strategies, in one run.

    .venv/bin/python -m bench.optuna_search [--bars 50000] [--workers 2] [--seeds 5]
        [--data-seeds 11,12,13] [--min-trades 0] [--only sma_cross,rsi_reversion]

Issue target: within 10% of the grid's best with a tenth of the grid's evaluations. For
each shipped strategy with numeric parameters (`usd_basket_sma` given GBPUSD's and
USDJPY's generated bars too) and each synthetic data seed, the whole grid is run once,
then the search once per search seed with a budget of a tenth of the grid's combinations;
the search never sees the grid's results. Three measures of
how close the search's best comes to the grid's (all 1.0 when it finds the grid's best):

- ratio = found / best: the target read literally (>= 0.9). Meaningless when the best is
  near zero or negative, as a Sharpe ratio can be (then shown as "-").
- span = (found - median) / (best - median), the grid's median as the zero: the share of
  the way from a typical combination to the best (>= 0.9).
- rank = the share of the grid's combinations the found best is at least as good as.

The grid's best and the median count only combinations with at least `--min-trades`
trades, the rule the search follows too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from backtest.engine import BacktestConfig
from backtest.informative import declared_symbols
from backtest.optimize import combinations, parse_grid, run_grid
from backtest.search import run_search
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parent.parent
METRIC = "sharpe"
TARGET = 0.9
CASES = {
    "sma_cross": ["fast=2:40:2", "slow=10:200:10"],
    "rsi_reversion": ["period=4:30:2", "oversold=15:40:5", "overbought=60:85:5"],
    "donchian_breakout": ["channel=10:100:5", "exit_channel=5:50:5", "atr_stop=1:4:0.5"],
    "daily_trend_sma": ["fast=4:40:4", "slow=20:200:20", "days=5:50:5"],
    "session_momentum": ["fast=4:24:4", "slow=20:120:20", "start=0:12:3", "end=12:24:3"],
    "donchian_chandelier": [
        "channel=10:60:10",
        "atr_stop=1:4:1",
        "period=10:40:10",
        "multiple=2:5:1",
        "activation_atr=0:2:1",
    ],
    "breakeven_partial": [
        "fast=5:25:5",
        "slow=40:120:40",
        "atr_stop=1:3:0.5",
        "partial_r=0.5:2:0.5",
        "partial_size=0.25:1:0.25",
    ],
    "pending_breakout": [
        "channel=12:48:12",
        "fast=10:30:10",
        "slow=60:120:30",
        "atr_stop=1:3:0.5",
        "atr_target=2:5:1",
    ],
    "usd_basket_sma": ["fast=4:40:4", "slow=20:200:20", "lookback=6:72:6"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5, help="search seeds per data seed")
    parser.add_argument("--data-seeds", default="11,12,13", help="synthetic data seeds")
    parser.add_argument("--min-trades", type=int, default=0)
    parser.add_argument("--only", help="strategies to run, comma-separated")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(CASES)
    data_seeds = [int(s) for s in args.data_seeds.split(",")]
    spec, config = get_symbol_spec("EURUSD"), BacktestConfig()
    print(f"{args.bars:,} H1 bars per data seed {data_seeds}, metric {METRIC}, min trades "
          f"{args.min_trades}, {args.seeds} search seeds, {args.workers} workers")  # fmt: skip
    summary = []
    for name in names:
        cls = get_strategy_from_file(ROOT / "backtest" / "strategies" / f"{name}.py")
        grid = parse_grid(cls, CASES[name])
        size = sum(1 for _ in combinations(grid))
        print(f"\n{name}: grid {' '.join(CASES[name])}: {size:,} combinations, "
              f"budget {size // 10}")  # fmt: skip
        runs = []
        for data_seed in data_seeds:
            bars = generate_bars("EURUSD", "H1", args.bars, seed=data_seed)
            others = {symbol: generate_bars(symbol, "H1", args.bars, seed=data_seed + k + 1)
                      for k, symbol in enumerate(declared_symbols(cls))}  # fmt: skip
            runs += compare(bars, others, data_seed, cls, grid, size, spec, config, args)
        summary.append((name, size, runs))
    print_summary(summary)
    return 0


def compare(bars, others, data_seed, cls, grid, size, spec, config, args) -> list[dict]:
    """The grid once, then the search once per search seed; one record per search."""
    started = time.perf_counter()
    full = run_grid(bars, cls, grid, spec=spec, config=config, metric=METRIC,
                    workers=args.workers, progress=False, other_bars=others)  # fmt: skip
    grid_time = time.perf_counter() - started
    values = full.loc[full["n_trades"] >= args.min_trades, METRIC].dropna().to_numpy(float)
    best, median = float(values.max()), float(np.median(values))
    print(f"  data seed {data_seed}: grid best {best:.3f} (median {median:.3f}) "
          f"in {grid_time:.1f} s")  # fmt: skip
    runs = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        found = run_search(bars, cls, grid, spec=spec, config=config, metric=METRIC,
                           trials=size // 10, seed=seed, workers=args.workers,
                           min_trades=args.min_trades, other_bars=others)  # fmt: skip
        value = float(found[METRIC].iloc[0])
        run = {
            "data_seed": data_seed,
            "best": best,
            "found": value,
            "ratio": value / best if best > 0 else float("nan"),
            "span": (value - median) / (best - median),
            "rank": float((values <= value).mean()),
            "evaluations": found.attrs["trials"],
            "seconds": time.perf_counter() - started,
            "grid_seconds": grid_time,
        }
        runs.append(run)
        print(f"    search seed {seed}: best {value:.3f}, ratio {_shown(run['ratio'])}, "
              f"span {run['span']:.3f}, rank {run['rank']:.4f}, {run['evaluations']} "
              f"evaluations in {run['seconds']:.1f} s")  # fmt: skip
    return runs


def print_summary(summary: list[tuple[str, int, list[dict]]]) -> None:
    """Per strategy and data seed, then per strategy: min / median over the searches."""
    print(f"\nsummary, min / median over search seeds (target {TARGET}):")
    print(f"{'strategy':20} {'data':>4} {'grid best':>9} {'search best':>13} {'ratio':>13} "
          f"{'span':>13} {'rank min':>8} {'evals':>9} {'time':>12}")  # fmt: skip
    for name, size, runs in summary:
        for seed in dict.fromkeys(r["data_seed"] for r in runs):
            ones = [r for r in runs if r["data_seed"] == seed]
            column = {key: [r[key] for r in ones] for key in ones[0]}
            took = f"{statistics.median(column['seconds']):.1f}/{ones[0]['grid_seconds']:.1f} s"
            print(
                f"{name:20} {seed:>4} {ones[0]['best']:>9.3f} {_range(column['found']):>13} "
                f"{_range(column['ratio']):>13} {_range(column['span']):>13} "
                f"{min(column['rank']):>8.4f} {max(column['evaluations']):>4}/{size // 10:<4} "
                f"{took:>12}"
            )
    print("\nsearches within the target, per strategy (ratio: of those whose grid best > 0):")
    for name, _, runs in summary:
        ratios = [r["ratio"] for r in runs if r["ratio"] == r["ratio"]]
        print(f"{name:20} ratio {sum(r >= TARGET for r in ratios):>2}/{len(ratios):<3} "
              f"span {sum(r['span'] >= TARGET for r in runs):>2}/{len(runs):<3} "
              f"span min {min(r['span'] for r in runs):.3f}")  # fmt: skip
    print("time: the search's median / the grid's")


def _range(values: list[float]) -> str:
    shown = [v for v in values if v == v]
    if not shown:
        return "-"
    return f"{min(shown):.3f} / {statistics.median(shown):.3f}"


def _shown(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
