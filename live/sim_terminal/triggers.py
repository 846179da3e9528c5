"""Prices moving the simulated trade server's book: stop-losses and take-profits that fire,
pending orders that fill and pending orders that expire along the price path, and the
optional slippage of stop fills.

A level crossed inside a bar fills at the level; one crossed by a gap (a session's first
price) fills at that price. With `stop_slippage_points`, stop-loss and buy/sell stop fills
come that many points worse (a stop becomes a market order once touched, and a market order
rarely gets the touched price); take-profits and limits never slip (they fill at their price
or better).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from live.sim_terminal.constants import K
from live.sim_terminal.records import (
    BUY_SIDE,
    STOP_TYPES,
    Order,
    Position,
    expires_at,
    msc,
)

if TYPE_CHECKING:  # the server hands itself to these functions
    from live.sim_terminal.broker import TradeServer

logger = logging.getLogger(__name__)

Piece = tuple[float, float, float, float, int, bool]
Event = tuple[float, str, Position | Order, float]


def process(server: TradeServer, moment: float) -> bool:
    """Fire stop-losses, take-profits and pending orders the path reached up to `moment`,
    and expire pending orders; True when that changed anything (a state file must know)."""
    start = server.processed_until
    if moment <= start:
        return False
    before = (len(server.deals), len(server.history_orders))
    busy = {p.symbol for p in server.positions.values()} | {
        o.symbol for o in server.orders.values()
    }
    for symbol in sorted(busy):
        for piece in server.feeds[symbol].segments(start, moment):
            _fire_on(server, symbol, piece)
    for order in [o for o in server.orders.values() if expiry(o, server) <= moment]:
        _expire(server, order)
    server.processed_until = moment
    # every event leaves a deal or a history order behind
    return (len(server.deals), len(server.history_orders)) != before


def expiry(order: Order, server: TradeServer) -> float:
    """When a pending order expires (inf for good-till-cancelled), days on the server's clock."""
    placed = order.time_setup_msc / 1000
    return expires_at(order.type_time, order.time_expiration, placed, server.zone)


def _expire(server: TradeServer, order: Order) -> None:
    del server.orders[order.ticket]
    order.state = K.ORDER_STATE_EXPIRED
    order.time_done_msc = msc(expiry(order, server))
    server.history_orders.append(order)


def _fire_on(server: TradeServer, symbol: str, piece: Piece) -> None:
    t_a, a, t_b, b, spread, gap = piece
    spec = server.symbol(symbol)
    shift = spread * spec.point
    slip = server.stop_slippage_points * spec.point
    events: list[Event] = []
    for position in [p for p in server.positions.values() if p.symbol == symbol]:
        events.extend(_stop_events(position, a, b, shift, spec.digits))
    for order in [o for o in server.orders.values() if o.symbol == symbol]:
        events.extend(_pending_events(order, a, b, shift, spec.digits))
    events.sort(key=lambda e: e[0])
    while events:
        fraction, kind, item, level = events.pop(0)
        moment = t_a + fraction * (t_b - t_a)
        buying = _fills_at_ask(kind, item)
        price = b + (shift if buying else 0.0) if gap else level
        if _is_stop(kind, item):
            price += slip if buying else -slip
        _fire(server, kind, item, round(price, spec.digits), moment)
        if kind == "pending" and not gap:
            # the position it opened has its stops watched from the fill on, in this piece
            events.extend(_stops_after_fill(server, item, fraction, a, b, shift))
            events.sort(key=lambda e: e[0])


def _stops_after_fill(
    server: TradeServer, order: Order, fraction: float, a: float, b: float, shift: float
) -> list[Event]:
    """The SL/TP events of the position a pending order opened at `fraction` of the piece
    a -> b, on the rest of the piece (fractions of the whole piece)."""
    position = next((p for p in server.positions.values() if p.identifier == order.ticket), None)
    if position is None:
        return []
    here, digits = a + fraction * (b - a), server.symbol(position.symbol).digits
    return [
        (fraction + (1.0 - fraction) * part, kind, item, level)
        for part, kind, item, level in _stop_events(position, here, b, shift, digits)
    ]


