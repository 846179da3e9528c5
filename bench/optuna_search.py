"""Benchmark: Optuna's TPE search against the full grid on the shipped strategies, in one run.

    .venv/bin/python -m bench.optuna_search [--bars 50000] [--workers 2] [--seeds 3]

For each strategy, the grid's best Sharpe ratio and time against the search's best with a
tenth of the grid's evaluations, for a few seeds (issue target: within 10% of the grid's
best with a tenth of the evaluations).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest.engine import BacktestConfig
from backtest.optimize import combinations, parse_grid, run_grid
from backtest.search import run_search
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "sma_cross": ["fast=2:40:2", "slow=10:200:10"],
    "rsi_reversion": ["period=4:30:2", "oversold=15:40:5", "overbought=60:85:5"],
    "donchian_breakout": ["channel=10:100:5", "exit_channel=5:50:5", "atr_stop=1:4:0.5"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    bars = generate_bars("EURUSD", "H1", args.bars, seed=11)
    spec, config = get_symbol_spec("EURUSD"), BacktestConfig()
    print(f"{args.bars:,} H1 bars, metric sharpe, {args.workers} workers")
    for name, specs in CASES.items():
        cls = get_strategy_from_file(ROOT / "backtest" / "strategies" / f"{name}.py")
        grid = parse_grid(cls, specs)
        size = sum(1 for _ in combinations(grid))
        started = time.perf_counter()
        full = run_grid(bars, cls, grid, spec=spec, config=config, metric="sharpe",
                        workers=args.workers, progress=False)  # fmt: skip
        grid_time = time.perf_counter() - started
        best = float(full["sharpe"].iloc[0])
        print(f"{name}: grid of {size:,}: best {best:.3f} in {grid_time:.1f} s")
        for seed in range(args.seeds):
            started = time.perf_counter()
            found = run_search(bars, cls, grid, spec=spec, config=config, metric="sharpe",
                               trials=size // 10, seed=seed, workers=args.workers)  # fmt: skip
            found_best = float(found["sharpe"].iloc[0])
            print(
                f"  optuna seed {seed}, {size // 10} trials: best {found_best:.3f} "
                f"({100 * found_best / best:.1f}% of the grid's) in "
                f"{time.perf_counter() - started:.1f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
