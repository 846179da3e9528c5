"""DonchianBreakout: trade closes outside the recent high/low channel, exit on a shorter channel.

Idea (the Turtle rules, simplified): a close above the highest high of the previous `channel`
bars starts an uptrend, below the lowest low a downtrend; a close back through the shorter
`exit_channel` on the other side ends it.

Parameters:
  channel       entry channel length in bars, default 20;
  exit_channel  exit channel length in bars, default 10;
  atr_period    ATR period in bars (Wilder), default 14;
  atr_stop      stop-loss distance from the entry fill in multiples of ATR (0 = none), default 2.

Entries: long on the close of a bar whose close is above max(high) of the `channel` bars
before it; short when the close is below their min(low). Entries wait until ATR is defined.
Exits: long is closed when the close falls below min(low) of the previous `exit_channel`
bars; short when it rises above their max(high). An opposite breakout reverses the position.
Stop: `sl_distance` = atr_stop × ATR at the signal bar. No take-profit.

Warm-up: max(channel + 1, exit_channel + 1, wilder_warmup(atr_period)) bars (155 by default).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from backtest.indicators import atr, donchian, hold_signals, shift, wilder_warmup
from backtest.strategy import Strategy

logger = logging.getLogger(__name__)


class DonchianBreakout(Strategy):
    """Long on a close above the previous channel high, short below the previous channel low."""

    channel: int = 20
    exit_channel: int = 10
    atr_period: int = 14
    atr_stop: float = 2.0

    @property
    def warmup(self) -> int:
        # Channels need their length plus the bar being compared. ATR is recursive: the live
        # trader computes it on only `warmup` bars, so wait until the seed's weight is < e**-10
        # for live stops to match the backtest's.
        return max(self.channel + 1, self.exit_channel + 1, wilder_warmup(self.atr_period))

    def validate(self) -> None:
        for key in ("channel", "exit_channel", "atr_period"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 bar, got {key}={getattr(self, key)}")
        if not (math.isfinite(self.atr_stop) and self.atr_stop >= 0):
            raise ValueError(f"atr_stop must be a finite multiple of ATR >= 0, got {self.atr_stop}")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        high, low, close = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
        entry_high, entry_low, _ = donchian(high, low, self.channel)
        exit_high, exit_low, _ = donchian(high, low, self.exit_channel)
        range_ = atr(high, low, close, self.atr_period)
        tradable = range_ > 0  # False while ATR is NaN: no entry without a stop distance
        # Compare with the channel of the bars BEFORE t: bar t's own high would always contain
        # its close.
        position = hold_signals(
            (close > shift(entry_high)) & tradable,
            (close < shift(entry_low)) & tradable,
            exit_long=close < shift(exit_low),
            exit_short=close > shift(exit_high),
        )
        stop = np.full(len(close), np.nan) if self.atr_stop == 0 else self.atr_stop * range_
        return pd.DataFrame({"position": position, "sl_distance": stop}, index=bars.index)
