"""The simulated trade server: the account's positions, pending orders and deals, and the
execution of the requests its rules (rules.py) let through. What they are worth is money.py's;
prices moving the book (stop-losses, take-profits, pending fills, expiries) are triggers.py's.

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

from backtest.broker_clock import UTC_ZONE, BrokerZone
from live.sim_terminal import triggers
from live.sim_terminal.constants import K
from live.sim_terminal.money import Book
from live.sim_terminal.records import (
    EXPERT,
    Account,
    Deal,
    Fill,
    Order,
    Position,
    TradeRefused,
    msc,
)
from live.sim_terminal.rules import RequestRate, RequestRules

# the records are imported from here too, as before the split
__all__ = [
    "Account",
    "Deal",
    "Fill",
    "Order",
    "Position",
    "RequestRate",
    "TradeRefused",
    "TradeServer",
]

logger = logging.getLogger(__name__)


@dataclass
class TradeServer(Book):
    """Positions, orders and deals of one account, moved by requests and by prices (the
    valuation of the account and its positions is Book's)."""

    orders: dict[int, Order] = field(default_factory=dict)
    history_orders: list[Order] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    next_ticket: int = 5_000_001
    processed_until: float = 0.0
    stop_slippage_points: int = 0  # how much worse stop fills come (triggers.py)
    zone: BrokerZone = UTC_ZONE  # the server's clock: its days end pending orders of the day
    request_rate: RequestRate = field(default_factory=RequestRate)
    rules: RequestRules = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rules = RequestRules(self)

    # ------------------------------------------------------------ positions

    def netted(self, symbol: object) -> Position | None:
        """A netting account's one position in `symbol`, if any."""
        return next((p for p in self.positions.values() if p.symbol == symbol), None)

    def netting_opposite(self, request: dict[str, Any]) -> Position | None:
        """On a netting account, the symbol's position that this deal reduces, if any."""
        if self.account.hedging or request.get("position"):
            return None
        existing = self.netted(request.get("symbol"))
        if existing is None:
            return None
        long = existing.type == K.POSITION_TYPE_BUY
        return existing if long != (request.get("type") == K.ORDER_TYPE_BUY) else None

    def margin_change(self, request: dict[str, Any], price: float, moment: float) -> float:
        """How much the account's margin grows when this opening request fills (negative
        when a netting deal reduces the position)."""
        spec = self.symbol(request["symbol"])
        volume = float(request["volume"])
        opposite = self.netting_opposite(request)
        if opposite is None or request.get("action") != K.TRADE_ACTION_DEAL:
            return self.margin_for(spec, volume, price, moment)
        reduced = min(volume, opposite.volume)
        freed = self.margin_for(spec, reduced, opposite.price_open, moment)
        return self.margin_for(spec, max(volume - reduced, 0.0), price, moment) - freed

    # ------------------------------------------------------------ requests

    def validate(
        self, request: dict[str, Any], moment: float, *, trade_allowed: bool = True
    ) -> None:
        """Raise TradeRefused with the code a real server would give (rules.py)."""
        self.rules.validate(request, moment, trade_allowed=trade_allowed)

    def execute(self, request: dict[str, Any], moment: float, *, fill_ratio: float = 1.0) -> Fill:
        """Carry out a validated request at `moment`."""
        action = request["action"]
        if action == K.TRADE_ACTION_DEAL:
            return self._execute_deal(request, moment, fill_ratio)
        if action == K.TRADE_ACTION_PENDING:
            return self._place_pending(request, moment)
        if action == K.TRADE_ACTION_SLTP:
            return self._set_stops(self.rules.sltp_position(request), request, moment)
        if action == K.TRADE_ACTION_CLOSE_BY:
            return self._close_by(request, moment)
        return self._modify_or_remove(request, moment)

    def _ticket(self) -> int:
        self.next_ticket += 1
        return self.next_ticket

    def _set_stops(self, position: Position, request: dict[str, Any], moment: float) -> Fill:
        position.sl, position.tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
        position.time_update_msc = msc(moment)
        return Fill(K.TRADE_RETCODE_DONE, 0, 0, 0.0, 0.0)

    # ------------------------------------------------------------ deals

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
        deal_ticket = self.apply_deal(request, moment, order, volume, price)
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
            time_setup_msc=msc(moment),
            magic=int(request.get("magic", 0)),
            comment=str(request.get("comment", "")),
            type_filling=int(request.get("type_filling", 0)),
            type_time=int(request.get("type_time", 0)),
            state=state,
            time_done_msc=msc(moment),
            position_id=int(request.get("position", 0)),
        )
        self.history_orders.append(order)
        return order

    def apply_deal(
        self, request: dict[str, Any], moment: float, order: Order, volume: float, price: float
    ) -> int:
        """Book the deal of a filled `order`: it opens, adds to, reduces (a position it names
        on hedging, an opposite one on netting) or reverses a position; the deal's ticket."""
        symbol, side = request["symbol"], int(request["type"])
        if self.account.hedging:
            target = self.positions.get(int(request.get("position", 0) or 0))
            if target is None:
                return self._open(order, symbol, side, volume, price, moment, request)
            return self.reduce(target, order, volume, price, moment)
        existing = self.netted(symbol)
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
            time_msc=msc(moment),
            time_update_msc=msc(moment),
            magic=order.magic,
            comment=order.comment,
            identifier=order.ticket,
        )
        self.positions[position.ticket] = position
        order.position_id = position.ticket
        return self._deal(order, moment, side, K.DEAL_ENTRY_IN, position, volume, price)

    def _add(
        self, position: Position, order: Order, volume: float, price: float, moment: float
    ) -> int:
        total = position.volume + volume
        position.price_open = round(
            (position.price_open * position.volume + price * volume) / total,
            self.symbol(position.symbol).digits,
        )
        position.volume = round(total, 8)
        position.time_update_msc = msc(moment)
        order.position_id = position.ticket
        side = K.ORDER_TYPE_BUY if position.type == K.POSITION_TYPE_BUY else K.ORDER_TYPE_SELL
        return self._deal(order, moment, side, K.DEAL_ENTRY_IN, position, volume, price)

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
            return self.reduce(position, order, volume, price, moment)
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
        position.time_update_msc = msc(moment)
        # a reversal re-tickets the position with the reversing order; its identifier stays
        del self.positions[position.ticket]
        position.ticket = order.ticket
        self.positions[position.ticket] = position
        order.position_id = position.identifier
        return self._deal(order, moment, side, K.DEAL_ENTRY_INOUT, position, volume, price, profit)

    def reduce(
        self,
        position: Position,
        order: Order | None,
        volume: float,
        price: float,
        moment: float,
        reason: int = EXPERT,
        comment: str = "",
    ) -> int:
        """Close `volume` lots of `position` at `price` (all of them: the position is gone)
        with one DEAL_ENTRY_OUT deal, made by `order`, or when no client sent one (a stop-loss
        or take-profit firing: `reason`, `comment`) by an order the server makes itself."""
        spec = self.symbol(position.symbol)
        profit = round(
            self.profit_of(spec, position.type, volume, position.price_open, price, moment), 2
        )
        self._take_off(position, volume, moment, profit)
        side = _closing_side(position)
        if order is None:
            order = self._server_order(position, side, volume, price, moment, reason, comment)
        order.position_id = position.identifier or position.ticket
        return self._deal(order, moment, side, K.DEAL_ENTRY_OUT, position, volume, price, profit)

    def _take_off(self, position: Position, volume: float, moment: float, profit: float) -> None:
        """Book `profit` and take `volume` lots off `position` (gone once nothing is left);
        what stays keeps its ticket, open price and stops."""
        self.account.balance += profit
        position.volume = round(position.volume - volume, 8)
        position.time_update_msc = msc(moment)
        if position.volume <= 1e-9:
            del self.positions[position.ticket]

    def _server_order(
        self,
        position: Position,
        side: int,
        volume: float,
        price: float,
        moment: float,
        reason: int,
        comment: str,
    ) -> Order:
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
            time_setup_msc=msc(moment),
            magic=position.magic,
            comment=comment,
            state=K.ORDER_STATE_FILLED,
            time_done_msc=msc(moment),
            position_id=position.identifier or position.ticket,
            reason=reason,
        )
        self.history_orders.append(order)
        return order

    def _deal(
        self,
        order: Order,
        moment: float,
        side: int,
        entry: int,
        position: Position,
        volume: float,
        price: float,
        profit: float = 0.0,
    ) -> int:
        """A deal of `order`, with its reason, comment and magic: a close sent by another
        program carries that program's magic, a hand close 0, a stop-loss the position's, as
        a real server stamps them."""
        deal = Deal(
            ticket=self._ticket(),
            order=order.ticket,
            time_msc=msc(moment),
            type=K.DEAL_TYPE_BUY if side == K.ORDER_TYPE_BUY else K.DEAL_TYPE_SELL,
            entry=entry,
            magic=order.magic,
            position_id=position.identifier or position.ticket,
            reason=order.reason,
            volume=volume,
            price=price,
            profit=profit,
            symbol=position.symbol,
            comment=order.comment,
        )
        self.deals.append(deal)
        return deal.ticket

    # ------------------------------------------------------------ close by

    def _close_by(self, request: dict[str, Any], moment: float) -> Fill:
        """Close two opposite positions against each other: one ORDER_TYPE_CLOSE_BY order and
        a DEAL_ENTRY_OUT_BY deal for each position, both legs crossing at the opposite
        position's open price. The pair's result is the two open prices apart (one spread
        paid, not two) and lands on the first deal, as MT5 shows it in one deal; what is left
        of the bigger position stays open."""
        first, other = self.rules.close_by_pair(request)
        volume = min(first.volume, other.volume)
        price = other.price_open
        spec = self.symbol(first.symbol)
        profit = round(self.profit_of(spec, first.type, volume, first.price_open, price, moment), 2)
        order = self._close_by_order(request, first, other, volume, moment)
        deal = self._out_by(first, order, volume, moment, profit)
        self._out_by(other, order, volume, moment, 0.0)
        return Fill(K.TRADE_RETCODE_DONE, deal, order.ticket, volume, price)

    def _close_by_order(
        self,
        request: dict[str, Any],
        first: Position,
        other: Position,
        volume: float,
        moment: float,
    ) -> Order:
        order = Order(
            ticket=self._ticket(),
            symbol=first.symbol,
            type=K.ORDER_TYPE_CLOSE_BY,
            volume_initial=volume,
            volume_current=0.0,
            price_open=other.price_open,
            sl=0.0,
            tp=0.0,
            time_setup_msc=msc(moment),
            magic=int(request.get("magic", 0)),
            comment=f"#{first.ticket} by #{other.ticket}",  # MT5 names the pair here
            state=K.ORDER_STATE_FILLED,
            time_done_msc=msc(moment),
            position_id=first.identifier or first.ticket,
            position_by_id=other.identifier or other.ticket,
        )
        self.history_orders.append(order)
        return order

    def _out_by(
        self, position: Position, order: Order, volume: float, moment: float, profit: float
    ) -> int:
        self._take_off(position, volume, moment, profit)
        side = _closing_side(position)
        return self._deal(
            order, moment, side, K.DEAL_ENTRY_OUT_BY, position, volume, order.price_open, profit
        )

    # ------------------------------------------------------------ pending orders

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
            time_setup_msc=msc(moment),
            magic=int(request.get("magic", 0)),
            comment=str(request.get("comment", "")),
            type_filling=int(request.get("type_filling", 0)),
            type_time=int(request.get("type_time", 0)),
            time_expiration=int(request.get("expiration", 0)),
        )
        self.orders[order.ticket] = order
        return Fill(K.TRADE_RETCODE_PLACED, 0, order.ticket, order.volume_initial, order.price_open)

    def _modify_or_remove(self, request: dict[str, Any], moment: float) -> Fill:
        order = self.orders[int(request["order"])]
        if request["action"] == K.TRADE_ACTION_REMOVE:
            del self.orders[order.ticket]
            order.state, order.time_done_msc = K.ORDER_STATE_CANCELED, msc(moment)
            self.history_orders.append(order)
            return Fill(K.TRADE_RETCODE_DONE, 0, order.ticket, 0.0, 0.0)
        order.price_open = float(request.get("price") or order.price_open)
        order.sl, order.tp = float(request.get("sl") or 0), float(request.get("tp") or 0)
        order.type_time = int(request.get("type_time", 0))
        order.time_expiration = int(request.get("expiration", 0))
        return Fill(K.TRADE_RETCODE_DONE, 0, order.ticket, order.volume_current, order.price_open)

    # ------------------------------------------------------------ prices moving

    def process(self, moment: float) -> bool:
        """Fire what the price path reached up to `moment` (triggers.py); True when that
        changed anything."""
        return triggers.process(self, moment)

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


def _closing_side(position: Position) -> int:
    """The order type that closes `position`: a sell closes a buy, a buy a sell."""
    return K.ORDER_TYPE_SELL if position.type == K.POSITION_TYPE_BUY else K.ORDER_TYPE_BUY
