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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.data import rates_to_frame
from backtest.sizing import Sizing, SizingError, position_size
from backtest.strategy import (
    Strategy,
    StrategyError,
    compute_signals,
    create_strategy,
    parse_param_overrides,
)
from backtest.strategy import get_strategy_from_file as load_strategy_class
from backtest.symbols import SymbolSpec
from live.broker_types import (
    ORDER_TIME_GTC,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    POSITION_TYPE_BUY,
    SYMBOL_TRADE_MODE_CLOSEONLY,
    SYMBOL_TRADE_MODE_DISABLED,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_SLTP,
    Broker,
)
from live.errors import OrderRejected

logger = logging.getLogger(__name__)

__all__ = [
    "BacktestingBridge",
    "Decision",
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


class PrecheckFailed(OrderRejected):
    """The request would be refused by the server; caught before order_check."""


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

    @property
    def side(self) -> str | None:
        return {1: "buy", -1: "sell"}.get(self.position)


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
    return decide(strategy, symbol, fetch_bars(broker, strategy, symbol, timeframe, lookback))


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


def decide(strategy: Strategy, symbol: str, bars: pd.DataFrame) -> Decision:
    """The decision on the last bar of `bars` (all closed)."""
    signals = compute_signals(strategy, bars)
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
    )


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
    ) -> None:
        self.strategy = strategy
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
        return decide(self.strategy, symbol, bars)

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


def stop_levels(
    decision: Decision, spec: SymbolSpec, entry_price: float
) -> tuple[float | None, float | None]:
    """Absolute SL/TP for an entry at entry_price, as the backtest engine computes them."""
    sign = 1 if decision.position > 0 else -1

    def level(absolute: float, distance: float, direction: int) -> float | None:
        if math.isfinite(absolute):
            return spec.round_price(absolute)
        if math.isfinite(distance):
            return spec.round_price(entry_price + direction * distance)
        return None

    return (
        level(decision.sl, decision.sl_distance, -sign),
        level(decision.tp, decision.tp_distance, sign),
    )


def entry_volume(
    *,
    sizing: Sizing,
    spec: SymbolSpec,
    equity: float,
    entry_price: float,
    sl: float | None,
    account_currency: str,
) -> float:
    """Lots for an entry: the backtest's position_size with the live stop distance."""
    distance = abs(entry_price - sl) if sl is not None else None
    try:
        return position_size(
            sizing=sizing,
            spec=spec,
            equity=equity,
            sl_distance=distance,
            price=entry_price,
            account_currency=account_currency,
        )
    except SizingError as exc:
        raise PrecheckFailed(str(exc)) from None


def build_order_request(
    *,
    symbol: str,
    side: str,
    volume: float,
    price: float,
    spec: SymbolSpec,
    magic: int,
    comment: str,
    deviation: int,
    filling: int,
    sl: float | None = None,
    tp: float | None = None,
    position: int | None = None,
) -> dict[str, Any]:
    """An MT5 market-order request with the types the API demands (floats, ints, short str).

    Prices are rounded to the symbol's digits and the volume snapped to its step.
    `position` (a ticket) makes it a close of that position.
    """
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    if len(comment) > 29:
        raise ValueError(f"order comment longer than 29 characters: {comment!r}")
    request: dict[str, Any] = {
        "action": TRADE_ACTION_DEAL,
        "symbol": symbol,
        "volume": float(spec.floor_volume(volume)),
        "type": ORDER_TYPE_BUY if side == "buy" else ORDER_TYPE_SELL,
        "price": float(spec.round_price(price)),
        "sl": float(spec.round_price(sl)) if sl else 0.0,
        "tp": float(spec.round_price(tp)) if tp else 0.0,
        "deviation": int(deviation),
        "magic": int(magic),
        "comment": comment,
        "type_time": ORDER_TIME_GTC,
        "type_filling": int(filling),
    }
    if position is not None:
        request["position"] = int(position)
    return request


def build_close_request(
    *,
    position: Any,
    tick: Any,
    spec: SymbolSpec,
    magic: int,
    comment: str,
    deviation: int,
    filling: int,
) -> dict[str, Any]:
    """The opposite deal that closes `position` (a TradePosition record) entirely."""
    closing_buy = position.type != POSITION_TYPE_BUY
    return build_order_request(
        symbol=position.symbol,
        side="buy" if closing_buy else "sell",
        volume=float(position.volume),
        price=tick.ask if closing_buy else tick.bid,
        spec=spec,
        magic=magic,
        comment=comment,
        deviation=deviation,
        filling=filling,
        position=int(position.ticket),
    )


