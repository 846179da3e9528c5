"""Stop management helpers for strategies: trailing stops (by distance, by ATR, chandelier) and
break-even, each with an activation threshold, as per-bar `sl` columns.

Every helper takes the strategy's `position` column (and optionally its `entry` column) and
works per holding: from the bar that decides an entry to the bar before the next decision.
It returns one level per bar, NaN where flat or not yet active, and it only ever tightens
within a holding (a long's stop rises, a short's falls). A level at or beyond the bar's close
is given as NaN (the stop in force stays): a server refuses such a stop. Give the result as
the `sl` column of a strategy with `moving_stops = True`; the level of bar t applies from bar t+1.

The entry's reference price is the close of the deciding bar (the fill is not known when
the signal is computed, live or in the backtest); activation and break-even measure the
favourable move from it. All of it is vectorised and uses bars up to t only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.indicators import ArrayLike, atr

__all__ = [
    "atr_trailing_stop",
    "break_even_stop",
    "chandelier_stop",
    "holdings",
    "tightest",
    "trailing_stop",
]


def holdings(position: ArrayLike, entry: ArrayLike | None = None) -> np.ndarray:
    """Per bar, which holding it belongs to (0, 1, ...), -1 while flat. A holding starts on
    a bar whose decision changes to long or short, or where `entry` asks for a fresh one."""
    pos = np.nan_to_num(np.asarray(position, dtype=float)).astype(np.int8)
    previous = np.concatenate(([0], pos[:-1]))
    fresh = np.zeros(len(pos), dtype=bool) if entry is None else np.asarray(entry, dtype=bool)
    starts = (pos != 0) & ((pos != previous) | fresh)
    ids = np.cumsum(starts) - 1
    return np.where(pos != 0, ids, -1)


def trailing_stop(
    position: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    distance: ArrayLike | float,
    *,
    activation: ArrayLike | float = 0.0,
    entry: ArrayLike | None = None,
) -> np.ndarray:
    """A stop `distance` behind the best price since the entry (the highest high for a long,
    the lowest low for a short), once the price has moved `activation` in favour."""
    pos, hold, reference = _holding_frame(position, close, entry)
    best = _best_since_entry(pos, hold, high, low)
    active = _activated(pos, hold, best, reference, activation)
    level = best - pos * np.asarray(distance, dtype=float)
    return _ratchet(pos, hold, np.where(active, level, np.nan), close)


def atr_trailing_stop(
    position: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    *,
    period: int = 14,
    multiple: float = 3.0,
    activation: ArrayLike | float = 0.0,
    entry: ArrayLike | None = None,
) -> np.ndarray:
    """A trailing stop `multiple` ATRs behind the best price since the entry."""
    distance = multiple * atr(high, low, close, period)
    return trailing_stop(position, high, low, close, distance, activation=activation, entry=entry)


def chandelier_stop(
    position: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    *,
    period: int = 22,
    multiple: float = 3.0,
    activation: ArrayLike | float = 0.0,
    entry: ArrayLike | None = None,
) -> np.ndarray:
    """Chandelier exit: `multiple` ATRs below the highest high of the last `period` bars (a
    long), above the lowest low (a short)."""
    pos, hold, reference = _holding_frame(position, close, entry)
    highest = pd.Series(np.asarray(high, dtype=float)).rolling(period).max().to_numpy()
    lowest = pd.Series(np.asarray(low, dtype=float)).rolling(period).min().to_numpy()
    distance = multiple * atr(high, low, close, period)
    level = np.where(pos > 0, highest - distance, lowest + distance)
    best = _best_since_entry(pos, hold, high, low)
    active = _activated(pos, hold, best, reference, activation)
    return _ratchet(pos, hold, np.where(active, level, np.nan), close)


def break_even_stop(
    position: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    initial_sl: ArrayLike,
    *,
    after_r: float = 1.0,
    offset: float = 0.0,
    entry: ArrayLike | None = None,
) -> np.ndarray:
    """The initial stop (as decided on the entry bar) until the price has moved `after_r`
    times the initial risk in favour, then the entry reference plus `offset` (in price, in
    the position's favour)."""
    pos, hold, reference = _holding_frame(position, close, entry)
    first_sl = _at_entry(hold, np.asarray(initial_sl, dtype=float))
    risk = np.abs(reference - first_sl)
    best = _best_since_entry(pos, hold, high, low)
    reached = _activated(pos, hold, best, reference, after_r * risk)
    level = np.where(reached, reference + pos * offset, first_sl)
    return _ratchet(pos, hold, np.where(hold >= 0, level, np.nan), close)


def tightest(position: ArrayLike, *levels: ArrayLike) -> np.ndarray:
    """Per bar, the tightest of several stop levels (the highest for a long, the lowest for a
    short), ignoring NaN."""
    pos = np.nan_to_num(np.asarray(position, dtype=float))
    stack = np.vstack([np.asarray(level, dtype=float) for level in levels])
    finite = np.isfinite(stack)
    high = np.where(finite, stack, -np.inf).max(axis=0)
    low = np.where(finite, stack, np.inf).min(axis=0)
    high, low = np.where(np.isfinite(high), high, np.nan), np.where(np.isfinite(low), low, np.nan)
    return np.where(pos > 0, high, np.where(pos < 0, low, np.nan))


# ---------------------------------------------------------------- per holding


def _holding_frame(position, close, entry):
    pos = np.nan_to_num(np.asarray(position, dtype=float))
    hold = holdings(pos, entry)
    reference = _at_entry(hold, np.asarray(close, dtype=float))
    return np.sign(pos), hold, reference


def _at_entry(hold: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each bar gets the value its holding had on its first bar (NaN while flat)."""
    first = np.flatnonzero((hold >= 0) & (hold != np.concatenate(([-1], hold[:-1]))))
    at = np.full(len(hold), np.nan)
    if len(first):
        starts = values[first]
        at = np.where(hold >= 0, starts[np.maximum(hold, 0)], np.nan)
    return at


def _best_since_entry(pos, hold, high, low) -> np.ndarray:
    """The highest high since the entry bar for a long, the lowest low for a short."""
    favour = np.where(pos > 0, np.asarray(high, dtype=float), -np.asarray(low, dtype=float))
    running = pd.Series(favour).groupby(hold).cummax().to_numpy()
    return np.where(hold >= 0, pos * running, np.nan)


def _activated(pos, hold, best, reference, threshold) -> np.ndarray:
    """True from the first bar the best price has moved `threshold` from the reference."""
    with np.errstate(invalid="ignore"):
        moved = pos * (best - reference) >= threshold
    return (hold >= 0) & moved


def _ratchet(pos, hold, level, close) -> np.ndarray:
    """Within each holding the stop only tightens: a running max for a long (min for a
    short); NaN until the first level, and where it is not on the losing side of the close."""
    signed = np.where(np.isfinite(level), pos * level, -np.inf)
    running = pd.Series(signed).groupby(hold).cummax().to_numpy()
    with np.errstate(invalid="ignore"):
        usable = (hold >= 0) & np.isfinite(running) & (pos * np.asarray(close) > running)
        return np.where(usable, pos * running, np.nan)
