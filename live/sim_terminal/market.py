"""The simulated market: symbol specifications, price feeds replayed from bars, and the clock.

Bars are bid prices (as MT5 bars are); ask = bid + spread × point. Inside a bar the price moves
on a path: open -> the extreme nearer to the open -> the other extreme -> close, linearly in
time over thirds of the bar (the close is reached one second before the bar ends). A bar is
closed once the clock reaches its end; nothing after the clock is ever visible.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.data import RATES_DTYPE, TIMEFRAMES, frame_to_rates
from backtest.fills import low_first
from backtest.symbols import SymbolSpec
from live.mt5_records import TICKS_DTYPE

logger = logging.getLogger(__name__)

TICK_FLAGS_BID_ASK = 2 | 4
# 1970-01-01 was a Thursday: weekly bins start on Sundays 00:00 UTC, as MT5's W1 bars do
_SUNDAY = 3 * 86_400
MONTHLY = "MN1"  # calendar months: no fixed width, so not in backtest.data.TIMEFRAMES
TIMEFRAME_NAMES = (*TIMEFRAMES, MONTHLY)


def finer_than(timeframe: str, base: str) -> bool:
    """Whether bars of `timeframe` are shorter than the `base` bars they would come from."""
    return timeframe != MONTHLY and TIMEFRAMES[timeframe] < TIMEFRAMES[base]


@dataclass(frozen=True)
class SimSymbol:
    """A symbol's trading specification, as symbol_info() reports it.

    filling_flags is the SYMBOL_FILLING_* mask (FOK=1, IOC=2); exemode a
    SYMBOL_TRADE_EXECUTION_* value; trade_mode a SYMBOL_TRADE_MODE_* value; expiration_mode
    the SYMBOL_EXPIRATION_* mask of the ORDER_TIME_* pending orders may take (GTC=1, DAY=2,
    SPECIFIED=4, SPECIFIED_DAY=8; 15 allows all).
    """

    name: str
    description: str
    digits: int
    contract_size: float
    currency_base: str
    currency_profit: str
    volume_min: float = 0.01
    volume_max: float = 100.0
    volume_step: float = 0.01
    stops_level: int = 0
    freeze_level: int = 0
    filling_flags: int = 3
    trade_mode: int = 4
    exemode: int = 2
    expiration_mode: int = 15
    visible: bool = True
    calc_mode: int = 0
    start_price: float = 1.0

    @property
    def point(self) -> float:
        return 10.0**-self.digits

    @property
    def currency_margin(self) -> str:
        return self.currency_base

    def as_symbol_spec(self) -> SymbolSpec:
        """The backtest's SymbolSpec for the same facts (for the bar generator)."""
        return SymbolSpec(
            self.name,
            self.digits,
            self.point,
            self.contract_size,
            self.volume_min,
            self.volume_max,
            self.volume_step,
            self.currency_base,
            self.currency_profit,
            self.currency_margin,
            self.stops_level,
        )


# A small broker catalog: each entry exercises something real brokers do.
CATALOG: dict[str, SimSymbol] = {
    "EURUSD": SimSymbol(
        "EURUSD",
        "Euro vs US Dollar",
        5,
        100_000,
        "EUR",
        "USD",
        stops_level=10,
        freeze_level=5,
        filling_flags=3,
        exemode=2,
        start_price=1.10,
    ),
    # IOC only: sending FOK fails with 10030, as at IC Markets or Pepperstone
    "GBPUSD": SimSymbol(
        "GBPUSD",
        "Pound Sterling vs US Dollar",
        5,
        100_000,
        "GBP",
        "USD",
        stops_level=10,
        filling_flags=2,
        exemode=2,
        start_price=1.27,
    ),
    # instant execution: the price and deviation of a request matter (requotes)
    "USDJPY": SimSymbol(
        "USDJPY",
        "US Dollar vs Japanese Yen",
        3,
        100_000,
        "USD",
        "JPY",
        stops_level=10,
        filling_flags=1,
        exemode=1,
        start_price=145.0,
    ),
    "XAUUSD": SimSymbol(
        "XAUUSD",
        "Gold vs US Dollar",
        2,
        100,
        "XAU",
        "USD",
        volume_max=50,
        stops_level=50,
        filling_flags=3,
        exemode=2,
        calc_mode=2,
        start_price=1950.0,
    ),
    # not in Market Watch until symbol_select()
    "USDCHF": SimSymbol(
        "USDCHF",
        "US Dollar vs Swiss Franc",
        5,
        100_000,
        "USD",
        "CHF",
        stops_level=10,
        visible=False,
        start_price=0.90,
    ),
    # listed but not tradable on this account (10017)
    "USDTRY": SimSymbol(
        "USDTRY",
        "US Dollar vs Turkish Lira",
        5,
        100_000,
        "USD",
        "TRY",
        trade_mode=0,
        start_price=30.0,
    ),
}