def simulate_precheck(
    request: Mapping[str, Any],
    *,
    spec: SymbolSpec,
    symbol_info: Any,
    tick: Any,
    account: Any,
    now: datetime | None = None,
    max_tick_age_s: float | None = None,
) -> None:
    """Refuse what the server would refuse, before order_check: volume, stops level, margin,
    market open. Raises PrecheckFailed naming the rule and the numbers."""
    symbol, volume = request["symbol"], request["volume"]
    closing = "position" in request
    if not spec.is_valid_volume(volume):
        raise PrecheckFailed(
            f"{symbol}: volume {volume} is not volume_min {spec.volume_min} + k × step "
            f"{spec.volume_step} within max {spec.volume_max}",
            code=10014,
        )
    mode = int(symbol_info.trade_mode)
    if mode == SYMBOL_TRADE_MODE_DISABLED or (mode == SYMBOL_TRADE_MODE_CLOSEONLY and not closing):
        raise PrecheckFailed(
            f"{symbol}: trading is disabled for this symbol (trade_mode {mode})", code=10017
        )
    if now is not None and max_tick_age_s is not None:
        age = now.timestamp() - float(tick.time)
        if age > max_tick_age_s:
            raise PrecheckFailed(
                f"{symbol}: market closed (last quote {age / 60:.0f} min old)", code=10018
            )
    _check_stops(request, spec, tick)
    if not closing:
        _check_margin(request, spec, account)


def build_stops_request(
    *, position: Any, sl: float, tp: float, spec: SymbolSpec, magic: int, comment: str
) -> dict[str, Any]:
    """A TRADE_ACTION_SLTP request moving a position's stops (prices; 0 removes one)."""
    return {
        "action": TRADE_ACTION_SLTP,
        "symbol": position.symbol,
        "position": int(position.ticket),
        "sl": float(spec.round_price(sl)) if sl else 0.0,
        "tp": float(spec.round_price(tp)) if tp else 0.0,
        "magic": int(magic),
        "comment": comment,
    }


def stops_blocker(
    position: Any, sl: float, tp: float, *, spec: SymbolSpec, tick: Any, freeze_level: int
) -> str | None:
    """Why the server would refuse to move `position`'s stops to (sl, tp) now, or None:
    a new level closer than trade_stops_level to the closing price (10016), or the price
    within trade_freeze_level of a stop already set (10029)."""
    buying = position.type == POSITION_TYPE_BUY
    closing = float(tick.bid if buying else tick.ask)
    frozen = freeze_level * spec.point
    for name, level in (("SL", float(position.sl)), ("TP", float(position.tp))):
        if level and frozen and abs(closing - level) < frozen:
            return f"{name} {level} is within the freeze level ({freeze_level} points)"
    request = {"symbol": position.symbol, "type": 0 if buying else 1, "sl": sl, "tp": tp}
    try:
        _check_stops(request, spec, tick)
    except PrecheckFailed as exc:
        return str(exc)
    return None


def _check_stops(request: Mapping[str, Any], spec: SymbolSpec, tick: Any) -> None:
    buying = request["type"] == ORDER_TYPE_BUY
    closing_price = tick.bid if buying else tick.ask  # where this position would be closed
    minimum = spec.stops_level * spec.point
    for name, sign in (("sl", -1), ("tp", 1)):
        level = request.get(name) or 0.0
        if not level:
            continue
        distance = (level - closing_price) * (sign if buying else -sign)
        if distance <= 0 or distance + 1e-12 < minimum:
            raise PrecheckFailed(
                f"{request['symbol']}: {name.upper()} {level} is {distance / spec.point:.0f} "
                f"points from {closing_price}; needs at least {spec.stops_level} points on the "
                f"{'lower' if (sign < 0) == buying else 'upper'} side",
                code=10016,
            )


def estimated_margin(volume: float, price: float, spec: SymbolSpec, account: Any) -> float:
    """Margin of a new position in the account currency, FX style (notional / leverage)."""
    leverage = max(int(account.leverage or 1), 1)
    if spec.currency_base == account.currency:  # USDJPY on a USD account: no price factor
        return volume * spec.contract_size / leverage
    notional = volume * spec.contract_size * price
    return spec.profit_to_account(notional, price, account.currency) / leverage


def _check_margin(request: Mapping[str, Any], spec: SymbolSpec, account: Any) -> None:
    margin = estimated_margin(request["volume"], request["price"], spec, account)
    if margin > float(account.margin_free):
        raise PrecheckFailed(
            f"{request['symbol']}: needs about {margin:,.2f} {account.currency} margin, free "
            f"margin is {float(account.margin_free):,.2f}",
            code=10019,
        )
