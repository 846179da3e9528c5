"""DailyTrendSma: an SMA crossover on the strategy's bars, traded only with the daily trend.
The example of an informative timeframe (backtest/informative.py).

Idea: the fast SMA of the close above the slow one marks an uptrend on the strategy's own
timeframe (H1, say); the last closed daily bar above its `days`-day SMA says the day-to-day
trend agrees. Trading the first only where the second agrees skips counter-trend moves.

Parameters:
  fast  period of the fast SMA of the close, in bars (default 10), 1 <= fast < slow;
  slow  period of the slow SMA, in bars (default 30);
  days  period of the SMA of the daily closes, in D1 bars (default 20), at least 2.

Entries and exits: long while fast > slow and the daily close is above its average; short
while fast < slow and it is below; flat otherwise (so a change of the daily trend closes a
position at the first bar after the day closed). No stop-loss or take-profit.

D1 bars are cut on the broker's clock, as the terminal cuts them; a daily bar counts only
from the first bar opening after it closed, never during its own day. Until `days` daily
bars have closed the strategy stays flat. Warm-up: slow + 1 bars (the daily average needs
its own days of bars, which the backtest's data or the trader's history must hold).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.indicators import sma
from backtest.strategy import Strategy, align


class DailyTrendSma(Strategy):
    """Fast/slow SMA direction, taken only where the daily close agrees with its SMA."""

    fast: int = 10
    slow: int = 30
    days: int = 20
    informative = ("D1",)

    @property
    def warmup(self) -> int:
        return self.slow + 1

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(
                f"need 1 <= fast < slow (periods in bars), got fast={self.fast}, slow={self.slow}"
            )
        if self.days < 2:
            raise ValueError(f"need days >= 2 (D1 bars), got days={self.days}")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        close = bars["close"]
        rising = np.asarray(sma(close, self.fast) - sma(close, self.slow))
        daily = self.informative_bars("D1")
        trend = daily["close"] - sma(daily["close"], self.days)
        above = align(np.asarray(trend), daily, bars).to_numpy()
        position = np.where((rising > 0) & (above > 0), 1, 0)
        position = np.where((rising < 0) & (above < 0), -1, position)
        return pd.DataFrame({"position": position}, index=bars.index)
