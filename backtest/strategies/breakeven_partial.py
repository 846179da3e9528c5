"""EmaBreakEven: an EMA-cross trend entry managed as many Expert Advisors do: a partial
take-profit, a stop moved to break-even, and a time exit.

Idea: a fast EMA crossing above a slow one enters long, below enters short. The stop starts
`atr_stop` ATRs from the entry. Once the price has moved `partial_r` times that risk in
favour, `partial_size` of the position is closed (a partial take-profit) and the stop moves
to the entry plus `offset_points` (break-even). The rest runs to the opposite cross, its
stop, or `max_bars` bars after the entry.

Parameters:
  fast, slow      EMA periods in bars, default 12 and 48;
  atr_period      ATR period in bars (Wilder), default 14;
  atr_stop        initial stop distance in ATRs, default 1.5;
  partial_r       favourable move, in multiples of the initial risk, that takes the partial
                  profit and moves the stop to break-even, default 1;
  partial_size    fraction of the volume kept after the partial exit, default 0.5;
  offset_points   break-even offset in price units beyond the entry reference, default 0;
  max_bars        bars after which the position is closed, default 96 (0: never).

Uses `sl` per bar (moving_stops), `size`, and `max_bars`. Warm-up: 10 × slow bars (EMAs
forget their seed), at least wilder_warmup(atr_period).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.indicators import atr, crossover, crossunder, ema, hold_signals, wilder_warmup
from backtest.management import break_even_stop, holdings
from backtest.strategy import Strategy


class EmaBreakEven(Strategy):
    """EMA cross with a partial take-profit, a break-even stop and a time exit."""

    fast: int = 12
    slow: int = 48
    atr_period: int = 14
    atr_stop: float = 1.5
    partial_r: float = 1.0
    partial_size: float = 0.5
    offset_points: float = 0.0
    max_bars: int = 96
    moving_stops = True

    @property
    def warmup(self) -> int:
        return max(10 * self.slow, wilder_warmup(self.atr_period))

    def validate(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={self.fast}, slow={self.slow}")
        if not 0 < self.partial_size <= 1:
            raise ValueError(f"partial_size must be in (0, 1], got {self.partial_size}")
        if self.atr_stop <= 0 or self.partial_r <= 0:
            raise ValueError("atr_stop and partial_r must be > 0")
        if self.max_bars < 0:
            raise ValueError(f"max_bars must be >= 0 bars, got {self.max_bars}")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        high, low, close = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
        fast, slow = ema(close, self.fast), ema(close, self.slow)
        range_ = atr(high, low, close, self.atr_period)
        tradable = range_ > 0
        up, down = crossover(fast, slow) & tradable, crossunder(fast, slow) & tradable
        position = hold_signals(up, down)
        side = np.sign(position)
        hold = holdings(position)
        first_bar = (hold >= 0) & (hold != np.concatenate(([-1], hold[:-1])))
        initial = np.where(first_bar, close - side * self.atr_stop * range_, np.nan)
        sl = break_even_stop(
            position, high, low, close, initial, after_r=self.partial_r, offset=self.offset_points
        )
        # the partial exit comes with the break-even: from the bar the stop first moves
        moved = (hold >= 0) & ~first_bar & (sl != _carried(hold, initial))
        reached = pd.Series(moved).groupby(hold).cummax().to_numpy().astype(bool)
        size = np.where(reached, self.partial_size, 1.0)
        sl = np.where(first_bar, initial, sl)
        max_bars = float(self.max_bars) if self.max_bars else np.nan
        return pd.DataFrame(
            {"position": position, "sl": sl, "size": size, "max_bars": max_bars},
            index=bars.index,
        )


def _carried(hold: np.ndarray, values: np.ndarray) -> np.ndarray:
    return pd.Series(values).groupby(hold).ffill().to_numpy()
