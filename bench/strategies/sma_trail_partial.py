"""SmaTrailPartial: the SMA crossover with backtesting.py's TrailingStrategy stop and a partial
exit, as per-bar columns (bench/managed_speed.py runs the same rules in backtesting.py:
bench/strategies/sma_trail_partial_reference.py).

Entries: long after sma(fast) crosses over sma(slow), short after it crosses under (every cross
is an entry, as SmaCross), from bar `warmup` on. Stop: from the entry's bar on (the bar after
the decision), the close less `n_atr` mean true ranges of `atr_period` bars for a long (plus,
for a short), never loosened; it applies from the next bar. That is TrailingStrategy's level:
its ATR is the plain mean of the true range. Partial exit: once a close has gained
`partial_atr` mean true ranges (those of the deciding bar) over the fill at the entry bar's
open, `keep` of the volume stays (closed at the next open).

Parameters: fast, slow, atr_period (bars); n_atr, partial_atr (mean true ranges); keep
(fraction of the volume, 0..1). Warm-up: max(slow, atr_period) + 1 bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.indicators import crossover, crossunder, hold_signals, sma, true_range
from backtest.management import holdings
from backtest.strategy import Strategy


class SmaTrailPartial(Strategy):
    """SMA crossover, an n-ATR trailing stop from the entry, a partial exit at a gain."""

    fast: int = 10
    slow: int = 30
    atr_period: int = 100
    n_atr: float = 3.0
    partial_atr: float = 2.0
    keep: float = 0.5
    moving_stops = True

    @property
    def warmup(self) -> int:
        return max(self.slow, self.atr_period) + 1

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={self.fast}, slow={self.slow}")
        if self.atr_period < 1 or self.n_atr <= 0 or self.partial_atr <= 0:
            raise ValueError("atr_period must be >= 1 bar; n_atr and partial_atr > 0")
        if not 0 <= self.keep <= 1:
            raise ValueError(f"keep must be a fraction in 0..1, got {self.keep}")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        high, low, close = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
        fast, slow = sma(close, self.fast), sma(close, self.slow)
        ready = np.arange(len(close)) >= self.warmup
        up, down = crossover(fast, slow) & ready, crossunder(fast, slow) & ready
        position = hold_signals(up, down)
        entry = up | down
        hold = holdings(position, entry)
        held = (hold >= 0) & ~entry  # the entry's bar on: the decision's bar has no fill yet
        mean_range = sma(true_range(high, low, close), self.atr_period)
        trailing = _running_best(position * close - self.n_atr * mean_range, held, hold)
        with np.errstate(invalid="ignore"):
            usable = held & (position * close > trailing)  # else the position is gone
        fill = _per_holding(bars["open"].to_numpy(dtype=float), entry, hold, shift=1)
        unit = _per_holding(mean_range, entry, hold)
        gained = _running_best(position * (close - fill), held, hold)
        size = np.where(gained >= self.partial_atr * unit, self.keep, 1.0)
        return pd.DataFrame(
            {
                "position": position,
                "entry": entry,
                "sl": np.where(usable, position * np.where(usable, trailing, 0.0), np.nan),
                "size": np.where(hold >= 0, size, np.nan),
            },
            index=bars.index,
        )


def _running_best(values: np.ndarray, held: np.ndarray, hold: np.ndarray) -> np.ndarray:
    """The running maximum of `values` over the held bars of each holding (-inf before)."""
    signed = np.where(held & np.isfinite(values), values, -np.inf)
    return pd.Series(signed).groupby(hold).cummax().to_numpy()


def _per_holding(values: np.ndarray, entry: np.ndarray, hold: np.ndarray, shift: int = 0):
    """Each holding's value of `values` on its deciding bar (+ shift), on all its bars."""
    first = np.flatnonzero(entry)
    at = np.full(len(values), np.nan)
    at[first] = values[np.minimum(first + shift, len(values) - 1)]
    return pd.Series(at).groupby(hold).ffill().to_numpy()
