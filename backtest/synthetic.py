"""Seeded synthetic FX-like bars, so everything runs offline.

The model, per bar: log-returns with a slowly varying volatility (a log-volatility AR(1)),
an intraday seasonality (quiet Asian session, busier London and New York), and a slow drift
that comes and goes, so trend and reversal strategies both find something. FX hours: bars
only while the session is open, by default the forex week from Sunday 17:00 to Friday 17:00
New York (22:00 UTC in winter, 21:00 in summer); its daily break stops trading, not bars.
Bars are cut on the broker's clock (D1 at its midnight, W1 from its Sunday), UTC by default.
Spreads widen in the Asian session and at the 21:00-23:00 UTC rollover; tick volume follows
volatility. Same (symbol, timeframe, seed, session, zone, holidays), same bars.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from backtest.broker_clock import DAY, UTC_ZONE, WEEK, BrokerZone
from backtest.data import timeframe_seconds
from backtest.errors import UsageError
from backtest.sessions import FOREX_DEFAULT, WeeklySession
from backtest.symbols import SymbolSpec, get_symbol_spec

START_PRICES = {"EURUSD": 1.10, "GBPUSD": 1.27, "USDJPY": 145.0, "XAUUSD": 1950.0}
HOURLY_VOLATILITY = {"EURUSD": 0.0010, "GBPUSD": 0.0012, "USDJPY": 0.0011, "XAUUSD": 0.0025}
TYPICAL_SPREAD_POINTS = {"EURUSD": 8, "GBPUSD": 12, "USDJPY": 9, "XAUUSD": 25}
# Relative activity by UTC hour: Asia quiet, London open busy, London/New York overlap busiest.
_SEASONALITY = np.array(
    [
        0.55,
        0.5,
        0.5,
        0.55,
        0.6,
        0.65,
        0.75,
        1.1,
        1.35,
        1.3,
        1.2,
        1.15,
        1.35,
        1.5,
        1.5,
        1.35,
        1.15,
        1.0,
        0.85,
        0.75,
        0.7,
        0.6,
        0.5,
        0.55,
    ]
)
# the finest grid bars are looked for on: every zone's offset is a whole half hour
_HALF_HOUR = 1800


def generate_bars(
    symbol: str = "EURUSD",
    timeframe: str = "H1",
    n_bars: int = 5000,
    *,
    start: str = "2020-01-06",
    seed: int = 0,
    spec: SymbolSpec | None = None,
    start_price: float | None = None,
    session: WeeklySession | None = None,
    zone: BrokerZone | None = None,
    holidays: Iterable[str | date] = (),
) -> pd.DataFrame:
    """`n_bars` bars of `symbol` on `timeframe` from `start` (UTC), as the canonical frame.

    The first open is `start_price` (default: a typical level for known symbols, else 1.0).
    A bar exists when `session` (default: the forex week) is open at its open time, a W1 bar
    when it opens at all that week; none on `holidays` (ISO dates on `zone`'s clock). Bars
    are cut on `zone`'s clock (default UTC), as the broker's server cuts them.
    """
    if n_bars < 1:
        raise UsageError(f"n_bars must be >= 1, got {n_bars}")
    spec = spec or get_symbol_spec(symbol)
    width = timeframe_seconds(timeframe)
    rng = np.random.default_rng([seed, zlib.crc32(f"{symbol}|{timeframe}".encode())])
    first = int(pd.Timestamp(start, tz="UTC").timestamp())
    closed_days = tuple(sorted({_day_number(day) for day in holidays}))
    week = FOREX_DEFAULT if session is None else session
    seconds = _open_times(first, width, n_bars, week, zone or UTC_ZONE, closed_days)
    hours = (seconds // 3600) % 24
    activity = _SEASONALITY[hours] if width < 86_400 else np.ones(n_bars)
    key = symbol.upper()[:6]
    sigma = HOURLY_VOLATILITY.get(key, 0.001) * np.sqrt(width / 3600) * activity
    sigma *= _volatility_regime(rng, n_bars)
    drift = _drift(rng, n_bars) * sigma
    returns = drift + sigma * rng.standard_t(5, n_bars) / np.sqrt(5 / 3)
    gaps = _gap_returns(rng, seconds, width, sigma)
    first = start_price if start_price is not None else START_PRICES.get(key, 1.0)
    close = first * np.exp(np.cumsum(returns + gaps))
    open_ = np.concatenate(([close[0] * np.exp(-returns[0])], close[:-1])) * np.exp(gaps)
    wick = np.abs(rng.normal(0.0, 0.6, (2, n_bars))) * sigma * close
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(seconds, unit="s", utc=True).as_unit("ns"),
            "open": np.round(open_, spec.digits),
            "close": np.round(close, spec.digits),
        }
    )
    frame["high"] = np.round(np.maximum(frame["open"], frame["close"]) + wick[0], spec.digits)
    frame["low"] = np.round(np.minimum(frame["open"], frame["close"]) - wick[1], spec.digits)
    frame["tick_volume"] = _tick_volume(rng, sigma, width)
    frame["spread"] = _spreads(rng, key, hours, width)
    frame["real_volume"] = np.zeros(n_bars, dtype=np.int64)
    return frame.loc[
        :, ["time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume"]
    ]


def is_fx_open(seconds: np.ndarray, session: WeeklySession = FOREX_DEFAULT) -> np.ndarray:
    """True for epoch seconds (UTC) inside the trading week of `session` (default the forex
    week: Sunday 17:00 to Friday 17:00 New York); its daily breaks do not count."""
    return replace(session, breaks=()).is_open(np.asarray(seconds))


@lru_cache(maxsize=32)
def _open_times(
    first: int,
    width: int,
    n_bars: int,
    session: WeeklySession,
    zone: BrokerZone,
    closed_days: tuple[int, ...],
) -> np.ndarray:
    """Open times (UTC) of the first `n_bars` bars from the one holding `first`, cut on
    `zone`'s clock and kept where the market trades (cached: a simulator asks for the same
    calendar once per symbol; the array is read-only)."""
    step = math.gcd(width, _HALF_HOUR)  # fine enough to find every bar edge on any zone
    origin = int(zone.bin_opens(np.array([first]), width)[1][0])
    span = int(n_bars * 1.5) + 400
    while True:
        fine = origin + step * np.arange(span * (width // step), dtype=np.int64)
        keys, opens = zone.bin_opens(fine, width)
        starts = np.flatnonzero(np.diff(keys, prepend=keys[0] - 1))
        if width >= WEEK:  # a week bar opens on a closed Sunday: it exists if the week trades
            exists = np.logical_or.reduceat(_trades(fine, session, zone, closed_days), starts)
        else:
            exists = _trades(opens[starts], session, zone, closed_days)
        times = opens[starts][exists]
        if len(times) >= n_bars:
            times = times[:n_bars].astype(np.int64)
            times.setflags(write=False)
            return times
        span *= 2  # long holiday lists: look further


def _trades(
    seconds: np.ndarray, session: WeeklySession, zone: BrokerZone, closed_days: tuple[int, ...]
) -> np.ndarray:
    """Whether bars are made at each UTC epoch: inside the trading week, not on a holiday."""
    open_ = is_fx_open(seconds, session)
    if closed_days:
        days = (seconds + zone.offsets(seconds)) // DAY
        open_ &= ~np.isin(days, np.asarray(closed_days, dtype=np.int64))
    return open_


def _day_number(day: str | date) -> int:
    """An ISO date (or a date) as days since 1970-01-01."""
    try:
        return int(np.datetime64(str(day), "D").astype(np.int64))
    except ValueError:
        raise UsageError(f"holidays: {day!r} is not a date (YYYY-MM-DD)") from None


def _slow_ar1(rng: np.random.Generator, n: int, alpha: float) -> np.ndarray:
    """A stationary AR(1) with unit variance and persistence 1 - alpha."""
    shocks = rng.normal(0.0, 1.0, n)
    spread = np.sqrt(alpha / (2.0 - alpha))  # stationary std of the smoothed shocks
    shocks[0] *= spread  # so the first value is already drawn from the stationary law
    smoothed = pd.Series(shocks).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return smoothed / spread


def _volatility_regime(rng: np.random.Generator, n: int) -> np.ndarray:
    """exp of a slow AR(1): calm and stormy spells lasting hundreds of bars (x0.7 .. x1.4)."""
    return np.exp(0.3 * _slow_ar1(rng, n, 0.01))


def _drift(rng: np.random.Generator, n: int) -> np.ndarray:
    """A slowly changing drift, in units of the bar's volatility (about ±0.05)."""
    return 0.05 * _slow_ar1(rng, n, 0.004)


