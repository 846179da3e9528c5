"""Shared fixtures for backtest tests: synthetic OHLC bars."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

BarsFactory = Callable[..., pd.DataFrame]


def make_random_bars(
    n: int,
    seed: int = 0,
    *,
    start: str = "2024-01-01",
    freq: str = "h",
    price: float = 1.1,
    volatility: float = 0.002,
    digits: int = 5,
) -> pd.DataFrame:
    """A geometric random walk as MT5-style bars: time (UTC, ns), OHLC, tick_volume, spread.

    Prices are rounded to `digits`, so equal values (ties) occur as in real quotes.
    """
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, volatility, n)))
    open_ = np.concatenate(([price], close[:-1])) * np.exp(rng.normal(0.0, volatility / 10, n))
    wick = np.abs(rng.normal(0.0, volatility / 2, (2, n))) * close
    return pd.DataFrame(
        {
            "time": pd.date_range(start, periods=n, freq=freq, tz="UTC").as_unit("ns"),
            "open": open_.round(digits),
            "high": (np.maximum(open_, close) + wick[0]).round(digits),
            "low": (np.minimum(open_, close) - wick[1]).round(digits),
            "close": close.round(digits),
            "tick_volume": rng.integers(50, 5000, n),
            "spread": rng.integers(0, 20, n),
        }
    )


@pytest.fixture
def random_bars() -> BarsFactory:
    """Factory: `random_bars(n, seed=0, **options)` -> bars DataFrame (see make_random_bars)."""
    return make_random_bars


# A strategy whose validate() refuses fast >= slow (InvalidParameters), for the tests of
# refused parameter values.
PERIODS_STRATEGY = """
from backtest.indicators import sma
from backtest.strategy import Strategy

class Periods(Strategy):
    fast: int = 5
    slow: int = 20

    def validate(self):
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")

    def signals(self, bars):
        return (sma(bars["close"], self.fast) > sma(bars["close"], self.slow)).astype(int)
"""
