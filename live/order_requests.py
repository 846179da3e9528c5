"""Order requests as the MT5 API wants them, and the checks a server would make before it
fills them: market orders, closes (whole or partial), pending orders, stop changes; volumes
snapped to the symbol's step and prices rounded to its digits; PrecheckFailed naming the rule
and the numbers for what a server would refuse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from backtest.sizing import Sizing, SizingError, position_size
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
)
from live.errors import OrderRejected


class PrecheckFailed(OrderRejected):
    """The request would be refused by the server; caught before order_check."""


def stop_levels(
    decision: Any, spec: SymbolSpec, entry_price: float
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