def _gap_returns(
    rng: np.random.Generator, seconds: np.ndarray, width: int, sigma: np.ndarray
) -> np.ndarray:
    """A jump at the open of bars that follow a pause (weekends), else nothing."""
    pause = np.diff(seconds, prepend=seconds[0] - width) > width
    return np.where(pause, rng.normal(0.0, 1.5, len(seconds)) * sigma, 0.0)


def _tick_volume(rng: np.random.Generator, sigma: np.ndarray, width: int) -> np.ndarray:
    base = 40.0 * np.sqrt(width)  # about 2,400 ticks per H1 bar, 310 per M1 bar
    relative = sigma / sigma.mean()
    return np.maximum(1, (base * relative * rng.lognormal(0.0, 0.3, len(sigma)))).astype(np.int64)


def _spreads(rng: np.random.Generator, key: str, hours: np.ndarray, width: int) -> np.ndarray:
    typical = TYPICAL_SPREAD_POINTS.get(key, 10)
    factor = np.where(np.isin(hours, (21, 22)), 2.5, np.where(hours < 7, 1.4, 1.0))
    if width >= 86_400:
        factor = np.ones(len(hours))
    noise = rng.gamma(4.0, 0.25, len(hours))
    return np.maximum(1, np.round(typical * factor * noise)).astype(np.int64)
