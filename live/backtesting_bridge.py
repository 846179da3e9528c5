"""The bridge from backtest strategies to MT5 orders: load, decide on the last closed bar, size,
build the request and pre-check it.

The live trader runs the very strategy class the backtest runs, over the same kind of history:
`BARS_LOOKBACK` closed bars (5,000 unless set), kept and extended bar by bar, so the target on
the last bar is the position the backtest holds on it whenever the strategy's state depends on
no older bar (a position held since a cross 300 bars back included). Entries happen where the
backtest's do: on the bar of an entry event or a change of position (see
backtest/strategy.py). Sizing is backtest.sizing.position_size, the function the engine uses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.broker_clock import UTC_ZONE, BrokerZone
from backtest.data import epoch_seconds, rates_to_frame, timeframe_seconds
from backtest.informative import declared_sources, timeframe_of, with_close_times
from backtest.sizing import Sizing, position_size
from backtest.strategy import (
    Signals,
    Strategy,
    StrategyError,
    compute_signals,
    create_strategy,
    parse_param_overrides,
)
from backtest.strategy import get_strategy_from_file as load_strategy_class
from backtest.symbols import SymbolSpec
from live.broker_types import Broker
from live.market_hours import MarketHours
from live.order_requests import (
    PrecheckFailed,
    build_close_request,
    build_order_request,
    build_stops_request,
    entry_volume,
    estimated_margin,
    simulate_precheck,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BacktestingBridge",
    "Decision",
    "Management",
    "PrecheckFailed",
    "bars_needed",
    "build_close_request",
    "build_order_request",
    "build_stops_request",
    "decide",
    "estimated_margin",
    "fetch_bars",
    "generate_signals",
    "get_strategy_from_file",
    "position_size",
    "simulate_precheck",
]


@dataclass(frozen=True)
class Decision:
    """The strategy's decision on one symbol's last closed bar.

    `position` is the target (+1/0/-1); `act` says whether the trader must do something now
    (the decision changed or an entry event fired). sl/tp are absolute prices for an entry
    or NaN; sl_distance/tp_distance are price distances from the fill, or NaN. `entry_bar`
    is the bar that entered the current target (an entry event or the change of position;
    None when flat) and `entry_close` that bar's close.
    """

    symbol: str
    bar_time: datetime
    position: int
    act: bool
    entry: bool
    previous_position: int
    close: float
    sl: float
    tp: float
    sl_distance: float
    tp_distance: float
    bars: int
    entry_bar: datetime | None = None
    entry_close: float = math.nan
    manage: Management = field(default_factory=lambda: NO_MANAGEMENT)
    # open times (epoch seconds) of the bars decided on: time exits count bars, not hours
    bar_times: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False, repr=False
    )

    def bars_held_since(self, moment: float) -> int:
        """Closed bars from the one containing `moment` to the last one, both counted."""
        times = self.bar_times
        first = int(np.searchsorted(times, moment, side="right")) - 1
        return len(times) - max(first, 0) if len(times) else 0

    @property
    def side(self) -> str | None:
        return {1: "buy", -1: "sell"}.get(self.position)


@dataclass(frozen=True)
class Management:
    """The position-management columns as they stand after the last bar (see
    backtest/signals.py): what the trader keeps the current position to.

    `stops_asked` are the (sl, tp, sl_distance, tp_distance) the last bar asks for when the
    strategy's stops move (NaN: keep); `stops_held` the last of each asked since the entry
    (what is in force, for a trader that was away). `size` is the fraction of the full
    volume to hold now, `entry_size` the one the entry asked for. The entry's order type
    (0 market, 1 limit, 2 stop), price and expiry, and the time exit, are those of the entry
    bar.
    """

    moving_stops: bool = False
    stops_asked: tuple[float, float, float, float] = (math.nan,) * 4
    stops_held: tuple[float, float, float, float] = (math.nan,) * 4
    size: float = 1.0
    entry_size: float = 1.0
    # the columns (sl, tp, sl_distance, tp_distance, size) from the entry bar on, and the
    # open times of those bars: what is in force for a position filled at a given moment
    since_entry: tuple[np.ndarray, ...] = field(default=(), compare=False, repr=False)
    since_times: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False, repr=False
    )
    entry_type: int = 0
    entry_price: float = math.nan
    expiry_bars: float = math.nan
    max_bars: float = math.nan

    @property
    def pending(self) -> bool:
        return self.entry_type != 0

    def in_force(self, filled_at: float) -> tuple[tuple[float, float, float, float], float]:
        """(stops asked, size) in force for a position filled at `filled_at`: the last of
        each asked from the bar of the fill on (a limit or stop entry's position ignores
        what was asked while it waited, as the backtest does); NaN / the entry's size when
        nothing was."""
        if not self.since_entry:
            return self.stops_held, self.size
        fill_bar = int(np.searchsorted(self.since_times, filled_at, side="right")) - 1
        start = max(fill_bar, 1)  # the entry bar's own values are the entry's
        stops = tuple(_last_finite(c[start:]) for c in self.since_entry[:4])
        size = _last_finite(self.since_entry[4][start:])
        if not self.moving_stops:
            stops = (math.nan,) * 4
        size = min(max(size, 0.0), 1.0) if math.isfinite(size) else self.entry_size
        return stops, size  # type: ignore[return-value]


NO_MANAGEMENT = Management()


def get_strategy_from_file(
    path: str | Path, params: Mapping[str, object] | list[str] | None = None
) -> Strategy:
    """Load a strategy file and instantiate it with `params` (a dict or ["name=value", ...]).

    Raises StrategyError naming the file for anything the file's own code does wrong.
    """
    cls = load_strategy_class(path)
    if isinstance(params, list):
        params = parse_param_overrides(cls, params)
    return create_strategy(cls, dict(params or {}))


DEFAULT_HISTORY_BARS = 5000


def bars_needed(strategy: Strategy, lookback: int = 0) -> int:
    """Closed bars a decision is computed over: `lookback` if set, else 5,000 (at least
    twice the warm-up).

    A long history, because decisions that hold a state (a position kept since an older
    cross) equal the backtest's only when the bars cover that state's origin; see
    docs/live.md.
    """
    if lookback:
        return max(lookback, strategy.warmup + 1)
    return max(DEFAULT_HISTORY_BARS, 2 * strategy.warmup, strategy.warmup + 2)


def generate_signals(
    broker: Broker, strategy: Strategy, symbol: str, timeframe: str, lookback: int = 0
) -> Decision:
    """Fetch only the bars the strategy needs and return its decision on the last closed bar.

    Raises StrategyError when there are too few bars, a bar is invalid or the strategy fails.
    """
    bars = fetch_bars(broker, strategy, symbol, timeframe, lookback)
    return decide(
        strategy, symbol, bars, informative=fetch_informative(broker, strategy, symbol, bars)
    )


INFORMATIVE_MIN_BARS = 300  # of each informative timeframe, whatever the bars span


def fetch_informative(
    broker: Broker,
    strategy: Strategy,
    symbol: str,
    bars: pd.DataFrame,
    zone: BrokerZone = UTC_ZONE,
    timeframe: str | None = None,
) -> dict[str, pd.DataFrame] | None:
    """The strategy's informative series from the terminal (None when it declares none):
    its own symbol's higher timeframes, other symbols' bars (at `timeframe`, the trader's,
    unless the entry names one), as far back as `bars` reach and at least
    INFORMATIVE_MIN_BARS, the forming bar included (it has not closed, so no decision sees
    it), with their close times on the broker's clock `zone`."""
    sources = declared_sources(strategy)
    if not sources:
        return None
    seconds = epoch_seconds(bars["time"])
    span = int(seconds[-1] - seconds[0]) if len(seconds) else 0
    frames = {}
    for source in sources:
        name = source.timeframe or timeframe or timeframe_of(int(np.diff(seconds[-2:])[0]))
        count = max(span // timeframe_seconds(name) + 3, INFORMATIVE_MIN_BARS)
        frame = broker.rates(source.symbol or symbol, name, count, start_pos=0)
        frames[source.key] = with_close_times(frame, name, zone)
    return frames


def fetch_bars(
    broker: Broker, strategy: Strategy, symbol: str, timeframe: str, lookback: int = 0
) -> pd.DataFrame:
    """The last closed bars the strategy needs, checked; StrategyError if too few or bad."""
    count = bars_needed(strategy, lookback)
    bars = broker.rates(symbol, timeframe, count)
    if len(bars) < strategy.warmup + 1:
        raise StrategyError(
            f"{symbol}: only {len(bars)} closed {timeframe} bars available, "
            f"{strategy.label()} needs {strategy.warmup + 1}"
        )
    _check_bars(symbol, bars)
    return bars


def decide(
    strategy: Strategy,
    symbol: str,
    bars: pd.DataFrame,
    market: MarketHours | None = None,
    informative: dict[str, pd.DataFrame] | None = None,
) -> Decision:
    """The decision on the last bar of `bars` (all closed). Only that bar's columns are
    checked: a bad value skips its bar (StrategyError), not every later one. With `market`
    the strategy gets the bars' broker_time and its signals pass the trading windows, as
    in the backtest; `informative`: its informative timeframes' bars (`fetch_informative`)."""
    if market is not None:
        bars = market.prepare(bars)
    signals = compute_signals(strategy, bars, check_from=len(bars) - 1, informative=informative)
    if market is not None:
        signals = market.restrict(symbol, signals, bars)
    times = bars["time"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    actions = signals.actions()
    last = len(bars) - 1
    entered = _entry_index(signals.position, actions)
    return Decision(
        symbol=symbol,
        bar_time=bars["time"].iloc[last].to_pydatetime(),
        position=int(signals.position[last]),
        act=bool(actions[last]),
        entry=bool(signals.entry[last]),
        previous_position=int(signals.position[last - 1]) if last else 0,
        close=float(bars["close"].iloc[last]),
        sl=float(signals.sl[last]),
        tp=float(signals.tp[last]),
        sl_distance=float(signals.sl_distance[last]),
        tp_distance=float(signals.tp_distance[last]),
        bars=len(bars),
        entry_bar=None if entered is None else bars["time"].iloc[entered].to_pydatetime(),
        entry_close=math.nan if entered is None else float(bars["close"].iloc[entered]),
        manage=_management(strategy, signals, entered, times),
        bar_times=times,
    )


def _management(
    strategy: Strategy, signals: Signals, entered: int | None, times: np.ndarray
) -> Management:
    """The management columns in force after the last bar, for the position entered on bar
    `entered` (NaN and defaults when flat or unused)."""
    if entered is None:
        return NO_MANAGEMENT
    moving = bool(getattr(strategy, "moving_stops", False))
    columns = (signals.sl, signals.tp, signals.sl_distance, signals.tp_distance)
    asked = tuple(float(c[-1]) for c in columns) if moving else (math.nan,) * 4
    held = tuple(_last_finite(c[entered + 1 :]) for c in columns) if moving else asked
    entry_size = float(signals.size[entered])
    entry_size = min(max(entry_size, 0.0), 1.0) if math.isfinite(entry_size) else 1.0
    later = _last_finite(signals.size[entered + 1 :])
    return Management(
        moving_stops=moving,
        stops_asked=asked,  # type: ignore[arg-type]
        stops_held=held,  # type: ignore[arg-type]
        size=min(max(later, 0.0), 1.0) if math.isfinite(later) else entry_size,
        entry_size=entry_size,
        entry_type=int(signals.entry_type[entered]),
        entry_price=float(signals.entry_price[entered]),
        expiry_bars=float(signals.expiry_bars[entered]),
        max_bars=float(signals.max_bars[entered]),
        since_entry=tuple(c[entered:] for c in (*columns, signals.size)),
        since_times=times[entered:],
    )


def _last_finite(values: np.ndarray) -> float:
    finite = np.flatnonzero(np.isfinite(values))
    return float(values[finite[-1]]) if len(finite) else math.nan


def _entry_index(position: np.ndarray, actions: np.ndarray) -> int | None:
    """The last bar that entered the last bar's position: an action (entry event or change)
    into it, or the first bar when it is held from the start; None when flat."""
    target = position[-1]
    if target == 0:
        return None
    held_since = np.flatnonzero(actions & (position == target))
    return int(held_since[-1]) if len(held_since) else 0


class BacktestingBridge:
    """One strategy bound to the broker it reads bars from: what the trader asks each bar.

    A thin object over the functions of this module (which stay usable on their own): the
    closed bars a decision needs, the decision, and the entry size with the trader's sizing.
    """

    def __init__(
        self,
        strategy: Strategy,
        broker: Broker,
        *,
        timeframe: str,
        lookback: int = 0,
        sizing: Sizing | None = None,
        market: MarketHours | None = None,
    ) -> None:
        self.strategy = strategy
        self.market = market
        self.broker = broker
        self.timeframe = timeframe
        self.lookback = lookback
        self.sizing = sizing or Sizing()
        self._history: dict[str, pd.DataFrame] = {}
        self._tails: dict[str, list[tuple[int, float, float, float, float]]] = {}

    def latest_bars(self, symbol: str) -> pd.DataFrame:
        """The closed bars a decision is computed over (StrategyError if too few or bad):
        fetched whole once, then extended by the bars closed since, from a few fetched."""
        history = self._history.get(symbol)
        if history is not None:
            history = self._extended(symbol, history)
        if history is None:
            history = fetch_bars(self.broker, self.strategy, symbol, self.timeframe, self.lookback)
            self._tails[symbol] = _tail_of(history)
        limit = bars_needed(self.strategy, self.lookback)
        if len(history) > 2 * limit:  # keep memory flat: forget the oldest half
            history = history.iloc[-limit:].reset_index(drop=True)
        self._history[symbol] = history
        return history

    def _extended(self, symbol: str, history: pd.DataFrame) -> pd.DataFrame | None:
        """`history` with the bars closed since its end; None (fetch it all again) when the
        recent bars do not join it (a gap, a rewritten bar). Compared as the terminal's
        arrays: most loops see no new bar, and must cost next to nothing."""
        recent = self.broker.rates_array(symbol, self.timeframe, EXTEND_FETCH_BARS)
        if len(recent) == 0:
            return history
        tail = self._tails[symbol]
        times = recent["time"].astype(np.int64)
        known = recent[times <= tail[-1][0]]
        if len(known) == 0 or not _joins(known, tail):
            return None
        new = recent[times > tail[-1][0]]
        if len(new) == 0:
            return history
        frame = rates_to_frame(new)
        _check_bars(symbol, frame)
        self._tails[symbol] = _tail_of(pd.concat([history.iloc[-EXTEND_FETCH_BARS:], frame]))
        return pd.concat([history, frame], ignore_index=True)

    def decide(self, symbol: str, bars: pd.DataFrame) -> Decision:
        zone = self.market.zone if self.market is not None else UTC_ZONE
        informative = fetch_informative(
            self.broker, self.strategy, symbol, bars, zone, self.timeframe
        )
        return decide(self.strategy, symbol, bars, self.market, informative)

    def generate_signals(self, symbol: str) -> Decision:
        """The decision on the last closed bar of `symbol`."""
        return self.decide(symbol, self.latest_bars(symbol))

    def position_size(
        self,
        *,
        spec: SymbolSpec,
        equity: float,
        entry_price: float,
        sl: float | None,
        account_currency: str,
    ) -> float:
        """Lots for an entry, by the backtest's position_size (PrecheckFailed if it can't)."""
        return entry_volume(
            sizing=self.sizing,
            spec=spec,
            equity=equity,
            entry_price=entry_price,
            sl=sl,
            account_currency=account_currency,
        )


EXTEND_FETCH_BARS = 8  # the last few closed bars, overlapping what is kept


def _tail_of(bars: pd.DataFrame) -> list[tuple[int, float, float, float, float]]:
    """The last bars kept, as (epoch seconds, open, high, low, close)."""
    last = bars.iloc[-EXTEND_FETCH_BARS:]
    seconds = last["time"].astype("int64") // 1_000_000_000
    return list(
        zip(
            seconds.tolist(),
            *(last[c].tolist() for c in ("open", "high", "low", "close")),
            strict=True,
        )
    )


def _joins(known: np.ndarray, tail: list[tuple[int, float, float, float, float]]) -> bool:
    """Whether the fetched bars that should already be kept are the ones kept."""
    kept = {bar[0]: bar for bar in tail}
    for row in known:
        bar = kept.get(int(row["time"]))
        if bar is None and int(row["time"]) >= tail[0][0]:
            return False  # a bar inside what is kept, unknown to it: the history changed
        if bar is not None and bar[1:] != (
            float(row["open"]),
            float(row["high"]),
            float(row["low"]),
            float(row["close"]),
        ):
            return False
    return True


def _check_bars(symbol: str, bars: pd.DataFrame) -> None:
    prices = bars[["open", "high", "low", "close"]]
    bad = prices.isna().any(axis=1) | (prices <= 0).any(axis=1)
    bad |= bars["high"] < prices[["open", "close"]].max(axis=1)
    bad |= bars["low"] > prices[["open", "close"]].min(axis=1)
    if bad.any():
        row = bars.loc[bad].iloc[-1]
        raise StrategyError(
            f"{symbol}: bad bar at {row['time']}: open={row['open']} "
            f"high={row['high']} low={row['low']} close={row['close']}"
        )
    if not bars["time"].is_monotonic_increasing:
        raise StrategyError(f"{symbol}: bars out of time order")
