"""SmaCrossStops: the SMA crossover with a stop-loss and a take-profit at fixed distances from
the fill (for the crash trials: a server that drops stops makes the trader set them again).

Parameters: fast, slow (bars) as SmaCross; sl_distance, tp_distance (price units).
"""

from __future__ import annotations

import pandas as pd

from backtest.strategies.sma_cross import SmaCross


class SmaCrossStops(SmaCross):
    """SmaCross with stops sl_distance and tp_distance from the fill."""

    sl_distance: float = 0.004
    tp_distance: float = 0.008

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        out = super().signals(bars)
        out["sl_distance"] = self.sl_distance
        out["tp_distance"] = self.tp_distance
        return out
