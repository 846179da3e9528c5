"""UsdBasketSma: an SMA crossover traded only with the US dollar's broad move, measured on a
DXY-like basket built from other symbols' bars. The example of cross-symbol inputs
(backtest/informative.py), meant for EURUSD.

Idea: the dollar's strength over the last `lookback` bars is the mean of its log moves
against the euro (this symbol, inverted), the pound (GBPUSD, inverted) and the yen (USDJPY).
An uptrend of EURUSD the dollar's weakness agrees with is worth trading; one against a
strengthening dollar is not.

Parameters:
  fast      period of the fast SMA of the close, in bars (default 10), 1 <= fast < slow;
  slow      period of the slow SMA, in bars (default 30);
  lookback  bars over which the basket's move is measured (default 24), at least 1.

Entries and exits: long while fast > slow and the dollar weakened; short while fast < slow
and it strengthened; flat otherwise. No stop-loss or take-profit.

GBPUSD's and USDJPY's bars count from the first bar after they closed, as any informative
bar, so the basket lags this symbol's own move by one bar. Warm-up: slow + 1 bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.indicators import sma
from backtest.strategy import Strategy, align


class UsdBasketSma(Strategy):
    """Fast/slow SMA direction, taken only where the dollar basket's move agrees."""

    fast: int = 10
    slow: int = 30
    lookback: int = 24
    informative = ("GBPUSD", "USDJPY")

    @property
    def warmup(self) -> int:
        return max(self.slow, self.lookback) + 1

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(
                f"need 1 <= fast < slow (periods in bars), got fast={self.fast}, slow={self.slow}"
            )
        if self.lookback < 1:
            raise ValueError(f"need lookback >= 1 (bars), got lookback={self.lookback}")

    def _move(self, bars: pd.DataFrame) -> np.ndarray:
        """Each bar's log move of the close over `lookback` bars."""
        close = np.log(bars["close"].to_numpy(dtype=float))
        move = np.full(len(close), np.nan)
        move[self.lookback :] = close[self.lookback :] - close[: -self.lookback]
        return move

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        rising = np.asarray(sma(bars["close"], self.fast) - sma(bars["close"], self.slow))
        pound, yen = self.informative_bars("GBPUSD"), self.informative_bars("USDJPY")
        dollar = (
            -self._move(bars)
            - align(self._move(pound), pound, bars).to_numpy()
            + align(self._move(yen), yen, bars).to_numpy()
        ) / 3.0
        position = np.where((rising > 0) & (dollar < 0), 1, 0)
        position = np.where((rising < 0) & (dollar > 0), -1, position)
        return pd.DataFrame({"position": position}, index=bars.index)
