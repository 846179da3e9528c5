"""SmaTrailPartial's rules in backtesting.py (bench/managed_speed.py; needs
`pip install -r requirements-bench.txt`): the SMA crossover on backtesting.lib.TrailingStrategy,
with `trade.close(1 - keep)` once a close has gained `partial_atr` mean true ranges over the
entry price. See bench/strategies/sma_trail_partial.py for the rules and parameters.

Written as a backtesting.py user would: TrailingStrategy sets the stop on every bar; orders
are whole units (`units`, one lot of EURUSD by default).
"""

from __future__ import annotations

import pandas as pd
from backtesting.lib import TrailingStrategy, crossover


def rolling_mean(values, n: int) -> pd.Series:
    return pd.Series(values).rolling(n).mean()


def mean_true_range(high, low, close, n: int) -> pd.Series:
    """TrailingStrategy's ATR without its back-fill: the plain mean of n true ranges."""
    high, low, close = pd.Series(high), pd.Series(low), pd.Series(close)
    previous = close.shift(1)
    ranges = pd.concat([high - low, (previous - high).abs(), (previous - low).abs()], axis=1)
    return ranges.max(axis=1, skipna=False).rolling(n).mean()


class SmaTrailPartialReference(TrailingStrategy):
    """SMA crossover, TrailingStrategy's stop, one partial close at a gain."""

    fast = 10
    slow = 30
    atr_period = 100
    n_atr = 3.0
    partial_atr = 2.0
    keep = 0.5
    units = 100_000

    def init(self):
        super().init()
        self.set_atr_periods(self.atr_period)
        self.set_trailing_sl(self.n_atr)
        self.warmup = max(self.slow, self.atr_period) + 1
        close = self.data.Close
        self.fast_ma = self.I(rolling_mean, close, self.fast)
        self.slow_ma = self.I(rolling_mean, close, self.slow)
        self.range = self.I(
            mean_true_range, self.data.High, self.data.Low, close, self.atr_period, plot=False
        )

    def next(self):
        super().next()  # trails the stop of every open trade
        if len(self.data) <= self.warmup:
            return
        if crossover(self.fast_ma, self.slow_ma):
            self.position.close()
            self.buy(size=self.units)
        elif crossover(self.slow_ma, self.fast_ma):
            self.position.close()
            self.sell(size=self.units)
        else:
            self.scale_out()

    def scale_out(self) -> None:
        close = self.data.Close[-1]
        for trade in self.trades:
            if abs(trade.size) < self.units:
                continue  # already scaled out
            unit = self.range[trade.entry_bar - 1]  # the deciding bar's
            gained = (close - trade.entry_price) * (1 if trade.is_long else -1)
            if gained >= self.partial_atr * unit:
                trade.close(1.0 - self.keep)