def _fire(
    server: TradeServer, kind: str, item: Position | Order, price: float, moment: float
) -> None:
    """A stop-loss or take-profit closes its position; a pending order fills (unless it
    expired before the price got there)."""
    if kind in ("sl", "tp"):
        if item.ticket not in server.positions:
            return
        digits = server.symbol(item.symbol).digits
        level = item.sl if kind == "sl" else item.tp
        reason = K.DEAL_REASON_SL if kind == "sl" else K.DEAL_REASON_TP
        server.reduce(
            item, None, item.volume, price, moment, reason, f"[{kind} {level:.{digits}f}]"
        )
        return
    if item.ticket not in server.orders:
        return
    if expiry(item, server) <= moment:  # it expired before the price reached it
        _expire(server, item)
        return
    del server.orders[item.ticket]
    item.state, item.time_done_msc = K.ORDER_STATE_FILLED, msc(moment)
    server.history_orders.append(item)
    side = K.ORDER_TYPE_BUY if item.type in BUY_SIDE else K.ORDER_TYPE_SELL
    request = {"symbol": item.symbol, "type": side, "sl": item.sl, "tp": item.tp, "position": 0}
    server.apply_deal(request, moment, item, item.volume_initial, price)


def _crossing(a: float, b: float, level: float, falling: bool) -> float | None:
    """Fraction of the way from a to b where the price reaches `level`, or None."""
    if falling and b <= level:
        return 0.0 if a <= level else (a - level) / (a - b)
    if not falling and b >= level:
        return 0.0 if a >= level else (level - a) / (b - a)
    return None


def _sides(a: float, b: float, shift: float, digits: int) -> tuple[tuple[float, float], ...]:
    """The segment a -> b at the bid and at the ask, at the symbol's precision: a price equal
    to a level compares equal, as the quoted ask and the backtest's rounded path do."""
    bid = (round(a, digits), round(b, digits))
    return bid, (round(a + shift, digits), round(b + shift, digits))


def _stop_events(position: Position, a: float, b: float, shift: float, digits: int) -> list[Event]:
    """SL/TP crossings on a bid segment a -> b: longs close at the bid, shorts at the ask."""
    bid, ask = _sides(a, b, shift, digits)
    lo, hi = bid if position.type == K.POSITION_TYPE_BUY else ask
    events: list[Event] = []
    long = position.type == K.POSITION_TYPE_BUY
    for kind, level, falling in (("sl", position.sl, long), ("tp", position.tp, not long)):
        if level:
            fraction = _crossing(lo, hi, level, falling)
            if fraction is not None:
                events.append((fraction, kind, position, level))
    return events


def _pending_events(order: Order, a: float, b: float, shift: float, digits: int) -> list[Event]:
    bid, ask = _sides(a, b, shift, digits)
    start, end = ask if order.type in BUY_SIDE else bid  # buys fill at the ask
    falling = order.type in (K.ORDER_TYPE_BUY_LIMIT, K.ORDER_TYPE_SELL_STOP)
    fraction = _crossing(start, end, order.price_open, falling)
    return [] if fraction is None else [(fraction, "pending", order, order.price_open)]


def _fills_at_ask(kind: str, item: Position | Order) -> bool:
    """Whether the fill buys: a buy pending order, or the close of a short."""
    if kind == "pending":
        return item.type in BUY_SIDE
    return item.type == K.POSITION_TYPE_SELL


def _is_stop(kind: str, item: Position | Order) -> bool:
    """A stop-loss or a buy/sell stop order: the fills that slip."""
    return kind == "sl" or (kind == "pending" and item.type in STOP_TYPES)
