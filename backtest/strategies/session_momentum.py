"""SessionMomentum: an SMA trend held only during the broker's day session.

Idea: trends carry best while Europe and America trade; outside those hours spreads widen and
moves fade. Session hours are the broker's (`broker_time`, the bar's open on the server's
clock), as an MT5 chart shows them, so the same hours hold in winter and summer.

Parameters:
  fast, slow   SMA periods of the close (bars), 1 <= fast < slow (default 8, 24);
  start, end   broker hours of the session, 0 <= start < end <= 24 (default 9, 19).

Entries and exits: inside the session, long while the fast SMA is above the slow one, short
while below; flat on the bar whose next hour is outside the session (the position closes at
that open). No stop-loss.

Warm-up: slow bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.indicators import sma
from backtest.strategy import Strategy


class SessionMomentum(Strategy):
    """Long above, short below the slow SMA, between broker hours `start` and `end`."""

    fast: int = 8
    slow: int = 24
    start: int = 9
    end: int = 19

    @property
    def warmup(self) -> int:
        return self.slow

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={self.fast}, slow={self.slow}")
        if not 0 <= self.start < self.end <= 24:
            raise ValueError(f"need 0 <= start < end <= 24, got {self.start}-{self.end}")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        close = bars["close"]
        gap = pd.Series(sma(close, self.fast) - sma(close, self.slow), index=bars.index)
        trend = np.sign(gap).fillna(0)
        # the decision on a bar acts at the next bar's open: hold while that hour is in session
        next_hour = (bars["broker_time"].dt.hour + 1) % 24
        in_session = (next_hour >= self.start) & (next_hour < self.end)
        position = trend.where(in_session, 0).astype(int)
        return pd.DataFrame({"position": position}, index=bars.index)
