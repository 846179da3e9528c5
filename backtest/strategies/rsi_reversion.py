"""RsiReversion: fade RSI extremes, exit at the RSI midline, with ATR-based stop and target.

Idea: after RSI has been oversold (overbought), its turn back through that level marks the
end of the move; trade the reversion towards the middle of the range.

Parameters:
  period       RSI period in bars (Wilder), default 14;
  oversold     RSI level (0..100) whose upward cross opens a long, default 30;
  overbought   RSI level whose downward cross opens a short, default 70;
  exit_level   RSI level that closes the trade once reached from the entry side, default 50;
               requires 0 < oversold < exit_level < overbought < 100;
  atr_period   ATR period in bars (Wilder), default 14;
  sl_atr       stop-loss distance from the entry fill, in multiples of ATR (0 = none), default 2;
  tp_atr       take-profit distance from the entry fill, in multiples of ATR (0 = none), default 3.

Entries: long on the close of a bar where RSI crosses strictly above `oversold`; short where
it crosses strictly below `overbought`. An entry is skipped if that bar's RSI has already
reached `exit_level` (nothing left to revert), or while ATR is undefined or 0 (no stop).
Exits: long is closed when RSI >= exit_level, short when RSI <= exit_level; SL/TP as above,
ATR taken at the signal bar. (A reversal cannot occur: an exit level lies between the entries.)

Warm-up: `wilder_warmup(max(period, atr_period))` bars (155 with the defaults).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from backtest.indicators import atr, crossover, crossunder, hold_signals, rsi, wilder_warmup
from backtest.strategy import Strategy

logger = logging.getLogger(__name__)


class RsiReversion(Strategy):
    """Long when RSI turns up out of oversold, short when it turns down out of overbought."""

    period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0
    exit_level: float = 50.0
    atr_period: int = 14
    sl_atr: float = 2.0
    tp_atr: float = 3.0

    @property
    def warmup(self) -> int:
        # The live trader fetches only `warmup` bars, so RSI and ATR start from a seed there
        # rather than from the start of history as in the backtest. Wilder smoothing forgets
        # its seed slowly (weight (1-1/n)**k after k bars): wait until that weight is < e**-10
        # so live and backtest see the same RSI crosses and the same ATR stop distances.
        return wilder_warmup(max(self.period, self.atr_period))

    def validate(self) -> None:
        if self.period < 1 or self.atr_period < 1:
            raise ValueError(
                f"period and atr_period must be >= 1 bar, got period={self.period}, "
                f"atr_period={self.atr_period}"
            )
        if not 0 < self.oversold < self.exit_level < self.overbought < 100:
            raise ValueError(
                "need 0 < oversold < exit_level < overbought < 100, got "
                f"oversold={self.oversold}, exit_level={self.exit_level}, "
                f"overbought={self.overbought}"
            )
        for key in ("sl_atr", "tp_atr"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{key} must be a finite multiple of ATR >= 0, got {value}")

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        strength = rsi(bars["close"], self.period)
        range_ = atr(bars["high"], bars["low"], bars["close"], self.atr_period)
        tradable = range_ > 0  # False while ATR is NaN: no entry without a stop distance
        long_entry = crossover(strength, self.oversold) & (strength < self.exit_level) & tradable
        short_entry = (
            crossunder(strength, self.overbought) & (strength > self.exit_level) & tradable
        )
        position = hold_signals(
            long_entry,
            short_entry,
            exit_long=strength >= self.exit_level,
            exit_short=strength <= self.exit_level,
        )
        return pd.DataFrame(
            {
                "position": position,
                "sl_distance": _distance(self.sl_atr, range_),
                "tp_distance": _distance(self.tp_atr, range_),
            },
            index=bars.index,
        )


def _distance(multiple: float, range_: np.ndarray) -> np.ndarray:
    """multiple × ATR in price units; NaN (no order) when the multiple is 0."""
    if multiple == 0:
        return np.full(len(range_), np.nan)
    return multiple * range_
