"""DonchianChandelier: a channel breakout whose stop trails as a chandelier exit.

Idea: a close above the highest high of the previous `channel` bars starts an uptrend, below
the lowest low a downtrend, as in DonchianBreakout. The position is held until the opposite
breakout or until its stop is hit: the stop starts `atr_stop` ATRs from the entry and then
trails `multiple` ATRs behind the highest high (a long) or lowest low (a short) of the last
`period` bars, once the price has moved `activation_atr` ATRs in favour. It only tightens.

Parameters:
  channel         entry channel length in bars, default 20;
  atr_period      ATR period in bars (Wilder), default 14;
  atr_stop        initial stop distance in ATRs, default 2;
  period          chandelier look-back in bars, default 22;
  multiple        chandelier distance in ATRs, default 3;
  activation_atr  favourable move in ATRs before the trailing starts, default 1.

The stop moves (`moving_stops = True`): the level computed on bar t applies from bar t+1, in
the backtest as live (a TRADE_ACTION_SLTP after the bar closes).

Warm-up: max(channel + 1, period, wilder_warmup(atr_period)) bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.indicators import atr, donchian, hold_signals, shift, wilder_warmup
from backtest.management import chandelier_stop, holdings, tightest
from backtest.strategy import Strategy


class DonchianChandelier(Strategy):
    """Donchian breakout with a chandelier trailing stop."""

    channel: int = 20
    atr_period: int = 14
    atr_stop: float = 2.0
    period: int = 22
    multiple: float = 3.0
    activation_atr: float = 1.0
    moving_stops = True

    @property
    def warmup(self) -> int:
        return max(self.channel + 1, self.period, wilder_warmup(max(self.atr_period, self.period)))

    def validate(self) -> None:
        for key in ("channel", "atr_period", "period"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 bar, got {key}={getattr(self, key)}")
        for key in ("atr_stop", "multiple", "activation_atr"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"{key} must be >= 0 ATRs, got {key}={getattr(self, key)}")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        high, low, close = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
        upper, lower, _ = donchian(high, low, self.channel)
        range_ = atr(high, low, close, self.atr_period)
        tradable = range_ > 0
        position = hold_signals(
            (close > shift(upper)) & tradable, (close < shift(lower)) & tradable
        )
        hold = holdings(position)
        first_bar = (hold >= 0) & (hold != np.concatenate(([-1], hold[:-1])))
        side = np.sign(position)
        initial = np.where(first_bar, close - side * self.atr_stop * range_, np.nan)
        initial = pd.Series(initial).groupby(hold).ffill().to_numpy()  # through the holding
        trail = chandelier_stop(
            position,
            high,
            low,
            close,
            period=self.period,
            multiple=self.multiple,
            activation=self.activation_atr * range_,
        )
        # the initial stop, then the chandelier once it is tighter; a level the close has
        # passed is no stop to send (the one in force stays)
        sl = tightest(position, initial, trail)
        sl = np.where(side * (close - sl) > 0, sl, np.nan)
        return pd.DataFrame({"position": position, "sl": sl}, index=bars.index)
