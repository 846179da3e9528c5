"""SmaCross: the moving-average crossover strategy, always in the market after the first cross.

Idea: a fast simple moving average of the close rising through a slow one marks an uptrend,
falling through it a downtrend.

Parameters (bars):
  fast  period of the fast SMA of the close (default 10), 1 <= fast < slow;
  slow  period of the slow SMA of the close (default 30).

Entries and exits: on the close of a bar where sma(fast) crosses over sma(slow) the strategy
goes long (closing any short); where it crosses under, it goes short (closing any long).
Crosses are strict as in backtesting.py: a bar where the averages are exactly equal is not a
cross. Every cross is an entry event, so after an exact tie hid the opposite cross, a new cross
in the held direction closes and re-opens the position, as backtesting.py's example does.
Flat before the first cross. No stop-loss or take-profit.

Warm-up: slow + 1 bars (slow bars for the first slow SMA, one more for the first possible cross).

Reproduces backtesting.py's canonical example:
    if crossover(sma1, sma2): position.close(); buy()
    elif crossover(sma2, sma1): position.close(); sell()
"""

from __future__ import annotations

import logging

import pandas as pd

from backtest.indicators import crossover, crossunder, hold_signals, sma
from backtest.strategy import Strategy

logger = logging.getLogger(__name__)


class SmaCross(Strategy):
    """Long after the fast SMA crosses over the slow SMA, short after it crosses under."""

    fast: int = 10
    slow: int = 30

    @property
    def warmup(self) -> int:
        return self.slow + 1

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(
                f"need 1 <= fast < slow (periods in bars), got fast={self.fast}, slow={self.slow}"
            )

    def plots(self, bars: pd.DataFrame) -> dict[str, object]:
        """The two averages over the price, in the report."""
        close = bars["close"]
        return {
            f"SMA {self.fast}": sma(close, self.fast),
            f"SMA {self.slow}": sma(close, self.slow),
        }

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        close = bars["close"]
        fast, slow = sma(close, self.fast), sma(close, self.slow)
        up, down = crossover(fast, slow), crossunder(fast, slow)
        position = hold_signals(up, down)
        return pd.DataFrame({"position": position, "entry": up | down}, index=bars.index)
