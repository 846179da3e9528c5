"""Our engine against backtesting.py (default settings, no costs): identical trades on SmaCross."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.engine import BacktestConfig, run_backtest
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

SMA_CROSS = Path(__file__).resolve().parents[2] / "backtest" / "strategies" / "sma_cross.py"


def reference_trades(bars: pd.DataFrame, fast: int, slow: int) -> pd.DataFrame:
    """backtesting.py's canonical SmaCross example under its default settings."""
    from backtesting import Backtest
    from backtesting import Strategy as ReferenceStrategy
    from backtesting.lib import crossover

    def rolling_mean(values: np.ndarray, n: int) -> pd.Series:
        return pd.Series(values).rolling(n).mean()

    class ReferenceSmaCross(ReferenceStrategy):
        def init(self):
            self.fast_ma = self.I(rolling_mean, self.data.Close, fast)
            self.slow_ma = self.I(rolling_mean, self.data.Close, slow)

        def next(self):
            if crossover(self.fast_ma, self.slow_ma):
                self.position.close()
                self.buy()
            elif crossover(self.slow_ma, self.fast_ma):
                self.position.close()
                self.sell()

    data = bars.set_index(bars["time"].dt.tz_localize(None))[["open", "high", "low", "close"]]
    data.columns = ["Open", "High", "Low", "Close"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(data, ReferenceSmaCross).run()
    return stats["_trades"]


@pytest.mark.parametrize(
    ("symbol", "timeframe", "seed", "fast", "slow"),
    [
        ("EURUSD", "H1", 1, 10, 30),
        ("USDJPY", "H1", 2, 10, 30),
        ("XAUUSD", "M15", 3, 5, 20),
        ("GBPUSD", "D1", 4, 3, 8),
    ],
)
def test_sma_cross_trades_equal_backtesting_py(symbol, timeframe, seed, fast, slow):
    bars = generate_bars(symbol, timeframe, 4000, seed=seed)
    strategy = get_strategy_from_file(SMA_CROSS)(fast=fast, slow=slow)
    ours = run_backtest(
        bars, strategy, spec=get_symbol_spec(symbol), config=BacktestConfig(spread_points=0)
    ).trades
    closed = ours[ours["exit_reason"] != "end"]  # backtesting.py leaves the last trade open
    theirs = reference_trades(bars, fast, slow)
    assert len(closed) > 50
    assert len(closed) == len(theirs)
    np.testing.assert_array_equal(
        closed["entry_time"].dt.tz_localize(None).to_numpy(), theirs["EntryTime"].to_numpy()
    )
    np.testing.assert_array_equal(
        closed["exit_time"].dt.tz_localize(None).to_numpy(), theirs["ExitTime"].to_numpy()
    )
    np.testing.assert_array_equal(closed["entry_price"].to_numpy(), theirs["EntryPrice"])
    np.testing.assert_array_equal(closed["exit_price"].to_numpy(), theirs["ExitPrice"])
    np.testing.assert_array_equal(
        np.where(closed["direction"] == "long", 1, -1), np.sign(theirs["Size"].to_numpy())
    )


def test_exact_ties_reopen_like_backtesting_py():
    """Flat prices make the averages tie exactly; a hidden cross must not desynchronise us."""
    close = np.array(
        [1.0] * 40
        + [1.001, 1.002, 1.003]
        + [1.002] * 30
        + [1.0] * 30
        + [1.004, 1.005, 1.006] * 10
        + [0.999] * 30,
        dtype=float,
    )
    bars = pd.DataFrame(
        {
            "time": pd.date_range("2024-01-01", periods=len(close), freq="h", tz="UTC"),
            "open": np.concatenate(([1.0], close[:-1])),
            "close": close,
        }
    )
    bars["high"] = bars[["open", "close"]].max(axis=1) + 0.0005
    bars["low"] = bars[["open", "close"]].min(axis=1) - 0.0005
    bars["tick_volume"], bars["spread"], bars["real_volume"] = 1, 0, 0
    strategy = get_strategy_from_file(SMA_CROSS)(fast=3, slow=8)
    ours = run_backtest(
        bars, strategy, spec=get_symbol_spec("EURUSD"), config=BacktestConfig(spread_points=0)
    ).trades
    closed = ours[ours["exit_reason"] != "end"]
    theirs = reference_trades(bars, 3, 8)
    same_side_again = (closed["direction"] == closed["direction"].shift()).any()
    assert same_side_again, "the data must produce a re-entry in the held direction"
    assert len(closed) == len(theirs) > 0
    np.testing.assert_array_equal(
        closed["entry_time"].dt.tz_localize(None).to_numpy(), theirs["EntryTime"].to_numpy()
    )
    np.testing.assert_array_equal(closed["exit_price"].to_numpy(), theirs["ExitPrice"])
