"""The simulated market: symbol specifications, price feeds replayed from bars, and the clock.

Bars are bid prices (as MT5 bars are); ask = bid + spread × point. Inside a bar the price moves
on a path: open -> the extreme nearer to the open -> the other extreme -> close, linearly in
time over thirds of the bar (the close is reached one second before the bar ends). A bar is
closed once the clock reaches its end; nothing after the clock is ever visible. Times are UTC;
higher timeframes are cut on the server's clock, and a feed's trading hours
(trading_hours.py) close it outside its session.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtest.broker_clock import UTC_ZONE, BrokerZone
from backtest.data import RATES_DTYPE, TIMEFRAMES, frame_to_rates
from backtest.fills import low_first
from backtest.symbols import SymbolSpec
from live.mt5_records import TICKS_DTYPE

if TYPE_CHECKING:  # the hours cut the feed's path; they import nothing from here at run time
    from live.sim_terminal.trading_hours import TradingHours

logger = logging.getLogger(__name__)

TICK_FLAGS_BID_ASK = 2 | 4
Piece = tuple[float, float, float, float, int, bool]
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
    """One symbol's bars at the base timeframe and the prices they imply at any moment.

    Times are UTC. `zone` is the server's clock, where bars of higher timeframes are cut;
    `hours`, when given, closes the market outside the symbol's session (no ticks, a frozen
    quote, no fills) and widens spreads around the rollover.
    """

    def __init__(
        self,
        symbol: SimSymbol,
        bars: pd.DataFrame,
        width: int,
        *,
        zone: BrokerZone = UTC_ZONE,
        hours: TradingHours | None = None,
    ) -> None:
        if bars.empty:
            raise ValueError(f"{symbol.name}: no bars to replay")
        self.symbol = symbol
        self.width = width
        self.zone = zone
        self.hours = hours
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

    def inside_bar(self, moment: float) -> bool:
        """True inside a bar; False between bars (weekends in the data) and after the data."""
        i = self.index_at(moment)
        return i >= 0 and moment < self.times[i] + self.width

    def is_open(self, moment: float) -> bool:
        """Whether the symbol trades at `moment`: inside a bar and inside its session."""
        return self.inside_bar(moment) and (self.hours is None or self.hours.is_open(moment))

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

    def raw_quote(self, moment: float) -> tuple[float, float, int] | None:
        """(tick time, bid, spread points) of the bars at `moment`, sessions aside: the last
        price before it (a bar's close between bars), None before any bar."""
        i = self.index_at(moment)
        if i < 0:
            return None
        at = moment if moment < self.times[i] + self.width else self.times[i] + self.width - 1
        return float(at), self.bid_at(i, at), int(self.spread[i])

    def quote(self, moment: float) -> tuple[float, float, float] | None:
        """(tick time, bid, ask) at `moment`: the last tick before it (before the session
        closed, while it is closed), None before any bar. The tick time has milliseconds."""
        at = moment if self.hours is None else self.hours.quote_moment(moment)
        raw = self.raw_quote(at)
        if raw is None:
            return None
        when, bid, spread = raw
        if self.hours is not None:
            spread = self.hours.widen(spread, when)
        ask = round(bid + spread * self.symbol.point, self.symbol.digits)
        return when, bid, float(ask)

    # ------------------------------------------------------------ bars and ticks

    def rates_until(self, moment: float, timeframe: str, tail: int | None = None) -> np.ndarray:
        """Bars of `timeframe` with open time <= moment (the last `tail` of them if given);
        the last one may be forming (frozen at the last tick while the market is closed)."""
        k = self.index_at(moment)
        if k < 0:
            return np.empty(0, dtype=RATES_DTYPE)
        if timeframe != MONTHLY and TIMEFRAMES[timeframe] < self.width:
            raise ValueError(f"{timeframe} is finer than the replayed data")
        bins = self._bins.get(timeframe) or self._bins.setdefault(timeframe, _Bins(self, timeframe))
        seen = moment if self.hours is None else self.hours.quote_moment(moment)
        return bins.until(k, moment, tail, seen)

    def segments(self, start: float, stop: float) -> list[Piece]:
        """Pieces of the bid path in (start, stop] while the market is open:
        (t_a, bid_a, t_b, bid_b, spread, gap).

        `gap` marks a jump: from one bar's close to the next bar's open, or from the price a
        closure froze to the reopening price; a level crossed by a gap fills at the new price,
        not at the level.
        """
        if self.hours is None:
            return self.path_segments(start, stop)
        return self.hours.segments(self, start, stop)

    def path_segments(self, start: float, stop: float) -> list[Piece]:
        """Pieces of the bars' bid path in (start, stop], sessions aside (see segments)."""
        first, last = self.index_at(start), self.index_at(stop)
        pieces: list[Piece] = []
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

    def partial_bar(self, i: int, moment: float, seen: float | None = None) -> np.void:
        """Bar i as it stands at `moment` (complete once the clock has passed its end); while
        the market is closed inside it, as it stood at the last tick (`seen`)."""
        bar = self.rates[i].copy()
        end = self.times[i] + self.width
        if moment >= end:
            return bar
        if seen is not None:
            moment = max(min(seen, moment), float(self.times[i]))
        times, prices = self.path(i)
        seen_prices = prices[times <= moment]
        current = self.bid_at(i, moment)
        bar["high"] = max(seen_prices.max(), current)
        bar["low"] = min(seen_prices.min(), current)
        bar["close"] = current
        fraction = max(0.0, (moment - self.times[i]) / self.width)
        bar["tick_volume"] = max(1, int(bar["tick_volume"] * fraction))
        return bar

    def ticks_between(self, start: float, stop: float) -> np.ndarray:
        """The path points with start <= time <= stop while the market is open, as MT5 tick
        records (UTC; time_msc keeps the milliseconds, time the whole seconds)."""
        first = max(self.index_at(start), 0)
        last = self.index_at(stop)
        if last < first:
            return np.empty(0, dtype=TICKS_DTYPE)
        moments, bids = [], []
        for i in range(first, last + 1):
            times, prices = self.path(i)
            inside = (times >= start) & (times <= stop)
            moments.append(times[inside])
            bids.append(np.round(prices[inside], self.symbol.digits))
        t, bid = np.concatenate(moments), np.concatenate(bids)
        spreads = self.spread[np.searchsorted(self.times, np.floor(t), side="right") - 1]
        if self.hours is not None:
            open_ = self.hours.open_mask(t)
            t, bid, spreads = t[open_], bid[open_], self.hours.spreads(spreads[open_], t[open_])
        ticks = np.zeros(len(t), dtype=TICKS_DTYPE)
        ticks["time_msc"] = np.rint(t * 1000).astype(np.int64)
        ticks["time"] = ticks["time_msc"] // 1000
        ticks["bid"] = bid
        ticks["ask"] = np.round(bid + spreads * self.symbol.point, self.symbol.digits)
        ticks["flags"] = TICK_FLAGS_BID_ASK
        return ticks


class _Bins:
    """Bars of one timeframe built from a feed's base bars; closed bins computed once."""

    def __init__(self, feed: SymbolFeed, timeframe: str) -> None:
        self.feed = feed
        self.bin_of, opens = _bin_keys(feed.times, timeframe, feed.zone)
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

    def until(
        self, k: int, moment: float, tail: int | None = None, seen: float | None = None
    ) -> np.ndarray:
        """Bins up to the one holding base bar k, that one rebuilt from what is visible
        (`seen`: the last tick's moment, for a market closed inside bar k)."""
        b = int(np.searchsorted(self.starts, k, side="right")) - 1
        low = 0 if tail is None else max(0, b + 1 - tail)
        out = self.rates[low : b + 1].copy()
        if not len(out):
            return out
        first = int(self.starts[b])
        # base bars before k are closed (the clock is past their ends); only k may be forming,
        # so a month of H1 bars costs one partial bar, not hundreds
        closed = self.feed.rates[first:k]
        current = self.feed.partial_bar(k, moment, seen)
        last = out[-1]
        last["open"] = closed["open"][0] if len(closed) else current["open"]
        last["high"] = max(float(closed["high"].max(initial=-np.inf)), float(current["high"]))
        last["low"] = min(float(closed["low"].min(initial=np.inf)), float(current["low"]))
        last["close"] = current["close"]
        last["tick_volume"] = int(closed["tick_volume"].sum()) + int(current["tick_volume"])
        last["spread"] = min(int(closed["spread"].min(initial=2**31 - 1)), int(current["spread"]))
        out[-1] = last
        return out


def _bin_keys(
    times: np.ndarray, timeframe: str, zone: BrokerZone = UTC_ZONE
) -> tuple[np.ndarray, np.ndarray]:
    """For each base bar: the key of the `timeframe` bar holding it, and that bar's open time
    (UTC). Bars are cut on the server's clock, as a real server cuts them: fixed widths from
    its midnight (weeks from its Sunday 00:00), MN1 at its month starts."""
    if timeframe != MONTHLY:
        return zone.bin_opens(times, TIMEFRAMES[timeframe])
    wall = times + zone.offsets(times)
    months = wall.astype("datetime64[s]").astype("datetime64[M]")
    opens_wall = months.astype("datetime64[s]").astype(np.int64)
    return months.astype(np.int64), np.asarray(zone.to_utc(opens_wall), dtype=np.int64)
