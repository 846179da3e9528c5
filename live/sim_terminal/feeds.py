"""The simulator's feeds: every catalog symbol and every configured one, replayed from a CSV
or generated, on one calendar, each with its trading hours on the server's clock."""

from __future__ import annotations

import logging
from typing import Any

from backtest.data import TIMEFRAMES, common_step, load_csv, timeframe_of
from backtest.synthetic import START_PRICES, generate_bars
from live.sim_terminal.config import SimConfig
from live.sim_terminal.market import CATALOG, SimSymbol, SymbolFeed
from live.sim_terminal.trading_hours import MarketCalendar

logger = logging.getLogger(__name__)


def build_feeds(config: SimConfig, calendar: MarketCalendar) -> dict[str, SymbolFeed]:
    """A feed for every catalog symbol and every configured one, on one calendar: a replayed
    file's bars are what it holds; generated bars exist while each symbol's session trades."""
    width = TIMEFRAMES[config.timeframe]
    replayed = config.data_symbol or config.symbols[0]
    names = list(dict.fromkeys([*config.symbols, *CATALOG]))
    feeds: dict[str, SymbolFeed] = {}
    start, n_bars = "2020-01-06", config.n_bars
    if config.data:
        bars = load_csv(config.data, tz=config.data_tz)
        _check_spacing(config.data, bars, config.timeframe)
        feeds[replayed] = _feed(_spec(replayed), bars, width, calendar)
        start, n_bars = str(bars["time"].iloc[0]), len(bars)
    for name in names:
        if name not in feeds:
            spec = _spec(name)
            bars = generate_bars(
                name,
                config.timeframe,
                n_bars,
                start=start,
                seed=config.seed,
                spec=spec.as_symbol_spec(),
                start_price=spec.start_price,
                session=calendar.bar_session(name),
                zone=calendar.zone,
                holidays=calendar.holiday_dates(),
            )
            feeds[name] = _feed(spec, bars, width, calendar)
    return feeds


def _feed(spec: SimSymbol, bars: Any, width: int, calendar: MarketCalendar) -> SymbolFeed:
    """A feed with the symbol's hours over the span of its bars."""
    feed = SymbolFeed(spec, bars, width, zone=calendar.zone)
    feed.hours = calendar.hours(spec.name, float(feed.times[0]), float(feed.end))
    return feed


def _spec(name: str) -> SimSymbol:
    known = CATALOG.get(name)
    if known is not None:
        return known
    base, quote = (name[:3], name[3:6]) if len(name) >= 6 else (name, "USD")
    return SimSymbol(
        name,
        f"{base} vs {quote}",
        5,
        100_000,
        base,
        quote or "USD",
        start_price=START_PRICES.get(name[:6], 1.0),
    )


def _check_spacing(path: str, bars: Any, timeframe: str) -> None:
    """Refuse a CSV whose bars are not `timeframe` apart: replayed as another timeframe, a
    D1 file would be H1 bars with 23 closed hours in between."""
    common = common_step(bars)
    if common is not None and common != TIMEFRAMES[timeframe]:
        found = timeframe_of(common)
        spacing = f"{found} ({common} s)" if found else f"{common} s"
        hint = f"; use timeframe {found} (--timeframe {found})" if found else ""
        raise ValueError(
            f"{path}: its bars are {spacing} apart, but the timeframe is {timeframe}{hint}"
        )
