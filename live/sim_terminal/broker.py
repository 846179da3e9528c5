"""The simulated trade server: account, positions, pending orders, deals, request validation with
the real return codes, stop-loss / take-profit / pending-order triggers along the price path,
and pending-order expiries.

Hedging accounts keep independent positions (a close names its position); netting accounts keep
one position per symbol that opposite deals reduce, close or reverse. The ticket of the order
that opened a position is the position's identifier, as in MT5. Money is in the account
currency (USD).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from live.sim_terminal.constants import K
from live.sim_terminal.market import SimSymbol, SymbolFeed

logger = logging.getLogger(__name__)

EXPERT = K.DEAL_REASON_EXPERT  # requests from the Python API count as an expert's
_BUY_SIDE = (K.ORDER_TYPE_BUY, K.ORDER_TYPE_BUY_LIMIT, K.ORDER_TYPE_BUY_STOP)
_PENDING_TYPES = (
    K.ORDER_TYPE_BUY_LIMIT,
    K.ORDER_TYPE_SELL_LIMIT,
    K.ORDER_TYPE_BUY_STOP,
    K.ORDER_TYPE_SELL_STOP,
)


class TradeRefused(Exception):
    """A request the server refuses: its retcode and the comment the server writes."""

    def __init__(self, retcode: int, comment: str) -> None:
        super().__init__(f"{retcode} {comment}")
        self.retcode = retcode
        self.comment = comment


@dataclass
class Account:
    login: int = 10_000_001
    name: str = "Simulated Trader"
    server: str = "Sim-Demo"
    company: str = "Simulated Broker Ltd"
    currency: str = "USD"
    balance: float = 10_000.0
    leverage: int = 100
    margin_mode: int = K.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    trade_mode: int = K.ACCOUNT_TRADE_MODE_DEMO

    @property
    def hedging(self) -> bool:
        return self.margin_mode == K.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING


@dataclass
class Position:
    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    sl: float
    tp: float
    time_msc: int
    time_update_msc: int
    magic: int
    comment: str
    identifier: int = 0
    reason: int = EXPERT


@dataclass
class Order:
    """A pending order, or (in history) any order with its final state."""

    ticket: int
    symbol: str
    type: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    time_setup_msc: int
    magic: int
    comment: str
    type_filling: int = 0
    type_time: int = 0
    time_expiration: int = 0
    state: int = K.ORDER_STATE_PLACED
    time_done_msc: int = 0
    position_id: int = 0
    reason: int = EXPERT
    price_current: float = 0.0


@dataclass
class Deal:
    ticket: int
    order: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    profit: float
    symbol: str
    comment: str
    commission: float = 0.0
    swap: float = 0.0
    fee: float = 0.0


@dataclass
class Fill:
    """What one executed request did, for OrderSendResult."""

    retcode: int
    deal: int
    order: int
    volume: float
    price: float


@dataclass
class TradeServer:
    """Positions, orders and deals of one account, moved by requests and by prices."""

    account: Account
    feeds: dict[str, SymbolFeed]
    positions: dict[int, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    history_orders: list[Order] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    next_ticket: int = 5_000_001
    processed_until: float = 0.0

    # ------------------------------------------------------------ money

    def symbol(self, name: str) -> SimSymbol:
        return self.feeds[name].symbol

    def to_account(self, amount: float, spec: SimSymbol, price: float, moment: float) -> float:
        """An amount in the symbol's profit currency, in the account currency.

        `price` is the symbol's own price (it converts USDJPY's yen); a cross (EURGBP) goes
        through the account currency's pair of its profit currency at `moment` (GBPUSD).
        """
        currency = self.account.currency
        if spec.currency_profit == currency:
            return amount
        if spec.currency_base == currency and price > 0:
            return amount / price
        rate = self._rate_to_account(spec.currency_profit, moment)
        return amount * rate if rate else amount

    def _rate_to_account(self, currency: str, moment: float) -> float | None:
        """Account currency per unit of `currency` at `moment`, from a feed of the pair."""
        home = self.account.currency
        for name, inverse in ((f"{currency}{home}", False), (f"{home}{currency}", True)):
            feed = self.feeds.get(name)
            quote = feed.quote(moment) if feed is not None else None
            if quote and quote[1] > 0:
                return 1.0 / quote[1] if inverse else float(quote[1])
        return None

    def margin_for(self, spec: SimSymbol, volume: float, price: float, moment: float) -> float:
        """Margin of `volume` lots at `price`, in the account currency."""
        units = volume * spec.contract_size / max(self.account.leverage, 1)
        if spec.currency_base == self.account.currency:
            return units
        return self.to_account(units * price, spec, price, moment)

    def profit_of(
        self,
        spec: SimSymbol,
        order_type: int,
        volume: float,
        price_open: float,
        price_close: float,
        moment: float,
    ) -> float:
        sign = 1.0 if order_type in _BUY_SIDE else -1.0
        move = sign * (price_close - price_open) * volume * spec.contract_size
        return self.to_account(move, spec, price_close, moment)

    def tick_value(self, spec: SimSymbol, moment: float) -> float:
        """What one tick's move of one lot is worth in the account currency (SymbolInfo's
        trade_tick_value), by the same conversion as profit_of."""
        feed = self.feeds[spec.name]
        quote = feed.quote(moment)
        price = quote[1] if quote else float(feed.close[0])
        return self.to_account(spec.contract_size * spec.point, spec, price, moment)

    def closing_price(self, position: Position, moment: float) -> float:
        _, bid, ask = self.feeds[position.symbol].quote(moment)
        return float(bid if position.type == K.POSITION_TYPE_BUY else ask)

    def floating(self, position: Position, moment: float) -> float:
        return round(
            float(
                self.profit_of(
                    self.symbol(position.symbol),
                    position.type,
                    position.volume,
                    position.price_open,
                    self.closing_price(position, moment),
                    moment,
                )
            ),
            2,
        )

    def totals(self, moment: float) -> dict[str, float]:
        """balance, profit, equity, margin, margin_free, margin_level at `moment`."""
        profit = sum(self.floating(p, moment) for p in self.positions.values())
        margin = sum(
            self.margin_for(self.symbol(p.symbol), p.volume, p.price_open, moment)
            for p in self.positions.values()
        )
        equity = self.account.balance + profit
        return {
            "balance": round(float(self.account.balance), 2),
            "profit": round(float(profit), 2),
            "equity": round(float(equity), 2),
            "margin": round(float(margin), 2),
            "margin_free": round(float(equity - margin), 2),
            "margin_level": round(float(100.0 * equity / margin), 2) if margin else 0.0,
        }

    # ------------------------------------------------------------ validation

    def validate(
        self, request: dict[str, Any], moment: float, *, trade_allowed: bool = True
    ) -> None:
        """Raise TradeRefused with the code a real server would give."""
        action = request.get("action", 0)
        checks = {
            K.TRADE_ACTION_DEAL: self._check_deal_request,
            K.TRADE_ACTION_PENDING: self._check_pending_request,
            K.TRADE_ACTION_SLTP: self._check_sltp,
            K.TRADE_ACTION_MODIFY: self._check_modify,
            K.TRADE_ACTION_REMOVE: self._check_remove,
            K.TRADE_ACTION_CLOSE_BY: lambda r, m: self._close_by_pair(r),
        }
        check = checks.get(action)
        if check is None:
            raise TradeRefused(K.TRADE_RETCODE_INVALID, "Invalid request")
        if not trade_allowed:
            raise TradeRefused(K.TRADE_RETCODE_CLIENT_DISABLES_AT, "AutoTrading disabled by client")
        check(request, moment)

    def _open_market(self, request: dict[str, Any], moment: float) -> SimSymbol:
        spec = self._spec_for(request)
        if not self.feeds[spec.name].is_open(moment):
            raise TradeRefused(K.TRADE_RETCODE_MARKET_CLOSED, "Market closed")
        return spec

    def _check_deal_request(self, request: dict[str, Any], moment: float) -> None:
        spec = self._open_market(request, moment)
        self._check_trade_mode(spec, request)
        self._check_volume(spec, float(request.get("volume", 0.0)))
        self._check_deal(spec, request, moment)

    def _check_pending_request(self, request: dict[str, Any], moment: float) -> None:
        spec = self._open_market(request, moment)
        self._check_trade_mode(spec, request)
        self._check_volume(spec, float(request.get("volume", 0.0)))
        self._check_pending(spec, request, moment)

    def _check_sltp(self, request: dict[str, Any], moment: float) -> None:
        spec = self._open_market(request, moment)
        position = self._position_for(request)
        self._check_position_frozen(spec, position, moment)
        sl, tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
        if _same(sl, position.sl, spec) and _same(tp, position.tp, spec):
            raise TradeRefused(K.TRADE_RETCODE_NO_CHANGES, "No changes")
        self._check_stops(spec, position.type, request, moment)

    def _check_modify(self, request: dict[str, Any], moment: float) -> None:
        order = self._order_for(request)  # the order names its symbol
        spec = self._open_market({**request, "symbol": order.symbol}, moment)
        self._check_order_frozen(spec, order, moment)
        price = float(request.get("price") or order.price_open)
        if self._unchanged(spec, order, request, price):
            raise TradeRefused(K.TRADE_RETCODE_NO_CHANGES, "No changes")
        self._check_stops(spec, order.type, request, moment, reference=price)
        self._check_expiration(request, moment)

    def _check_remove(self, request: dict[str, Any], moment: float) -> None:
        order = self._order_for(request)
        spec = self._open_market({"symbol": order.symbol}, moment)
        self._check_order_frozen(spec, order, moment)

    @staticmethod
    def _unchanged(spec: SimSymbol, order: Order, request: dict[str, Any], price: float) -> bool:
        """A modification that would leave the order exactly as it is (10025)."""
        sl, tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
        return (
            _same(price, order.price_open, spec)
            and _same(sl, order.sl, spec)
            and _same(tp, order.tp, spec)
            and int(request.get("type_time", 0)) == order.type_time
            and int(request.get("expiration", 0)) == order.time_expiration
        )

    # The freeze level (MQL5 "Requirements and Limitations in Making Trades"): within
    # trade_freeze_level points of the market, a pending order's price and a position's
    # SL/TP are frozen; modifying or deleting them answers 10029.

    def _check_order_frozen(self, spec: SimSymbol, order: Order, moment: float) -> None:
        _, bid, ask = self.feeds[spec.name].quote(moment)
        distance = {
            K.ORDER_TYPE_BUY_LIMIT: ask - order.price_open,
            K.ORDER_TYPE_SELL_LIMIT: order.price_open - bid,
            K.ORDER_TYPE_BUY_STOP: order.price_open - ask,
            K.ORDER_TYPE_SELL_STOP: bid - order.price_open,
        }.get(order.type)
        if distance is not None:
            self._refuse_if_frozen(spec, distance)

    def _check_position_frozen(self, spec: SimSymbol, position: Position, moment: float) -> None:
        _, bid, ask = self.feeds[spec.name].quote(moment)
        long = position.type == K.POSITION_TYPE_BUY
        if position.sl:
            self._refuse_if_frozen(spec, bid - position.sl if long else position.sl - ask)
        if position.tp:
            self._refuse_if_frozen(spec, position.tp - bid if long else ask - position.tp)

    @staticmethod
    def _refuse_if_frozen(spec: SimSymbol, distance: float) -> None:
        if spec.freeze_level and distance < spec.freeze_level * spec.point - 1e-9:
            raise TradeRefused(K.TRADE_RETCODE_FROZEN, "Frozen")

    def _spec_for(self, request: dict[str, Any]) -> SimSymbol:
        name = request.get("symbol", "")
        if name not in self.feeds:
            raise TradeRefused(K.TRADE_RETCODE_INVALID, "Invalid request")
        return self.feeds[name].symbol

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
        buying = request.get("type") in _BUY_SIDE
        if mode == K.SYMBOL_TRADE_MODE_LONGONLY and not buying:
            raise TradeRefused(K.TRADE_RETCODE_LONG_ONLY, "Long only")
        if mode == K.SYMBOL_TRADE_MODE_SHORTONLY and buying:
            raise TradeRefused(K.TRADE_RETCODE_SHORT_ONLY, "Short only")

    def _closes_only(self, request: dict[str, Any]) -> bool:
        if request.get("action") != K.TRADE_ACTION_DEAL:
            return False
        if request.get("position"):
            return True
        opposite = self._netting_opposite(request)
        return opposite is not None and float(request["volume"]) <= opposite.volume + 1e-9

    def _netting_opposite(self, request: dict[str, Any]) -> Position | None:
        """On a netting account, the symbol's position that this deal reduces, if any."""
        if self.account.hedging or request.get("position"):
            return None
        existing = next(
            (p for p in self.positions.values() if p.symbol == request.get("symbol")), None
        )
        if existing is None:
            return None
        long = existing.type == K.POSITION_TYPE_BUY
        return existing if long != (request.get("type") == K.ORDER_TYPE_BUY) else None

    @staticmethod
    def _check_volume(spec: SimSymbol, volume: float) -> None:
        steps = (volume - spec.volume_min) / spec.volume_step
        if (
            not (spec.volume_min - 1e-9 <= volume <= spec.volume_max + 1e-9)
            or abs(steps - round(steps)) > 1e-7
        ):
            raise TradeRefused(K.TRADE_RETCODE_INVALID_VOLUME, "Invalid volume")

    def _check_deal(self, spec: SimSymbol, request: dict[str, Any], moment: float) -> None:
        order_type = request.get("type")
        if order_type not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL):
            raise TradeRefused(K.TRADE_RETCODE_INVALID_ORDER, "Invalid order type")
        self._check_filling(spec, int(request.get("type_filling", 0)))
        _, bid, ask = self.feeds[spec.name].quote(moment)
        if spec.exemode == K.SYMBOL_TRADE_EXECUTION_INSTANT:
            asked = float(request.get("price", 0.0))
            if asked <= 0:
                raise TradeRefused(K.TRADE_RETCODE_INVALID_PRICE, "Invalid price")
            current = ask if order_type == K.ORDER_TYPE_BUY else bid
            if abs(asked - current) > int(request.get("deviation", 0)) * spec.point + 1e-9:
                raise TradeRefused(K.TRADE_RETCODE_REQUOTE, "Requote")
        if request.get("position"):
            self._check_close(request)
            return
        self._check_stops(spec, order_type, request, moment)
        price = ask if order_type == K.ORDER_TYPE_BUY else bid
        volume, released = float(request["volume"]), 0.0
        opposite = self._netting_opposite(request)
        if opposite is not None:  # only a reversal's excess opens anything
            if volume <= opposite.volume + 1e-9:
                return
            volume = round(volume - opposite.volume, 8)
            released = self.margin_for(spec, opposite.volume, opposite.price_open, moment)
        self._check_money(spec, volume, price, moment, released)

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

    def _check_close(self, request: dict[str, Any]) -> None:
        position = self.positions.get(int(request["position"]))
        if position is None:
            raise TradeRefused(K.TRADE_RETCODE_POSITION_CLOSED, "Position doesn't exist")
        if position.symbol != request.get("symbol"):
            raise TradeRefused(K.TRADE_RETCODE_INVALID, "Invalid request")
        closing_type = (
            K.ORDER_TYPE_SELL if position.type == K.POSITION_TYPE_BUY else K.ORDER_TYPE_BUY
        )
        if request.get("type") != closing_type:
            raise TradeRefused(K.TRADE_RETCODE_INVALID, "Invalid request")
        if float(request["volume"]) > position.volume + 1e-9:
            raise TradeRefused(K.TRADE_RETCODE_INVALID_CLOSE_VOLUME, "Invalid close volume")

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
        _, bid, ask = self.feeds[spec.name].quote(moment)
        buying = order_type in _BUY_SIDE
        close_at = reference if reference is not None else (bid if buying else ask)
        minimum = spec.stops_level * spec.point
        for name, sign in (("sl", -1.0), ("tp", 1.0)):
            level = float(request.get(name) or 0.0)
            if not level:
                continue
            distance = (level - close_at) * (sign if buying else -sign)
            if distance <= 0 or distance < minimum - 1e-9:
                raise TradeRefused(K.TRADE_RETCODE_INVALID_STOPS, "Invalid stops")

    def margin_change(self, request: dict[str, Any], price: float, moment: float) -> float:
        """How much the account's margin grows when this opening request fills (negative
        when a netting deal reduces the position)."""
        spec = self.symbol(request["symbol"])
        volume = float(request["volume"])
        opposite = self._netting_opposite(request)
        if opposite is None or request.get("action") != K.TRADE_ACTION_DEAL:
            return self.margin_for(spec, volume, price, moment)
        reduced = min(volume, opposite.volume)
        freed = self.margin_for(spec, reduced, opposite.price_open, moment)
        return self.margin_for(spec, max(volume - reduced, 0.0), price, moment) - freed

    def _check_money(
        self, spec: SimSymbol, volume: float, price: float, moment: float, released: float = 0.0
    ) -> None:
        """Free margin (plus the margin a netting reversal releases) must cover `volume`."""
        free = self.totals(moment)["margin_free"] + released
        if self.margin_for(spec, volume, price, moment) > free:
            raise TradeRefused(K.TRADE_RETCODE_NO_MONEY, "No money")

    def _check_pending(self, spec: SimSymbol, request: dict[str, Any], moment: float) -> None:
        order_type = request.get("type")
        if order_type not in _PENDING_TYPES:
            raise TradeRefused(K.TRADE_RETCODE_INVALID_ORDER, "Invalid order type")
        _, bid, ask = self.feeds[spec.name].quote(moment)
        price = float(request.get("price", 0.0))
        gap = spec.stops_level * spec.point
        valid = {
            K.ORDER_TYPE_BUY_LIMIT: price <= ask - gap,
            K.ORDER_TYPE_SELL_LIMIT: price >= bid + gap,
            K.ORDER_TYPE_BUY_STOP: price >= ask + gap,
            K.ORDER_TYPE_SELL_STOP: price <= bid - gap,
        }[order_type]
        if price <= 0 or not valid:
            raise TradeRefused(K.TRADE_RETCODE_INVALID_PRICE, "Invalid price")
        self._check_stops(spec, order_type, request, moment, reference=price)
        self._check_expiration(request, moment)
        self._check_money(spec, float(request["volume"]), price, moment)

    @staticmethod
    def _check_expiration(request: dict[str, Any], moment: float) -> None:
        """type_time must be known; a specified expiration must lie in the future."""
        kind, expiration = int(request.get("type_time", 0)), int(request.get("expiration", 0))
        specified = kind in (K.ORDER_TIME_SPECIFIED, K.ORDER_TIME_SPECIFIED_DAY)
        if kind not in (K.ORDER_TIME_GTC, K.ORDER_TIME_DAY) and not specified:
            raise TradeRefused(K.TRADE_RETCODE_INVALID_EXPIRATION, "Invalid expiration")
        if specified and (not expiration or _expires_at(kind, expiration, moment) <= moment):
            raise TradeRefused(K.TRADE_RETCODE_INVALID_EXPIRATION, "Invalid expiration")

    def _position_for(self, request: dict[str, Any]) -> Position:
        position = self.positions.get(int(request.get("position", 0)))
        if position is None:
            raise TradeRefused(K.TRADE_RETCODE_POSITION_CLOSED, "Position doesn't exist")
        return position

    def _order_for(self, request: dict[str, Any]) -> Order:
        order = self.orders.get(int(request.get("order", 0)))
        if order is None:
            raise TradeRefused(K.TRADE_RETCODE_INVALID, "Invalid request")
        return order

    def _close_by_pair(self, request: dict[str, Any]) -> tuple[Position, Position]:
        first = self._position_for(request)
        other = self.positions.get(int(request.get("position_by", 0)))
        if (
            other is None
            or other.symbol != first.symbol
            or other.type == first.type
            or not self.account.hedging
        ):
            raise TradeRefused(K.TRADE_RETCODE_INVALID, "Invalid request")
        return first, other

    # ------------------------------------------------------------ execution

    def execute(self, request: dict[str, Any], moment: float, *, fill_ratio: float = 1.0) -> Fill:
        """Carry out a validated request at `moment`."""
        action = request["action"]
        if action == K.TRADE_ACTION_DEAL:
            return self._execute_deal(request, moment, fill_ratio)
        if action == K.TRADE_ACTION_PENDING:
            return self._place_pending(request, moment)
        if action == K.TRADE_ACTION_SLTP:
            position = self._position_for(request)
            position.sl, position.tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
            position.time_update_msc = _msc(moment)
            return Fill(K.TRADE_RETCODE_DONE, 0, 0, 0.0, 0.0)
        if action == K.TRADE_ACTION_CLOSE_BY:
            return self._close_by(request, moment)
        return self._modify_or_remove(request, moment)

    def _ticket(self) -> int:
        self.next_ticket += 1
        return self.next_ticket

    def _execute_deal(self, request: dict[str, Any], moment: float, fill_ratio: float) -> Fill:
        spec = self.symbol(request["symbol"])
        _, bid, ask = self.feeds[spec.name].quote(moment)
        buying = request["type"] == K.ORDER_TYPE_BUY
        price = ask if buying else bid
        volume = float(request["volume"])
        if fill_ratio < 1.0:
            steps = math.floor(volume * fill_ratio / spec.volume_step + 1e-9)
            volume = max(spec.volume_min, round(steps * spec.volume_step, 8))
        order = self._history_order(request, moment, volume, price, K.ORDER_STATE_FILLED)
        deal_ticket = self._apply_deal(request, moment, order, volume, price)
        code = (
            K.TRADE_RETCODE_DONE_PARTIAL
            if volume < float(request["volume"]) - 1e-9
            else K.TRADE_RETCODE_DONE
        )
        return Fill(code, deal_ticket, order.ticket, volume, price)

    def _history_order(
        self, request: dict[str, Any], moment: float, volume: float, price: float, state: int
    ) -> Order:
        order = Order(
            ticket=self._ticket(),
            symbol=request["symbol"],
            type=int(request["type"]),
            volume_initial=float(request["volume"]),
            volume_current=0.0,
            price_open=price,
            sl=float(request.get("sl") or 0),
            tp=float(request.get("tp") or 0),
            time_setup_msc=_msc(moment),
            magic=int(request.get("magic", 0)),
            comment=str(request.get("comment", "")),
            type_filling=int(request.get("type_filling", 0)),
            type_time=int(request.get("type_time", 0)),
            state=state,
            time_done_msc=_msc(moment),
            position_id=int(request.get("position", 0)),
        )
        self.history_orders.append(order)
        return order

    def _apply_deal(
        self, request: dict[str, Any], moment: float, order: Order, volume: float, price: float
    ) -> int:
        symbol, side = request["symbol"], int(request["type"])
        if self.account.hedging:
            target = self.positions.get(int(request.get("position", 0) or 0))
            if target is None:
                return self._open(order, symbol, side, volume, price, moment, request)
            return self._reduce(target, order, volume, price, moment, EXPERT, order.comment)
        existing = next((p for p in self.positions.values() if p.symbol == symbol), None)
        if existing is None:
            return self._open(order, symbol, side, volume, price, moment, request)
        if (existing.type == K.POSITION_TYPE_BUY) == (side == K.ORDER_TYPE_BUY):
            return self._add(existing, order, volume, price, moment)
        return self._net_opposite(existing, order, volume, price, moment, request)

    def _open(
        self,
        order: Order,
        symbol: str,
        side: int,
        volume: float,
        price: float,
        moment: float,
        request: dict[str, Any],
    ) -> int:
        position = Position(
            ticket=order.ticket,
            symbol=symbol,
            type=K.POSITION_TYPE_BUY if side == K.ORDER_TYPE_BUY else K.POSITION_TYPE_SELL,
            volume=volume,
            price_open=price,
            sl=float(request.get("sl") or 0),
            tp=float(request.get("tp") or 0),
            time_msc=_msc(moment),
            time_update_msc=_msc(moment),
            magic=order.magic,
            comment=order.comment,
            identifier=order.ticket,
        )
        self.positions[position.ticket] = position
        order.position_id = position.ticket
        return self._deal(
            order.ticket,
            moment,
            side,
            K.DEAL_ENTRY_IN,
            position,
            volume,
            price,
            0.0,
            EXPERT,
            order.comment,
            magic=order.magic,
        )

    def _add(
        self, position: Position, order: Order, volume: float, price: float, moment: float
    ) -> int:
        total = position.volume + volume
        position.price_open = round(
            (position.price_open * position.volume + price * volume) / total,
            self.symbol(position.symbol).digits,
        )
        position.volume = round(total, 8)
        position.time_update_msc = _msc(moment)
        order.position_id = position.ticket
        side = K.ORDER_TYPE_BUY if position.type == K.POSITION_TYPE_BUY else K.ORDER_TYPE_SELL
        return self._deal(
            order.ticket,
            moment,
            side,
            K.DEAL_ENTRY_IN,
            position,
            volume,
            price,
            0.0,
            EXPERT,
            order.comment,
            magic=order.magic,
        )

    def _net_opposite(
        self,
        position: Position,
        order: Order,
        volume: float,
        price: float,
        moment: float,
        request: dict[str, Any],
    ) -> int:
        if volume <= position.volume + 1e-9:
            return self._reduce(position, order, volume, price, moment, EXPERT, order.comment)
        spec = self.symbol(position.symbol)
        closed = position.volume
        profit = round(
            self.profit_of(spec, position.type, closed, position.price_open, price, moment), 2
        )
        self.account.balance += profit
        side = int(request["type"])
        position.type = K.POSITION_TYPE_BUY if side == K.ORDER_TYPE_BUY else K.POSITION_TYPE_SELL
        position.volume = round(volume - closed, 8)
        position.price_open = price
        position.sl, position.tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
        position.time_update_msc = _msc(moment)
        # a reversal re-tickets the position with the reversing order; its identifier stays
        del self.positions[position.ticket]
        position.ticket = order.ticket
        self.positions[position.ticket] = position
        order.position_id = position.identifier
        return self._deal(
            order.ticket,
            moment,
            side,
            K.DEAL_ENTRY_INOUT,
            position,
            volume,
            price,
            profit,
            EXPERT,
            order.comment,
            magic=order.magic,
        )

    def _reduce(
        self,
        position: Position,
        order: Order | None,
        volume: float,
        price: float,
        moment: float,
        reason: int,
        comment: str,
    ) -> int:
        spec = self.symbol(position.symbol)
        profit = round(
            self.profit_of(spec, position.type, volume, position.price_open, price, moment), 2
        )
        self.account.balance += profit
        position.volume = round(position.volume - volume, 8)
        position.time_update_msc = _msc(moment)
        if position.volume <= 1e-9:
            del self.positions[position.ticket]
        side = K.ORDER_TYPE_SELL if position.type == K.POSITION_TYPE_BUY else K.ORDER_TYPE_BUY
        order_ticket = (
            order.ticket
            if order is not None
            else self._server_order(position, side, volume, price, moment, reason, comment)
        )
        if order is not None:
            order.position_id = position.identifier or position.ticket
        return self._deal(
            order_ticket,
            moment,
            side,
            K.DEAL_ENTRY_OUT,
            position,
            volume,
            price,
            profit,
            reason,
            comment,
            magic=position.magic if order is None else order.magic,
        )

    def _server_order(
        self,
        position: Position,
        side: int,
        volume: float,
        price: float,
        moment: float,
        reason: int,
        comment: str,
    ) -> int:
        """The order a server creates itself when a stop-loss or take-profit fires."""
        order = Order(
            ticket=self._ticket(),
            symbol=position.symbol,
            type=side,
            volume_initial=volume,
            volume_current=0.0,
            price_open=price,
            sl=position.sl,
            tp=position.tp,
            time_setup_msc=_msc(moment),
            magic=position.magic,
            comment=comment,
            state=K.ORDER_STATE_FILLED,
            time_done_msc=_msc(moment),
            position_id=position.ticket,
            reason=reason,
        )
        self.history_orders.append(order)
        return order.ticket

    def _deal(
        self,
        order: int,
        moment: float,
        side: int,
        entry: int,
        position: Position,
        volume: float,
        price: float,
        profit: float,
        reason: int,
        comment: str,
        magic: int,
    ) -> int:
        """A deal; its magic is the magic of the order that made it (a close sent by another
        program carries that program's magic, a hand close 0), as a real server stamps it."""
        deal = Deal(
            ticket=self._ticket(),
            order=order,
            time_msc=_msc(moment),
            type=K.DEAL_TYPE_BUY if side == K.ORDER_TYPE_BUY else K.DEAL_TYPE_SELL,
            entry=entry,
            magic=magic,
            position_id=position.identifier or position.ticket,
            reason=reason,
            volume=volume,
            price=price,
            profit=profit,
            symbol=position.symbol,
            comment=comment,
        )
        self.deals.append(deal)
        return deal.ticket

    def _close_by(self, request: dict[str, Any], moment: float) -> Fill:
        first, other = self._close_by_pair(request)
        volume = min(first.volume, other.volume)
        price = other.price_open
        deal = self._reduce(first, None, volume, price, moment, EXPERT, "close by")
        self._reduce(other, None, volume, first.price_open, moment, EXPERT, "close by")
        return Fill(K.TRADE_RETCODE_DONE, deal, 0, volume, price)

    def _place_pending(self, request: dict[str, Any], moment: float) -> Fill:
        order = Order(
            ticket=self._ticket(),
            symbol=request["symbol"],
            type=int(request["type"]),
            volume_initial=float(request["volume"]),
            volume_current=float(request["volume"]),
            price_open=float(request["price"]),
            sl=float(request.get("sl") or 0),
            tp=float(request.get("tp") or 0),
            time_setup_msc=_msc(moment),
            magic=int(request.get("magic", 0)),
            comment=str(request.get("comment", "")),
            type_filling=int(request.get("type_filling", 0)),
            type_time=int(request.get("type_time", 0)),
            time_expiration=int(request.get("expiration", 0)),
        )
        self.orders[order.ticket] = order
        return Fill(K.TRADE_RETCODE_PLACED, 0, order.ticket, order.volume_initial, order.price_open)

    def _modify_or_remove(self, request: dict[str, Any], moment: float) -> Fill:
        order = self._order_for(request)
        if request["action"] == K.TRADE_ACTION_REMOVE:
            del self.orders[order.ticket]
            order.state, order.time_done_msc = K.ORDER_STATE_CANCELED, _msc(moment)
            self.history_orders.append(order)
            return Fill(K.TRADE_RETCODE_DONE, 0, order.ticket, 0.0, 0.0)
        order.price_open = float(request.get("price") or order.price_open)
        order.sl, order.tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
        order.type_time = int(request.get("type_time", 0))
        order.time_expiration = int(request.get("expiration", 0))
        return Fill(K.TRADE_RETCODE_DONE, 0, order.ticket, order.volume_current, order.price_open)

    # ------------------------------------------------------------ prices moving

    def process(self, moment: float) -> bool:
        """Fire stop-losses, take-profits and pending orders the path reached up to `moment`,
        and expire pending orders; True when that changed anything (a state file must know)."""
        start = self.processed_until
        if moment <= start:
            return False
        before = (len(self.deals), len(self.history_orders))
        busy = {p.symbol for p in self.positions.values()} | {
            o.symbol for o in self.orders.values()
        }
        for symbol in sorted(busy):
            for piece in self.feeds[symbol].segments(start, moment):
                self._fire_on(symbol, piece)
        for order in [o for o in self.orders.values() if self._expiry(o) <= moment]:
            self._expire(order)
        self.processed_until = moment
        # every event leaves a deal or a history order behind
        return (len(self.deals), len(self.history_orders)) != before

    @staticmethod
    def _expiry(order: Order) -> float:
        """When a pending order expires (inf for good-till-cancelled)."""
        return _expires_at(order.type_time, order.time_expiration, order.time_setup_msc / 1000)

    def _expire(self, order: Order) -> None:
        del self.orders[order.ticket]
        order.state = K.ORDER_STATE_EXPIRED
        order.time_done_msc = _msc(self._expiry(order))
        self.history_orders.append(order)

    def _fire_on(self, symbol: str, piece: tuple[float, float, float, float, int, bool]) -> None:
        t_a, a, t_b, b, spread, gap = piece
        spec = self.symbol(symbol)
        shift = spread * spec.point
        events = []
        for position in [p for p in self.positions.values() if p.symbol == symbol]:
            events.extend(_stop_events(position, a, b, shift))
        for order in [o for o in self.orders.values() if o.symbol == symbol]:
            events.extend(_pending_events(order, a, b, shift))
        for fraction, kind, item, level in sorted(events, key=lambda e: e[0]):
            moment = t_a + fraction * (t_b - t_a)
            fill = (
                round(b + (shift if _closes_at_ask(kind, item) else 0.0), spec.digits)
                if gap
                else level
            )
            self._fire(kind, item, fill, moment)

    def _fire(self, kind: str, item: Position | Order, price: float, moment: float) -> None:
        if kind in ("sl", "tp"):
            if item.ticket not in self.positions:
                return
            digits = self.symbol(item.symbol).digits
            level = item.sl if kind == "sl" else item.tp
            reason = K.DEAL_REASON_SL if kind == "sl" else K.DEAL_REASON_TP
            self._reduce(
                item, None, item.volume, price, moment, reason, f"[{kind} {level:.{digits}f}]"
            )
            return
        if item.ticket not in self.orders:
            return
        if self._expiry(item) <= moment:  # it expired before the price reached it
            self._expire(item)
            return
        del self.orders[item.ticket]
        item.state, item.time_done_msc = K.ORDER_STATE_FILLED, _msc(moment)
        self.history_orders.append(item)
        side = K.ORDER_TYPE_BUY if item.type in _BUY_SIDE else K.ORDER_TYPE_SELL
        request = {"symbol": item.symbol, "type": side, "sl": item.sl, "tp": item.tp, "position": 0}
        self._apply_deal(request, moment, item, item.volume_initial, price)

    # ------------------------------------------------------------ persistence

    def to_state(self, *, history_orders_from: int = 0, deals_from: int = 0) -> dict[str, Any]:
        """Everything, or with `*_from` only the history entries after those counts (history
        never changes once a call has returned, so a journal can hold it)."""
        return {
            "account": asdict(self.account),
            "positions": [asdict(p) for p in self.positions.values()],
            "orders": [asdict(o) for o in self.orders.values()],
            "history_orders": [asdict(o) for o in self.history_orders[history_orders_from:]],
            "deals": [asdict(d) for d in self.deals[deals_from:]],
            "next_ticket": self.next_ticket,
            "processed_until": self.processed_until,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.account = Account(**state["account"])
        self.positions = {p["ticket"]: Position(**p) for p in state["positions"]}
        self.orders = {o["ticket"]: Order(**o) for o in state["orders"]}
        self.history_orders = [Order(**o) for o in state["history_orders"]]
        self.deals = [Deal(**d) for d in state["deals"]]
        self.next_ticket = int(state["next_ticket"])
        self.processed_until = float(state["processed_until"])


def _msc(moment: float) -> int:
    return round(moment * 1000)


def _same(a: float, b: float, spec: SimSymbol) -> bool:
    """Equal prices to the symbol's precision (a request's float against a stored level)."""
    return abs(a - b) < spec.point / 2


_DAY = 86_400


def _expires_at(type_time: int, expiration: int, placed: float) -> float:
    """The moment an order of `type_time` expires (the server's day is the UTC day).

    DAY: the end of the day it was placed; SPECIFIED: `expiration`; SPECIFIED_DAY: the end
    of the day of `expiration`; GTC (or no expiration given): never.
    """
    if type_time == K.ORDER_TIME_DAY:
        return (math.floor(placed) // _DAY + 1) * _DAY
    if type_time == K.ORDER_TIME_SPECIFIED and expiration:
        return float(expiration)
    if type_time == K.ORDER_TIME_SPECIFIED_DAY and expiration:
        return float((expiration // _DAY + 1) * _DAY)
    return math.inf


def _crossing(a: float, b: float, level: float, falling: bool) -> float | None:
    """Fraction of the way from a to b where the price reaches `level`, or None."""
    if falling and b <= level:
        return 0.0 if a <= level else (a - level) / (a - b)
    if not falling and b >= level:
        return 0.0 if a >= level else (level - a) / (b - a)
    return None


def _stop_events(position: Position, a: float, b: float, shift: float) -> list[tuple]:
    """SL/TP crossings on a bid segment a -> b: longs close at the bid, shorts at the ask."""
    long = position.type == K.POSITION_TYPE_BUY
    lo, hi = (a, b) if long else (a + shift, b + shift)
    events = []
    for kind, level, falling in (("sl", position.sl, long), ("tp", position.tp, not long)):
        if level:
            fraction = _crossing(lo, hi, level, falling)
            if fraction is not None:
                events.append((fraction, kind, position, level))
    return events


def _pending_events(order: Order, a: float, b: float, shift: float) -> list[tuple]:
    buying = order.type in _BUY_SIDE
    start, end = (a + shift, b + shift) if buying else (a, b)  # buys fill at the ask
    falling = order.type in (K.ORDER_TYPE_BUY_LIMIT, K.ORDER_TYPE_SELL_STOP)
    fraction = _crossing(start, end, order.price_open, falling)
    return [] if fraction is None else [(fraction, "pending", order, order.price_open)]


def _closes_at_ask(kind: str, item: Position | Order) -> bool:
    if kind == "pending":
        return item.type in _BUY_SIDE
    return item.type == K.POSITION_TYPE_SELL
