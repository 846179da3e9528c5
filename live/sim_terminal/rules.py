"""Request validation of the simulated trade server: which requests a real server refuses and
with which return code. The fields each action needs on hedging and netting accounts, volume,
filling, prices against the market, the stops and freeze levels, the symbol's expiration
modes, money, and the request-rate limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from live.sim_terminal.constants import K
from live.sim_terminal.market import SimSymbol
from live.sim_terminal.records import (
    BUY_SIDE,
    PENDING_TYPES,
    Order,
    Position,
    TradeRefused,
    expires_at,
    same_price,
)

if TYPE_CHECKING:  # the server builds its rules with itself
    from live.sim_terminal.broker import TradeServer

logger = logging.getLogger(__name__)

# SYMBOL_EXPIRATION_* flag of each ORDER_TIME_* (symbol_info().expiration_mode is their mask)
_EXPIRATION_FLAGS = {
    K.ORDER_TIME_GTC: K.SYMBOL_EXPIRATION_GTC,
    K.ORDER_TIME_DAY: K.SYMBOL_EXPIRATION_DAY,
    K.ORDER_TIME_SPECIFIED: K.SYMBOL_EXPIRATION_SPECIFIED,
    K.ORDER_TIME_SPECIFIED_DAY: K.SYMBOL_EXPIRATION_SPECIFIED_DAY,
}


def _invalid() -> TradeRefused:
    return TradeRefused(K.TRADE_RETCODE_INVALID, "Invalid request")


def _gone() -> TradeRefused:
    return TradeRefused(K.TRADE_RETCODE_POSITION_CLOSED, "Position doesn't exist")


@dataclass
class RequestRate:
    """At most `limit` trade requests within any second of simulated time (0: no limit).

    Every request that reaches the server counts, refused or not, as a server's flood guard
    counts what it receives; one over the limit answers 10024 and is not counted.
    """

    limit: int = 0
    _times: list[float] = field(default_factory=list, repr=False)

    def admit(self, moment: float) -> None:
        if not self.limit:
            return
        self._times = [t for t in self._times if moment - 1.0 < t <= moment]
        if len(self._times) >= self.limit:
            raise TradeRefused(K.TRADE_RETCODE_TOO_MANY_REQUESTS, "Too many requests")
        self._times.append(moment)


class RequestRules:
    """The checks a real trade server makes before it executes a request."""

    def __init__(self, server: TradeServer) -> None:
        self.server = server

    def validate(
        self, request: dict[str, Any], moment: float, *, trade_allowed: bool = True
    ) -> None:
        """Raise TradeRefused with the code a real server would give."""
        checks = {
            K.TRADE_ACTION_DEAL: self._check_deal_request,
            K.TRADE_ACTION_PENDING: self._check_pending_request,
            K.TRADE_ACTION_SLTP: self._check_sltp,
            K.TRADE_ACTION_MODIFY: self._check_modify,
            K.TRADE_ACTION_REMOVE: self._check_remove,
            K.TRADE_ACTION_CLOSE_BY: self._check_close_by,
        }
        check = checks.get(request.get("action", 0))
        if check is None:
            raise _invalid()
        if not trade_allowed:
            raise TradeRefused(K.TRADE_RETCODE_CLIENT_DISABLES_AT, "AutoTrading disabled by client")
        check(request, moment)

    # ------------------------------------------------------------ what a request names

    def sltp_position(self, request: dict[str, Any]) -> Position:
        """The position an SLTP request moves: named by `position` on hedging (`symbol` is
        optional there), by `symbol` on netting, where the symbol has one position (`position`
        is optional there); a field given anyway must agree with the other."""
        ticket = int(request.get("position") or 0)
        symbol = str(request.get("symbol") or "")
        needed = ticket if self.server.account.hedging else symbol
        if not needed or (symbol and symbol not in self.server.feeds):
            raise _invalid()
        position = self.server.positions.get(ticket) if ticket else self.server.netted(symbol)
        if position is None:
            raise _gone()
        if symbol and position.symbol != symbol:
            raise _invalid()
        return position

    def close_by_pair(self, request: dict[str, Any]) -> tuple[Position, Position]:
        """`position` and the opposite `position_by` of one symbol (hedging only: a netting
        account has no two positions of a symbol)."""
        if not self.server.account.hedging:
            raise _invalid()
        first = self._position_for(request)
        other = self.server.positions.get(int(request.get("position_by", 0)))
        if other is None or other.symbol != first.symbol or other.type == first.type:
            raise _invalid()
        return first, other

    def _position_for(self, request: dict[str, Any]) -> Position:
        position = self.server.positions.get(int(request.get("position", 0)))
        if position is None:
            raise _gone()
        return position

    def _order_for(self, request: dict[str, Any]) -> Order:
        order = self.server.orders.get(int(request.get("order", 0)))
        if order is None:
            raise _invalid()
        return order

    def _open_market(self, symbol: object, moment: float) -> SimSymbol:
        feed = self.server.feeds.get(symbol) if isinstance(symbol, str) else None
        if feed is None:
            raise _invalid()
        if not feed.is_open(moment):
            raise TradeRefused(K.TRADE_RETCODE_MARKET_CLOSED, "Market closed")
        return feed.symbol

    def _quote(self, spec: SimSymbol, moment: float) -> tuple[float, float]:
        _, bid, ask = self.server.feeds[spec.name].quote(moment)
        return bid, ask

    # ------------------------------------------------------------ one check per action

    def _check_deal_request(self, request: dict[str, Any], moment: float) -> None:
        spec = self._open_market(request.get("symbol"), moment)
        self._check_trade_mode(spec, request)
        self._check_volume(spec, float(request.get("volume", 0.0)))
        self._check_deal(spec, request, moment)

    def _check_pending_request(self, request: dict[str, Any], moment: float) -> None:
        spec = self._open_market(request.get("symbol"), moment)
        self._check_trade_mode(spec, request)
        self._check_volume(spec, float(request.get("volume", 0.0)))
        self._check_pending(spec, request, moment)

    def _check_sltp(self, request: dict[str, Any], moment: float) -> None:
        position = self.sltp_position(request)
        spec = self._open_market(position.symbol, moment)
        self._check_position_frozen(spec, position, moment)
        sl, tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
        if same_price(sl, position.sl, spec) and same_price(tp, position.tp, spec):
            raise TradeRefused(K.TRADE_RETCODE_NO_CHANGES, "No changes")
        self._check_stops(spec, position.type, request, moment)

    def _check_modify(self, request: dict[str, Any], moment: float) -> None:
        """A new price, stops and expiration are checked as a new pending order's are."""
        order = self._order_for(request)  # the order names its symbol
        spec = self._open_market(order.symbol, moment)
        self._check_order_frozen(spec, order, moment)
        price = float(request.get("price") or order.price_open)
        if self._unchanged(spec, order, request, price):
            raise TradeRefused(K.TRADE_RETCODE_NO_CHANGES, "No changes")
        self._check_pending_price(spec, order.type, price, moment)
        self._check_stops(spec, order.type, request, moment, reference=price)
        self._check_expiration(spec, request, moment)

    def _check_remove(self, request: dict[str, Any], moment: float) -> None:
        order = self._order_for(request)
        spec = self._open_market(order.symbol, moment)
        self._check_order_frozen(spec, order, moment)

    def _check_close_by(self, request: dict[str, Any], moment: float) -> None:
        first, _ = self.close_by_pair(request)
        self._open_market(first.symbol, moment)

    @staticmethod
    def _unchanged(spec: SimSymbol, order: Order, request: dict[str, Any], price: float) -> bool:
        """A modification that would leave the order exactly as it is (10025)."""
        sl, tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
        return (
            same_price(price, order.price_open, spec)
            and same_price(sl, order.sl, spec)
            and same_price(tp, order.tp, spec)
            and int(request.get("type_time", 0)) == order.type_time
            and int(request.get("expiration", 0)) == order.time_expiration
        )

    # ------------------------------------------------------------ the freeze level
    # (MQL5 "Requirements and Limitations in Making Trades"): within trade_freeze_level points
    # of the market, a pending order's price and a position's SL/TP are frozen; modifying or
    # deleting the order, moving the stops or closing the position answers 10029.

    def _check_order_frozen(self, spec: SimSymbol, order: Order, moment: float) -> None:
        bid, ask = self._quote(spec, moment)
        distance = {
            K.ORDER_TYPE_BUY_LIMIT: ask - order.price_open,
            K.ORDER_TYPE_SELL_LIMIT: order.price_open - bid,
            K.ORDER_TYPE_BUY_STOP: order.price_open - ask,
            K.ORDER_TYPE_SELL_STOP: bid - order.price_open,
        }.get(order.type)
        if distance is not None:
            _refuse_if_frozen(spec, distance)

    def _check_position_frozen(self, spec: SimSymbol, position: Position, moment: float) -> None:
        bid, ask = self._quote(spec, moment)
        long = position.type == K.POSITION_TYPE_BUY
        if position.sl:
            _refuse_if_frozen(spec, bid - position.sl if long else position.sl - ask)
        if position.tp:
            _refuse_if_frozen(spec, position.tp - bid if long else ask - position.tp)

    # ------------------------------------------------------------ symbol rules

    def _check_trade_mode(self, spec: SimSymbol, request: dict[str, Any]) -> None:
        """Disabled, close-only, long-only and short-only symbols; a close is a deal that
        names its position, or on netting an opposite deal no larger than the position."""
        mode = spec.trade_mode
        if mode == K.SYMBOL_TRADE_MODE_DISABLED:
            raise TradeRefused(K.TRADE_RETCODE_TRADE_DISABLED, "Trade disabled")
        if self._closes_only(request):
            return
        if mode == K.SYMBOL_TRADE_MODE_CLOSEONLY:
            raise TradeRefused(K.TRADE_RETCODE_CLOSE_ONLY, "Close only")
        buying = request.get("type") in BUY_SIDE
        if mode == K.SYMBOL_TRADE_MODE_LONGONLY and not buying:
            raise TradeRefused(K.TRADE_RETCODE_LONG_ONLY, "Long only")
        if mode == K.SYMBOL_TRADE_MODE_SHORTONLY and buying:
            raise TradeRefused(K.TRADE_RETCODE_SHORT_ONLY, "Short only")

    def _closes_only(self, request: dict[str, Any]) -> bool:
        if request.get("action") != K.TRADE_ACTION_DEAL:
            return False
        if request.get("position"):
            return True
        opposite = self.server.netting_opposite(request)
        return opposite is not None and float(request["volume"]) <= opposite.volume + 1e-9

    @staticmethod
    def _check_volume(spec: SimSymbol, volume: float) -> None:
        steps = (volume - spec.volume_min) / spec.volume_step
        if (
            not (spec.volume_min - 1e-9 <= volume <= spec.volume_max + 1e-9)
            or abs(steps - round(steps)) > 1e-7
        ):
            raise TradeRefused(K.TRADE_RETCODE_INVALID_VOLUME, "Invalid volume")

    @staticmethod
    def _check_filling(spec: SimSymbol, filling: int) -> None:
        allowed = {
            K.ORDER_FILLING_FOK: bool(spec.filling_flags & K.SYMBOL_FILLING_FOK),
            K.ORDER_FILLING_IOC: bool(spec.filling_flags & K.SYMBOL_FILLING_IOC),
            # RETURN fills market orders only in exchange execution
            K.ORDER_FILLING_RETURN: spec.exemode == K.SYMBOL_TRADE_EXECUTION_EXCHANGE,
        }
        if not allowed.get(filling, False):
            raise TradeRefused(K.TRADE_RETCODE_INVALID_FILL, "Unsupported filling mode")

    def _check_expiration(self, spec: SimSymbol, request: dict[str, Any], moment: float) -> None:
        """type_time must be one the symbol's expiration_mode allows; a specified expiration
        must lie in the future (UTC here: the API edge converts the client's server time)."""
        kind, expiration = int(request.get("type_time", 0)), int(request.get("expiration", 0))
        flag = _EXPIRATION_FLAGS.get(kind, 0)
        if not flag & spec.expiration_mode:
            raise TradeRefused(K.TRADE_RETCODE_INVALID_EXPIRATION, "Invalid expiration")
        specified = kind in (K.ORDER_TIME_SPECIFIED, K.ORDER_TIME_SPECIFIED_DAY)
        zone = self.server.zone
        if specified and (not expiration or expires_at(kind, expiration, moment, zone) <= moment):
            raise TradeRefused(K.TRADE_RETCODE_INVALID_EXPIRATION, "Invalid expiration")

    # ------------------------------------------------------------ deals

    def _check_deal(self, spec: SimSymbol, request: dict[str, Any], moment: float) -> None:
        order_type = request.get("type")
        if order_type not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL):
            raise TradeRefused(K.TRADE_RETCODE_INVALID_ORDER, "Invalid order type")
        self._check_filling(spec, int(request.get("type_filling", 0)))
        bid, ask = self._quote(spec, moment)
        if spec.exemode == K.SYMBOL_TRADE_EXECUTION_INSTANT:
            asked = float(request.get("price", 0.0))
            if asked <= 0:
                raise TradeRefused(K.TRADE_RETCODE_INVALID_PRICE, "Invalid price")
            current = ask if order_type == K.ORDER_TYPE_BUY else bid
            if abs(asked - current) > int(request.get("deviation", 0)) * spec.point + 1e-9:
                raise TradeRefused(K.TRADE_RETCODE_REQUOTE, "Requote")
        if request.get("position"):
            self._check_position_frozen(spec, self._check_close(request), moment)
            return
        self._check_stops(spec, order_type, request, moment)
        price = ask if order_type == K.ORDER_TYPE_BUY else bid
        volume, released = float(request["volume"]), 0.0
        opposite = self.server.netting_opposite(request)
        if opposite is not None:  # only a reversal's excess opens anything
            if volume <= opposite.volume + 1e-9:
                return
            volume = round(volume - opposite.volume, 8)
            released = self.server.margin_for(spec, opposite.volume, opposite.price_open, moment)
        self._check_money(spec, volume, price, moment, released)

    def _check_close(self, request: dict[str, Any]) -> Position:
        """A deal closing (part of) the position it names; returns that position."""
        position = self._position_for(request)
        if position.symbol != request.get("symbol"):
            raise _invalid()
        closing_type = (
            K.ORDER_TYPE_SELL if position.type == K.POSITION_TYPE_BUY else K.ORDER_TYPE_BUY
        )
        if request.get("type") != closing_type:
            raise _invalid()
        if float(request["volume"]) > position.volume + 1e-9:
            raise TradeRefused(K.TRADE_RETCODE_INVALID_CLOSE_VOLUME, "Invalid close volume")
        return position

    def _check_stops(
        self,
        spec: SimSymbol,
        order_type: int,
        request: dict[str, Any],
        moment: float,
        reference: float | None = None,
    ) -> None:
        """SL/TP at least stops_level points beyond the closing price, on the right side.

        `order_type` may be an ORDER_TYPE_* or a POSITION_TYPE_* (buy is 0 in both).
        """
        bid, ask = self._quote(spec, moment)
        buying = order_type in BUY_SIDE
        close_at = reference if reference is not None else (bid if buying else ask)
        minimum = spec.stops_level * spec.point
        for name, sign in (("sl", -1.0), ("tp", 1.0)):
            level = float(request.get(name) or 0.0)
            if not level:
                continue
            distance = (level - close_at) * (sign if buying else -sign)
            if distance <= 0 or distance < minimum - 1e-9:
                raise TradeRefused(K.TRADE_RETCODE_INVALID_STOPS, "Invalid stops")

    def _check_money(
        self, spec: SimSymbol, volume: float, price: float, moment: float, released: float = 0.0
    ) -> None:
        """Free margin (plus the margin a netting reversal releases) must cover `volume`."""
        free = self.server.totals(moment)["margin_free"] + released
        if self.server.margin_for(spec, volume, price, moment) > free:
            raise TradeRefused(K.TRADE_RETCODE_NO_MONEY, "No money")

    # ------------------------------------------------------------ pending orders

    def _check_pending(self, spec: SimSymbol, request: dict[str, Any], moment: float) -> None:
        order_type = request.get("type")
        if order_type not in PENDING_TYPES:
            raise TradeRefused(K.TRADE_RETCODE_INVALID_ORDER, "Invalid order type")
        price = float(request.get("price", 0.0))
        self._check_pending_price(spec, order_type, price, moment)
        self._check_stops(spec, order_type, request, moment, reference=price)
        self._check_expiration(spec, request, moment)
        self._check_money(spec, float(request["volume"]), price, moment)

    def _check_pending_price(
        self, spec: SimSymbol, order_type: int, price: float, moment: float
    ) -> None:
        """Limits below (buy) or above (sell) the market, stops beyond it, each at least
        stops_level points away: a placed or a moved order alike."""
        bid, ask = self._quote(spec, moment)
        gap = spec.stops_level * spec.point
        valid = {
            K.ORDER_TYPE_BUY_LIMIT: price <= ask - gap,
            K.ORDER_TYPE_SELL_LIMIT: price >= bid + gap,
            K.ORDER_TYPE_BUY_STOP: price >= ask + gap,
            K.ORDER_TYPE_SELL_STOP: price <= bid - gap,
        }[order_type]
        if price <= 0 or not valid:
            raise TradeRefused(K.TRADE_RETCODE_INVALID_PRICE, "Invalid price")


def _refuse_if_frozen(spec: SimSymbol, distance: float) -> None:
    if spec.freeze_level and distance < spec.freeze_level * spec.point - 1e-9:
        raise TradeRefused(K.TRADE_RETCODE_FROZEN, "Frozen")
