"""PendingBreakout: buy stop above the recent range, sell stop below it, that expire.

Idea: after a quiet stretch, a break of the last `channel` bars' range tends to run. Instead
of entering at the next open after a close outside the range, the strategy leaves a pending
order at the range's edge, as MT5 traders do: a buy stop `buffer_atr` ATRs above the highest
high while the fast EMA is above the slow one, a sell stop below the lowest low when below.
The order waits `expiry_bars` bars (an MT5 pending order with an expiration), and is
cancelled when the trend filter flips. Once filled, the position has a stop `atr_stop` ATRs
and a target `atr_target` ATRs from the fill, and is closed after `max_bars` bars.

Parameters:
  channel      range length in bars, default 24;
  fast, slow   trend filter EMA periods, default 20 and 80;
  atr_period   ATR period (Wilder), default 14;
  buffer_atr   distance of the stop order beyond the range, in ATRs, default 0.1;
  atr_stop     stop-loss distance in ATRs, default 1.5;
  atr_target   take-profit distance in ATRs, default 3;
  expiry_bars  bars the pending order waits, default 6;
  max_bars     bars after which a filled position is closed, default 48.

Uses `entry_type` "stop", `entry_price`, `expiry_bars`, `sl_distance`, `tp_distance` and
`max_bars`. Warm-up: 10 × slow bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.indicators import atr, donchian, ema, wilder_warmup
from backtest.strategy import Strategy


class PendingBreakout(Strategy):
    """Stop orders at the edges of the recent range in the trend's direction, with expiry."""

    channel: int = 24
    fast: int = 20
    slow: int = 80
    atr_period: int = 14
    buffer_atr: float = 0.1
    atr_stop: float = 1.5
    atr_target: float = 3.0
    expiry_bars: int = 6
    max_bars: int = 48

    @property
    def warmup(self) -> int:
        return max(10 * self.slow, wilder_warmup(self.atr_period), self.channel + 1)

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={self.fast}, slow={self.slow}")
        if self.channel < 1 or self.expiry_bars < 1 or self.max_bars < 1:
            raise ValueError("channel, expiry_bars and max_bars must be >= 1 bar")
        if min(self.buffer_atr, self.atr_stop, self.atr_target) < 0:
            raise ValueError("buffer_atr, atr_stop and atr_target must be >= 0")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        high, low, close = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
        upper, lower, _ = donchian(high, low, self.channel)
        range_ = atr(high, low, close, self.atr_period)
        trend = np.nan_to_num(np.sign(ema(close, self.fast) - ema(close, self.slow)))
        ready = np.isfinite(upper) & (range_ > 0)
        position = np.where(ready, trend, 0).astype(np.int8)
        buy_at = upper + self.buffer_atr * range_
        sell_at = lower - self.buffer_atr * range_
        entry_price = np.where(position > 0, buy_at, np.where(position < 0, sell_at, np.nan))
        # each bar of the trend offers a new order; only a change of decision (or a filled
        # order's exit) makes one: the `entry` column re-arms after an exit
        return pd.DataFrame(
            {
                "position": position,
                "entry_type": "stop",
                "entry_price": entry_price,
                "expiry_bars": float(self.expiry_bars),
                "sl_distance": self.atr_stop * range_,
                "tp_distance": self.atr_target * range_,
                "max_bars": float(self.max_bars),
            },
            index=bars.index,
        )
