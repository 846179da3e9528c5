"""The paper broker's pending orders and its intrabar rule: virtual limit and stop orders
that wait for their price, expire, and fill on a bar's path as the backtest and the
simulator fill them (backtest/fills.py): what the open has passed fills at the open, then
levels in the order the path meets them; a position filled inside a bar has its stops
watched from that point of the path on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backtest.fills import NEVER, first_touch, path_points
from live.audit_logger import AuditLogger
from live.broker_types import (
    DEAL_REASON_SL,
    DEAL_REASON_TP,
    ORDER_TYPE_BUY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_SELL,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_SELL_STOP,
    RECORD_TYPES,
    RETCODE_DONE,
    STRUCT_FIELDS,
)
from live.errors import OrderRejected

ORDER_STATE_PLACED = 1
_BUY_TYPES = (ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_BUY_STOP)
_LIMIT_TYPES = (ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT)
PENDING_ORDER_TYPES = (
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_SELL_STOP,
)


@dataclass(frozen=True)
class VirtualOrder:
    """A paper pending order (prices as sent; expiration in epoch seconds, 0 = none)."""

    ticket: int
    symbol: str
    type: int
    volume: float
    price: float
    sl: float
    tp: float
    time_setup: int
    expiration: int
    magic: int
    comment: str

    @property
    def buying(self) -> bool:
        return self.type in _BUY_TYPES

    def as_record(self) -> Any:
        """The order as orders_get() gives it."""
        fields = dict.fromkeys(STRUCT_FIELDS["TradeOrder"], 0)
        fields.update(
            ticket=self.ticket,
            time_setup=self.time_setup,
            time_setup_msc=self.time_setup * 1000,
            time_expiration=self.expiration,
            type=self.type,
            state=ORDER_STATE_PLACED,
            magic=self.magic,
            volume_initial=self.volume,
            volume_current=self.volume,
            price_open=self.price,
            sl=self.sl,
            tp=self.tp,
            symbol=self.symbol,
            comment=self.comment,
            external_id="",
        )
        return RECORD_TYPES["TradeOrder"](**fields)


@dataclass(frozen=True)
class BarQuote:
    """One bar as the side that trades sees it: bid prices, plus the spread for the ask."""

    open: float
    high: float
    low: float
    close: float
    spread: float  # in price
    start: int = 0  # the bar's open time (epoch seconds) and length
    seconds: int = 0

    def time_at(self, tau: float) -> int:
        """When the path is at `tau` (its points at thirds of the bar, as the simulator's)."""
        return int(self.start + min(tau, 3.0) / 3.0 * max(self.seconds - 1, 0))

    def path(self, buying: bool) -> tuple[np.ndarray, ...]:
        """The path's four points as a buyer (ask) or a seller (bid) meets them."""
        shift = self.spread if buying else 0.0
        points = path_points(
            np.array([self.open]),
            np.array([self.high]),
            np.array([self.low]),
            np.array([self.close]),
        )
        return tuple(p + shift for p in points)


class PaperOrders:
    """The paper broker's pending orders: placed, removed, expired and filled on bars."""

    def __init__(self, book: Any, audit: AuditLogger) -> None:
        self.book = book  # the PaperBroker: its positions, bars and tickets
        self.audit = audit
        self._orders: dict[int, VirtualOrder] = {}

    def records(self, symbol: str | None = None) -> tuple[Any, ...]:
        return tuple(
            o.as_record() for o in self._orders.values() if symbol is None or o.symbol == symbol
        )

    def trigger(self, timeframe: str, bar_seconds: int) -> None:
        for order in list(self._orders.values()):
            self._trigger(order, timeframe, bar_seconds)

    def restore(self, rows: Iterable[Mapping[str, Any]]) -> list[VirtualOrder]:
        """The orders still waiting, from the paper_order events; returns them."""
        for row in rows:
            data = json.loads(row["data"])
            order = VirtualOrder(**data["order"])
            if data["action"] == "pending":
                self._orders[order.ticket] = order
            else:
                self._orders.pop(order.ticket, None)
        return list(self._orders.values())

    def _trigger(self, order: VirtualOrder, timeframe: str, bar_seconds: int) -> None:
        """Fill a pending order on the first new bar whose path reaches its price; remove it
        when it expires first. A position it opens has its stops watched from there."""
        for bar, start in self.book.new_bars(
            order.ticket, order.symbol, order.time_setup, timeframe, bar_seconds
        ):
            if order.expiration and start >= order.expiration:
                self._drop(order, "expired")
                return
            touch = order_touch(order, bar)
            if touch is None:
                continue
            tau, price = touch
            self._drop(order, "filled")
            request = {
                "symbol": order.symbol,
                "type": ORDER_TYPE_BUY if order.buying else ORDER_TYPE_SELL,
                "volume": order.volume,
                "sl": order.sl,
                "tp": order.tp,
                "magic": order.magic,
                "comment": order.comment,
            }
            deal = self.book.open_position(request, price, bar.time_at(tau), ticket=order.ticket)
            position = self.book.position(deal.position_id)
            self.book.seen_until(position.ticket, start)  # this bar: from the fill on
            self.book.stops_on(position, bar, tau)
            return

    def place(self, request: Mapping[str, Any], tick: Any) -> Any:
        """A virtual limit or stop order, waiting for its price."""
        if request["type"] not in PENDING_ORDER_TYPES:
            raise OrderRejected(f"order type {request['type']} is not a pending type", code=10035)
        order = VirtualOrder(
            ticket=self.book.take_ticket(),
            symbol=request["symbol"],
            type=int(request["type"]),
            volume=float(request["volume"]),
            price=float(request["price"]),
            sl=float(request.get("sl") or 0),
            tp=float(request.get("tp") or 0),
            time_setup=int(tick.time),
            expiration=int(request.get("expiration") or 0),
            magic=int(request.get("magic", 0)),
            comment=request.get("comment", ""),
        )
        self._persist("pending", order)
        self._orders[order.ticket] = order
        return _order_result(order, tick)

    def remove(self, request: Mapping[str, Any]) -> Any:
        order = self._orders.get(int(request.get("order", 0)))
        if order is None:
            raise OrderRejected(f"paper order {request.get('order')} does not exist", code=10013)
        self._drop(order, "removed")
        return _order_result(order, self.book.connector.tick(order.symbol))

    def _drop(self, order: VirtualOrder, why: str) -> None:
        self._persist(why, order)
        self._orders.pop(order.ticket, None)

    def _persist(self, action: str, order: VirtualOrder) -> None:
        """Pending orders are part of the paper book: placed, and gone (filled, removed,
        expired); a removal may wait in the fallback journal like any exit."""
        self.audit.record_event(
            "paper_order",
            f"paper order {action} {order.symbol} #{order.ticket} at {order.price}",
            symbol=order.symbol,
            data={"action": action, "order": order.__dict__},
            fallback=action != "pending",
        )


def _order_result(order: VirtualOrder, tick: Any) -> Any:
    return RECORD_TYPES["OrderSendResult"](
        **{
            **dict.fromkeys(STRUCT_FIELDS["OrderSendResult"], 0),
            "retcode": RETCODE_DONE,
            "order": order.ticket,
            "volume": order.volume,
            "price": order.price,
            "bid": float(tick.bid),
            "ask": float(tick.ask),
            "comment": "Request executed (dry run)",
            "request": None,
        }
    )


def order_touch(order: VirtualOrder, bar: BarQuote) -> tuple[float, float] | None:
    """(place on the path, fill price) where the bar fills the order, None when it does not.
    A buy limit waits for the ask to fall to its price, a buy stop for it to rise; sells
    watch the bid. A price the open has passed fills at the open."""
    points = bar.path(order.buying)
    falling = (order.type in _LIMIT_TYPES) == order.buying
    tau = float(first_touch(np.array([order.price]), falling, points)[0])
    if tau == NEVER:
        return None
    return tau, float(points[0][0]) if tau == 0.0 else order.price


def stop_touch(
    long: bool, sl: float, tp: float, bar: BarQuote, start: float = 0.0
) -> tuple[float, float, int] | None:
    """(place on the path, fill price, deal reason) of the first of SL and TP the bar's
    path meets from `start` (0: from the open, where a level already passed fills at the
    open); None when neither."""
    points = bar.path(not long)  # a long is closed at the bid, a short at the ask
    hits = []
    for level, reason, falling in ((sl, DEAL_REASON_SL, long), (tp, DEAL_REASON_TP, not long)):
        if level:
            tau = float(first_touch(np.array([level]), falling, points, start)[0])
            if tau < NEVER:
                hits.append((tau, reason, level))
    if not hits:
        return None
    tau, reason, level = min(hits)
    return tau, (float(points[0][0]) if tau == 0.0 else level), reason