class SimClock:
    """Simulated time in epoch seconds: stepped by hand (speed None) or running `speed` times
    faster than the (injectable) wall clock."""

    def __init__(
        self, start: float, speed: float | None = None, wall: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self.speed = speed
        self._wall = wall
        self._base = float(start)
        self._wall_base = wall()

    def now(self) -> float:
        with self._lock:
            if self.speed is None:
                return self._base
            return self._base + self.speed * (self._wall() - self._wall_base)

    def set(self, moment: float) -> None:
        with self._lock:
            self._base = float(moment)
            self._wall_base = self._wall()

    def advance(self, seconds: float) -> float:
        self.set(self.now() + seconds)
        return self.now()


class SymbolFeed:
    """One symbol's bars at the base timeframe and the prices they imply at any moment."""

    def __init__(self, symbol: SimSymbol, bars: pd.DataFrame, width: int) -> None:
        if bars.empty:
            raise ValueError(f"{symbol.name}: no bars to replay")
        self.symbol = symbol
        self.width = width
        rates = frame_to_rates(bars)
        self.rates = rates
        self.times = rates["time"].astype(np.int64)
        self.open, self.high = rates["open"], rates["high"]
        self.low, self.close = rates["low"], rates["close"]
        self.spread = rates["spread"].astype(np.int64)
        self._bins: dict[str, _Bins] = {}

    # ------------------------------------------------------------ where the clock is

    def index_at(self, moment: float) -> int:
        """The last bar whose open time is <= moment (-1 before the first bar)."""
        return int(np.searchsorted(self.times, math.floor(moment), side="right")) - 1

    def is_open(self, moment: float) -> bool:
        """True inside a bar; False in session gaps (weekends) and after the data."""
        i = self.index_at(moment)
        return i >= 0 and moment < self.times[i] + self.width

    @property
    def end(self) -> int:
        return int(self.times[-1]) + self.width

    # ------------------------------------------------------------ the intrabar path

    def path(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Times and bid prices of bar i's path: open, first extreme, second extreme, close."""
        t0, w = int(self.times[i]), self.width
        o, h, lo, c = self.open[i], self.high[i], self.low[i], self.close[i]
        first, second = (lo, h) if low_first(o, h, lo) else (h, lo)
        times = np.array([t0, t0 + w / 3.0, t0 + 2.0 * w / 3.0, t0 + w - 1.0])
        return times, np.array([o, first, second, c], dtype=np.float64)

    def bid_at(self, i: int, moment: float) -> float:
        """Bid on bar i's path at `moment` (clamped to the bar)."""
        times, prices = self.path(i)
        return round(float(np.interp(moment, times, prices)), self.symbol.digits)

    def quote(self, moment: float) -> tuple[int, float, float] | None:
        """(tick time, bid, ask) at `moment`: the last price before it, None before any bar."""
        i = self.index_at(moment)
        if i < 0:
            return None
        inside = moment < self.times[i] + self.width
        at = moment if inside else self.times[i] + self.width - 1
        bid = self.bid_at(i, at)
        ask = round(bid + int(self.spread[i]) * self.symbol.point, self.symbol.digits)
        return int(at), bid, float(ask)

    # ------------------------------------------------------------ bars and ticks

    def rates_until(self, moment: float, timeframe: str, tail: int | None = None) -> np.ndarray:
        """Bars of `timeframe` with open time <= moment (the last `tail` of them if given);
        the last one may be forming."""
        k = self.index_at(moment)
        if k < 0:
            return np.empty(0, dtype=RATES_DTYPE)
        if timeframe != MONTHLY and TIMEFRAMES[timeframe] < self.width:
            raise ValueError(f"{timeframe} is finer than the replayed data")
        bins = self._bins.get(timeframe) or self._bins.setdefault(timeframe, _Bins(self, timeframe))
        return bins.until(k, moment, tail)

    def segments(
        self, start: float, stop: float
    ) -> list[tuple[float, float, float, float, int, bool]]:
        """Pieces of the bid path in (start, stop]: (t_a, bid_a, t_b, bid_b, spread, gap).

        `gap` marks the jump from one bar's close to the next bar's open (a session gap);
        a level crossed by a gap fills at the open, not at the level.
        """
        first, last = self.index_at(start), self.index_at(stop)
        pieces: list[tuple[float, float, float, float, int, bool]] = []
        for i in range(max(first, 0), last + 1):
            times, prices = self.path(i)
            if i > 0 and start < times[0] <= stop:
                pieces.append(
                    (times[0], self.close[i - 1], times[0], prices[0], int(self.spread[i]), True)
                )
            for j in range(3):
                t_a, t_b = times[j], times[j + 1]
                if t_b <= start or t_a > stop:
                    continue
                a = self.bid_at(i, max(t_a, start))
                b = self.bid_at(i, min(t_b, stop))
                pieces.append((max(t_a, start), a, min(t_b, stop), b, int(self.spread[i]), False))
        return pieces

    def partial_bar(self, i: int, moment: float) -> np.void:
        """Bar i as it stands at `moment` (complete once the clock has passed its end)."""
        bar = self.rates[i].copy()
        end = self.times[i] + self.width
        if moment >= end:
            return bar
        times, prices = self.path(i)
        seen = prices[times <= moment]
        current = self.bid_at(i, moment)
        bar["high"] = max(seen.max(), current)
        bar["low"] = min(seen.min(), current)
        bar["close"] = current
        fraction = max(0.0, (moment - self.times[i]) / self.width)
        bar["tick_volume"] = max(1, int(bar["tick_volume"] * fraction))
        return bar

    def ticks_between(self, start: float, stop: float) -> np.ndarray:
        """The path points with start <= time <= stop, as MT5 tick records."""
        first = max(self.index_at(start), 0)
        last = self.index_at(stop)
        if last < first:
            return np.empty(0, dtype=TICKS_DTYPE)
        rows = []
        for i in range(first, last + 1):
            times, prices = self.path(i)
            for t, bid in zip(times, prices, strict=True):
                if start <= t <= stop:
                    rows.append((int(t), round(bid, self.symbol.digits)))
        ticks = np.zeros(len(rows), dtype=TICKS_DTYPE)
        if rows:
            t, bid = (np.array(col) for col in zip(*rows, strict=True))
            spreads = self.spread[np.searchsorted(self.times, t, side="right") - 1]
            ticks["time"], ticks["bid"] = t, bid
            ticks["ask"] = np.round(bid + spreads * self.symbol.point, self.symbol.digits)
            ticks["time_msc"] = t * 1000
            ticks["flags"] = TICK_FLAGS_BID_ASK
        return ticks


class _Bins:
    """Bars of one timeframe built from a feed's base bars; closed bins computed once."""

    def __init__(self, feed: SymbolFeed, timeframe: str) -> None:
        self.feed = feed
        self.bin_of, opens = _bin_keys(feed.times, timeframe)
        starts = np.flatnonzero(np.concatenate(([True], self.bin_of[1:] != self.bin_of[:-1])))
        self.starts = starts
        ends = np.append(starts[1:], len(feed.times)) - 1
        rates = np.zeros(len(starts), dtype=RATES_DTYPE)
        rates["time"] = opens[starts]
        rates["open"] = feed.open[starts]
        rates["high"] = np.maximum.reduceat(feed.high, starts)
        rates["low"] = np.minimum.reduceat(feed.low, starts)
        rates["close"] = feed.close[ends]
        rates["tick_volume"] = np.add.reduceat(feed.rates["tick_volume"], starts)
        rates["spread"] = np.minimum.reduceat(feed.rates["spread"], starts)
        rates["real_volume"] = np.add.reduceat(feed.rates["real_volume"], starts)
        self.rates = rates

    def until(self, k: int, moment: float, tail: int | None = None) -> np.ndarray:
        """Bins up to the one holding base bar k, that one rebuilt from what is visible."""
        b = int(np.searchsorted(self.starts, k, side="right")) - 1
        low = 0 if tail is None else max(0, b + 1 - tail)
        out = self.rates[low : b + 1].copy()
        if not len(out):
            return out
        first = int(self.starts[b])
        # base bars before k are closed (the clock is past their ends); only k may be forming,
        # so a month of H1 bars costs one partial bar, not hundreds
        closed = self.feed.rates[first:k]
        current = self.feed.partial_bar(k, moment)
        last = out[-1]
        last["open"] = closed["open"][0] if len(closed) else current["open"]
        last["high"] = max(float(closed["high"].max(initial=-np.inf)), float(current["high"]))
        last["low"] = min(float(closed["low"].min(initial=np.inf)), float(current["low"]))
        last["close"] = current["close"]
        last["tick_volume"] = int(closed["tick_volume"].sum()) + int(current["tick_volume"])
        last["spread"] = min(int(closed["spread"].min(initial=2**31 - 1)), int(current["spread"]))
        out[-1] = last
        return out


def _bin_keys(times: np.ndarray, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """For each base bar: the key of the `timeframe` bar holding it, and that bar's open time.

    Fixed widths are aligned to UTC (weeks from Sunday 00:00); MN1 bars are calendar months.
    """
    if timeframe == MONTHLY:
        months = times.astype("datetime64[s]").astype("datetime64[M]")
        return months.astype(np.int64), months.astype("datetime64[s]").astype(np.int64)
    width = TIMEFRAMES[timeframe]
    offset = _SUNDAY if timeframe == "W1" else 0
    keys = (times - offset) // width
    return keys, keys * width + offset
