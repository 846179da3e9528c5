"""Informative timeframes: the higher-timeframe bars a strategy declares beside its own, and
how their values reach the strategy's bars without look-ahead.

A strategy lists them (`informative = ("H4", "D1")`) and reads them in `signals()` with
`self.informative_bars("D1")`: bars of that timeframe, cut on the broker's clock as the
terminal cuts them, with a `close_time` column (UTC; a forming bar's lies ahead). In the
backtest they are the strategy's own bars resampled; the live trader fetches them from the
terminal, the forming one included. `align(values, informative, bars)` brings a value of
each higher bar onto the strategy's bars: a higher bar shows only from the first bar opening
at or after its close, so a decision never sees a bar that had not closed when it was made.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from backtest.broker_clock import UTC_ZONE, BrokerZone
from backtest.data import epoch_seconds, resample_bars, timeframe_seconds
from backtest.trading_windows import bar_seconds

SUPPORTED = ("M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1")


class InformativeError(ValueError):
    """An informative timeframe that cannot be served; the message names it and why."""


def declared_timeframes(strategy: object) -> tuple[str, ...]:
    """The `informative` timeframes of a strategy (class or instance), checked: upper case,
    known, no repeats."""
    declared = getattr(strategy, "informative", ()) or ()
    name = strategy.__name__ if isinstance(strategy, type) else type(strategy).__name__
    if isinstance(declared, str):
        declared = (declared,)
    names = tuple(str(name).strip().upper() for name in declared)
    unknown = [name for name in names if name not in SUPPORTED]
    if unknown:
        raise InformativeError(
            f"{name}.informative: {', '.join(unknown)} is not one of {', '.join(SUPPORTED)}"
        )
    return tuple(dict.fromkeys(names))


def check_multiples(timeframes: tuple[str, ...], base_seconds: int, where: str) -> None:
    """Each informative timeframe a whole multiple of the strategy's bars (`where` names the
    symbol and the file for the message)."""
    for name in timeframes:
        width = timeframe_seconds(name)
        if width <= base_seconds or width % base_seconds:
            raise InformativeError(
                f"{where}: informative timeframe {name} must be a whole multiple of the "
                f"bars' timeframe ({base_seconds // 60} minutes) and longer"
            )


def with_close_times(bars: pd.DataFrame, timeframe: str, zone: BrokerZone) -> pd.DataFrame:
    """`bars` of `timeframe` plus `close_time`: the next bar's open on the server's clock
    (a Friday's D1 bar closes at Saturday 00:00 server time, a day across a daylight-saving
    switch after 23 or 25 hours)."""
    width = timeframe_seconds(timeframe)
    opens = epoch_seconds(bars["time"])
    keys, _ = zone.bin_opens(opens, width)
    origin = 3 * 86_400 if timeframe == "W1" else 0  # weeks from Sunday 00:00
    closes = np.asarray(zone.to_utc((keys + 1) * width + origin), dtype=np.int64)
    return bars.assign(close_time=pd.to_datetime(closes, unit="s", utc=True).as_unit("ns"))


def check_informative(strategy: object, bars: pd.DataFrame, where: str) -> None:
    """InformativeError (naming `where`: the symbol and its file) when the strategy's
    informative timeframes cannot be cut from `bars`."""
    timeframes = declared_timeframes(strategy)
    if timeframes and len(bars) > 1:
        check_multiples(timeframes, bar_seconds(bars), where)


def informative_for(
    strategy: object, bars: pd.DataFrame, zone: BrokerZone, where: str
) -> dict[str, pd.DataFrame] | None:
    """The backtest's informative bars for `strategy` on `bars` (None when it declares
    none); InformativeError naming `where` when one is not a multiple of the bars."""
    timeframes = declared_timeframes(strategy)
    if not timeframes:
        return None
    check_informative(strategy, bars, where)
    return resampled(bars, timeframes, zone)


def resampled(
    bars: pd.DataFrame, timeframes: tuple[str, ...], zone: BrokerZone = UTC_ZONE
) -> dict[str, pd.DataFrame]:
    """The backtest's informative bars: the strategy's own bars resampled on the broker's
    clock, each with its close time."""
    return {
        name: with_close_times(resample_bars(bars, name, zone), name, zone) for name in timeframes
    }


def align(
    values: pd.Series | pd.DataFrame | np.ndarray,
    informative: pd.DataFrame,
    bars: pd.DataFrame,
) -> pd.Series | pd.DataFrame:
    """Values given per row of `informative` (a frame from `informative_bars`), per row of
    `bars`: each bar gets the value of the last informative bar closed at or before its
    open; NaN before the first."""
    closes = epoch_seconds(informative["close_time"])
    opens = epoch_seconds(bars["time"])
    row = np.searchsorted(closes, opens, side="right") - 1  # closes are sorted
    seen = row >= 0
    if isinstance(values, (pd.Series, pd.DataFrame)):
        if len(values) != len(informative):
            raise ValueError(f"align: {len(values)} values for {len(informative)} bars")
        picked = values.iloc[np.maximum(row, 0)]
        picked = picked.where(pd.Series(seen, index=picked.index), other=np.nan)
        picked.index = bars.index
        return picked
    array = np.asarray(values)
    if len(array) != len(informative):
        raise ValueError(f"align: {len(array)} values for {len(informative)} bars")
    out = array[np.maximum(row, 0)].astype(float)
    out[~seen] = np.nan
    return pd.Series(out, index=bars.index)


class InformativeBars(Mapping[str, pd.DataFrame]):
    """The informative bars one `signals()` call gets, by timeframe."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self._frames = frames

    def __getitem__(self, timeframe: str) -> pd.DataFrame:
        try:
            return self._frames[timeframe.upper()]
        except KeyError:
            declared = ", ".join(self._frames) or "none"
            raise InformativeError(
                f"informative timeframe {timeframe!r} is not declared (declared: {declared})"
            ) from None

    def __iter__(self):
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)
