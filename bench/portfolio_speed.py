"""Benchmark: a portfolio of 28 FX symbols on one account, against vectorbt's grouped
portfolio with shared cash, on the same signals, in one run.

    .venv/bin/python -m bench.portfolio_speed [--bars 100000] [--symbols 28]

Prints:

1. the whole `python -m backtest run --symbols ... --data-dir DIR` process on the symbols'
   CSVs (SmaCross 10/30, 0.1 lot each, one shared account; issue target: under 10 s), and
   the in-process `run_portfolio` alone;
2. vectorbt's `Portfolio.from_signals` grouped with `cash_sharing=True` on the same SMA
   crosses (long and short, 0.1 lot as 10,000 units), when vectorbt is installed
   (`pip install vectorbt`; not a dependency of the project): its first call (numba
   compiles) and a second one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest.data import save_csv
from backtest.engine import BacktestConfig
from backtest.portfolio import Member, run_portfolio
from backtest.sizing import Sizing
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parent.parent
STRATEGY = ROOT / "backtest" / "strategies" / "sma_cross.py"
MAJORS = ["EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "NZDUSD"]
CURRENCIES = ["EUR", "GBP", "AUD", "NZD", "USD", "CAD", "CHF", "JPY"]  # by quoting priority
FX28 = MAJORS + [
    a + b for i, a in enumerate(CURRENCIES) for b in CURRENCIES[i + 1 :] if "USD" not in (a, b)
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=28)
    args = parser.parse_args()
    symbols = FX28[: args.symbols]
    bars = {s: generate_bars(s, "H1", args.bars, seed=i) for i, s in enumerate(symbols)}
    with tempfile.TemporaryDirectory() as folder:
        for symbol, frame in bars.items():
            save_csv(frame, Path(folder) / f"{symbol}_H1.csv")
        command = [
            sys.executable, "-m", "backtest", "run", "--strategy", str(STRATEGY),
            "--symbols", ",".join(symbols), "--data-dir", folder, "--lots", "0.1",
            "--cash", "100000",
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        whole = time.perf_counter() - started
    if done.returncode:
        print(done.stderr)
        return 1
    print(f"{len(symbols)} symbols x {args.bars:,} H1 bars, SmaCross 10/30, 0.1 lot, one account")
    print(f"  python -m backtest run --symbols ... (whole process): {whole:.2f} s (target < 10 s)")
    config = BacktestConfig(cash=100_000.0, sizing=Sizing.fixed(0.1))
    cls = get_strategy_from_file(STRATEGY)
    members = [Member(s, b, get_symbol_spec(s), cls(), s) for s, b in bars.items()]
    started = time.perf_counter()
    result = run_portfolio(members, config)
    inside = time.perf_counter() - started
    print(
        f"  run_portfolio in-process: {inside:.2f} s, {len(result.trades):,} trades, "
        f"equity {result.stats['equity_final']:,.2f}"
    )
    compare_vectorbt(bars)
    return 0


def compare_vectorbt(bars: dict) -> None:
    try:
        import pandas as pd
        import vectorbt as vbt
    except ImportError:
        print("  vectorbt: not installed (pip install vectorbt) - no comparison")
        return
    close = pd.DataFrame({s: b.set_index("time")["close"] for s, b in bars.items()})
    fast, slow = close.rolling(10).mean(), close.rolling(30).mean()
    above = fast > slow
    up = above & ~above.shift(1, fill_value=False)
    down = ~above & above.shift(1, fill_value=False) & slow.notna()
    for attempt in ("first call (compiles)", "second call"):
        started = time.perf_counter()
        portfolio = vbt.Portfolio.from_signals(
            close, entries=up, exits=down, short_entries=down, short_exits=up,
            size=10_000.0, init_cash=100_000.0, group_by=True, cash_sharing=True, freq="1h",
        )  # fmt: skip
        value = float(np.asarray(portfolio.value()).ravel()[-1])
        print(f"  vectorbt grouped, cash_sharing ({attempt}): "
              f"{time.perf_counter() - started:.2f} s, final value {value:,.2f}")  # fmt: skip
    print("  (vectorbt adds each symbol's P/L in its quote currency, yen included, and has no")
    print("   lots: its value is not comparable, its time is, on the same signals)")


if __name__ == "__main__":
    sys.exit(main())
