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

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.broker_clock import UTC_ZONE, BrokerZone
from backtest.data import epoch_seconds, resample_bars, timeframe_seconds
from backtest.errors import BacktestError
from backtest.trading_windows import bar_seconds

SUPPORTED = ("M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1")
_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._#-]*$")
_TIMEFRAME = re.compile(r"^(M|H|D|W|MN)\d+$")  # timeframe-like, known or not


class InformativeError(BacktestError, ValueError):
    """An informative timeframe that cannot be served; the message names it and why."""


@dataclass(frozen=True)
class Source:
    """One declared informative series: `key` as the strategy asks for it ("D1", "GBPUSD",
    "USDJPY:H4"); `symbol` None for the strategy's own, `timeframe` None for its own."""

    key: str
    symbol: str | None
    timeframe: str | None


def declared_sources(strategy: object) -> tuple[Source, ...]:
    """The `informative` entries of a strategy (class or instance), checked: a timeframe
    (M1 ... W1) of its own symbol, another symbol at its own timeframe, or SYMBOL:TF."""
    declared = getattr(strategy, "informative", ()) or ()
    owner = strategy.__name__ if isinstance(strategy, type) else type(strategy).__name__
    if isinstance(declared, str):
        declared = (declared,)
    sources = []
    for entry in dict.fromkeys(str(e).strip().upper() for e in declared):
        symbol, _, timeframe = entry.rpartition(":")
        if not symbol and not _TIMEFRAME.match(timeframe) and _SYMBOL.match(timeframe):
            symbol, timeframe = timeframe, ""  # another symbol at the strategy's timeframe
        if (timeframe and timeframe not in SUPPORTED) or (symbol and not _SYMBOL.match(symbol)):
            raise InformativeError(
                f"{owner}.informative: {entry!r} is not a timeframe ({', '.join(SUPPORTED)}), "
                "a symbol, or SYMBOL:TIMEFRAME"
            )
        sources.append(Source(entry, symbol or None, timeframe or None))
    return tuple(sources)


def declared_timeframes(strategy: object) -> tuple[str, ...]:
    """The informative timeframes of the strategy's own symbol."""
    return tuple(s.timeframe for s in declared_sources(strategy) if s.symbol is None)


def declared_symbols(strategy: object) -> tuple[str, ...]:
    """The other symbols the strategy reads."""
    return tuple(dict.fromkeys(s.symbol for s in declared_sources(strategy) if s.symbol))


def check_multiples(sources: tuple[Source, ...], base_seconds: int, where: str) -> None:
    """Each informative timeframe a whole multiple of the strategy's bars, longer for its
    own symbol (`where` names the symbol and the file for the message)."""
    for source in sources:
        if source.timeframe is None:
            continue
        width = timeframe_seconds(source.timeframe)
        too_short = width < base_seconds or (source.symbol is None and width == base_seconds)
        if too_short or width % base_seconds:
            raise InformativeError(
                f"{where}: informative timeframe {source.key} must be a whole multiple of "
                f"the bars' timeframe ({base_seconds // 60} minutes)"
                + (" and longer" if source.symbol is None else "")
            )


def timeframe_of(seconds: int) -> str:
    """The timeframe name of a bar width in seconds (M1 ... W1)."""
    for name in SUPPORTED:
        if timeframe_seconds(name) == seconds:
            return name
    raise InformativeError(f"bars {seconds} seconds apart are not one of {', '.join(SUPPORTED)}")


def with_close_times(bars: pd.DataFrame, timeframe: str, zone: BrokerZone) -> pd.DataFrame:
    """`bars` of `timeframe` plus `close_time`: the next bar's open on the server's clock
    (a Friday's D1 bar closes at Saturday 00:00 server time, a day across a daylight-saving
    switch after 23 or 25 hours)."""
    closes = zone.bin_closes(epoch_seconds(bars["time"]), timeframe_seconds(timeframe))
    return bars.assign(close_time=pd.to_datetime(closes, unit="s", utc=True).as_unit("ns"))


def check_informative(strategy: object, bars: pd.DataFrame, where: str) -> None:
    """InformativeError (naming `where`: the symbol and its file) when the strategy's
    informative timeframes cannot be cut from `bars`."""
    sources = declared_sources(strategy)
    if sources and len(bars) > 1:
        check_multiples(sources, bar_seconds(bars), where)


def informative_for(
    strategy: object,
    bars: pd.DataFrame,
    zone: BrokerZone,
    where: str,
    others: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, pd.DataFrame] | None:
    """The backtest's informative bars for `strategy` on `bars` (None when it declares
    none): its own bars or another symbol's (`others`, by symbol; only those up to the last
    of `bars` are used) resampled on the broker's clock. InformativeError naming `where`
    when a timeframe does not fit or a symbol's bars are missing."""
    sources = declared_sources(strategy)
    if not sources:
        return None
    check_informative(strategy, bars, where)
    base = timeframe_of(bar_seconds(bars)) if len(bars) > 1 else None
    last = bars["time"].iloc[-1] if len(bars) else None
    frames = {}
    for source in sources:
        data = bars
        if source.symbol is not None:
            data = (others or {}).get(source.symbol)
            if data is None:
                raise InformativeError(
                    f"{where}: informative symbol {source.symbol}: no bars of it given "
                    "(beside the strategy's file, or in --data-dir)"
                )
            data = data[data["time"] <= last] if last is not None else data
        timeframe = source.timeframe or base
        if timeframe is None:
            raise InformativeError(f"{where}: too few bars to tell their timeframe")
        if len(data) > 1 and bar_seconds(data) != timeframe_seconds(timeframe):
            data = resample_bars(data, timeframe, zone)
        frames[source.key] = with_close_times(data, timeframe, zone)
    return frames


def resampled(
    bars: pd.DataFrame, timeframes: tuple[str, ...], zone: BrokerZone = UTC_ZONE
) -> dict[str, pd.DataFrame]:
    """`bars` resampled to each timeframe on the broker's clock, with close times."""
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
            raise InformativeError(f"align: {len(values)} values for {len(informative)} bars")
        picked = values.iloc[np.maximum(row, 0)]
        picked = picked.where(pd.Series(seen, index=picked.index), other=np.nan)
        picked.index = bars.index
        return picked
    array = np.asarray(values)
    if len(array) != len(informative):
        raise InformativeError(f"align: {len(array)} values for {len(informative)} bars")
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
