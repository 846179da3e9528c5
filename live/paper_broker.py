"""Dry-run broker: real prices and order_check from the terminal, fills simulated at bid/ask.

It sits inside the broker boundary (same interface as MT5Connector), so the executor and the
loop cannot tell a dry run from a live one. Virtual positions, their P/L and the paper balance
are rebuilt at start-up from `paper_fill` events in the audit log, so a restart keeps them.
Stop-loss and take-profit of virtual positions, and virtual limit and stop orders
(live/paper_orders.py), are filled on each new bar's intrabar path (backtest/fills.py), as in
the backtest and the simulator. A deal naming a position with a smaller volume closes part
of it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Unpack

from live.audit_logger import AuditLogger
from live.audit_schema import utc_now
from live.broker_types import (
    DEAL_ENTRY_IN,
    DEAL_ENTRY_OUT,
    DEAL_REASON_SL,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    ORDER_TYPE_BUY,
    POSITION_TYPE_BUY,
    POSITION_TYPE_SELL,
    RECORD_TYPES,
    RETCODE_DONE,
    STRUCT_FIELDS,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
    TRADE_ACTION_SLTP,
    TradeRequestFields,
    trade_request,
)
from live.errors import OrderRejected
from live.paper_orders import BarQuote, PaperOrders, stop_touch

logger = logging.getLogger(__name__)

PAPER_TICKET_BASE = 900_000_000
_EXPERT_REASON = 3


@dataclass(frozen=True)
class VirtualPosition:
    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    sl: float
    tp: float
    time: int
    magic: int
    comment: str


class PaperBroker:
    """Paper trading on top of a connected MT5Connector (prices, symbols, order_check)."""

    dry_run = True

    def __init__(
        self, connector: Any, audit: AuditLogger, *, now: Callable[[], datetime] = utc_now
    ) -> None:
        self.connector = connector
        self.audit = audit
        self._now = now
        self._positions: dict[int, VirtualPosition] = {}
        self.pending = PaperOrders(self, audit)
        self._deals: list[Any] = []
        self._balance: float | None = None
        self._next_ticket = PAPER_TICKET_BASE + 1
        self._checked_until: dict[int, int] = {}
        self._restore()

    # ------------------------------------------------------------ delegated market data

    def __getattr__(self, name: str) -> Any:
        # symbol_info, symbol_spec, tick, rates, filling_mode, confirm_filling, terminal, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.connector, name)

    # ------------------------------------------------------------ account and positions

    def account(self) -> Any:
        """The terminal's account with balance, equity, profit and margin of the paper book."""
        real = self.connector.account()
        if self._balance is None:
            self._start_balance(float(real.balance))
        profit = sum(self._floating(p) for p in self._positions.values())
        margin = sum(self._margin(p, real) for p in self._positions.values())
        equity = self._balance + profit
        return real._replace(
            balance=round(self._balance, 2),
            equity=round(equity, 2),
            profit=round(profit, 2),
            margin=round(margin, 2),
            margin_free=round(equity - margin, 2),
            margin_level=round(100 * equity / margin, 2) if margin else 0.0,
        )

    def positions(self, symbol: str | None = None) -> tuple[Any, ...]:
        return tuple(
            self._as_record(p)
            for p in self._positions.values()
            if symbol is None or p.symbol == symbol
        )

    def orders(self, symbol: str | None = None) -> tuple[Any, ...]:
        """The virtual pending orders (limit and stop entries waiting for their price)."""
        return self.pending.records(symbol)

    def deals_since(self, since: datetime) -> tuple[Any, ...]:
        cutoff = since.timestamp()
        return tuple(d for d in self._deals if d.time >= cutoff)

    def deals_for_position(self, position_ticket: int) -> tuple[Any, ...]:
        return tuple(d for d in self._deals if d.position_id == position_ticket)

    def deals_for_order(self, order_ticket: int) -> tuple[Any, ...]:
        return tuple(d for d in self._deals if d.order == order_ticket)

    # ------------------------------------------------------------ orders

    def check_order(self, **request: Unpack[TradeRequestFields]) -> Any:
        """order_check on the terminal; a close of a virtual position is checked without it."""
        checked = {k: v for k, v in trade_request(request).items() if k != "position"}
        return self.connector.check_order(**checked)

    def send_order(self, **fields: Unpack[TradeRequestFields]) -> Any:
        """Validate with order_check, then fill at the current bid/ask. Never reaches a broker."""
        request = trade_request(fields)
        action = request.get("action")
        if action == TRADE_ACTION_SLTP:
            return self._move_stops(request)
        if action == TRADE_ACTION_REMOVE:
            return self.pending.remove(request)
        self.check_order(**request)
        if action == TRADE_ACTION_PENDING:
            return self.pending.place(request, self.connector.tick(request["symbol"]))
        tick = self.connector.tick(request["symbol"])
        buying = request["type"] == ORDER_TYPE_BUY
        price = float(tick.ask if buying else tick.bid)
        ticket = request.get("position")
        if ticket:
            position = self._positions.get(int(ticket))
            if position is None:
                raise OrderRejected(
                    f"paper position {ticket} does not exist (already closed)", code=10036
                )
            volume = float(request["volume"])
            if volume > position.volume + 1e-9:
                raise OrderRejected(
                    f"close volume {volume} exceeds paper position {ticket}'s {position.volume}",
                    code=10038,
                )
            deal = self._close(
                int(ticket),
                price,
                reason=_EXPERT_REASON,
                comment=request.get("comment", ""),
                volume=volume,
            )
        else:
            deal = self.open_position(request, price, int(tick.time))
        return self._send_result(request, deal, tick)

    def _move_stops(self, request: Mapping[str, Any]) -> Any:
        """A stop change of a virtual position, recorded as a paper fill of its own."""
        ticket = int(request["position"])
        position = self._positions.get(ticket)
        if position is None:
            raise OrderRejected(f"paper position {ticket} does not exist", code=10036)
        moved = replace(
            position, sl=float(request.get("sl") or 0), tp=float(request.get("tp") or 0)
        )
        self._persist("stops", position=moved, deal=None)
        self._positions[ticket] = moved
        tick = self.connector.tick(position.symbol)
        return RECORD_TYPES["OrderSendResult"](
            **{
                **dict.fromkeys(STRUCT_FIELDS["OrderSendResult"], 0),
                "retcode": RETCODE_DONE,
                "bid": float(tick.bid),
                "ask": float(tick.ask),
                "comment": "Request executed",
                "request": None,
            }
        )

    def update_stops(self, timeframe: str, bar_seconds: int) -> list[int]:
        """Fill the virtual pending orders and close the virtual positions that the closed
        bars since reached, on each bar's path (backtest/fills.py); the tickets closed.

        Bars are checked once each, from the bar containing the entry (or the order); a bar
        opening beyond a level fills at its open.
        """
        self.pending.trigger(timeframe, bar_seconds)
        closed = []
        for position in list(self._positions.values()):
            if not (position.sl or position.tp):
                continue
            bars = self.new_bars(
                position.ticket, position.symbol, position.time, timeframe, bar_seconds
            )
            for bar, _start in bars:
                if self.stops_on(position, bar):
                    closed.append(position.ticket)
                    break
        return closed

    # ------------------------------------------------------------ internals

    def new_bars(
        self, key: int, symbol: str, since: int, timeframe: str, bar_seconds: int
    ) -> list[tuple[BarQuote, int]]:
        """The closed bars from the one containing `since` that `key` has not seen yet."""
        bars = self.connector.rates(symbol, timeframe, 5)
        point = self.connector.symbol_spec(symbol).point
        checked = self._checked_until.get(key, since - bar_seconds)
        found = []
        for bar in bars.itertuples(index=False):
            start = int(bar.time.timestamp())
            if start + bar_seconds <= since or start <= checked:
                continue
            self._checked_until[key] = start
            spread = float(bar.spread) * point  # bars are bid prices; the ask is above
            quote = BarQuote(bar.open, bar.high, bar.low, bar.close, spread, start, bar_seconds)
            found.append((quote, start))
        return found

    def stops_on(self, position: VirtualPosition, bar: BarQuote, start: float = 0.0) -> bool:
        """Close `position` when its SL or TP is on the bar's path from `start`."""
        hit = stop_touch(position.type == POSITION_TYPE_BUY, position.sl, position.tp, bar, start)
        if hit is None:
            return False
        tau, price, reason = hit
        label = "sl" if reason == DEAL_REASON_SL else "tp"
        self._close(
            position.ticket,
            price,
            reason=reason,
            comment=f"[{label} {price}]",
            when=bar.time_at(tau),
        )
        return True

    def open_position(
        self, request: Mapping[str, Any], price: float, when: int, *, ticket: int = 0
    ) -> Any:
        """A virtual position (a pending order's fill keeps the order's ticket, as MT5's
        position identifier is the ticket of the order that opened it)."""
        ticket = ticket or self._next_ticket
        position = VirtualPosition(
            ticket=ticket,
            symbol=request["symbol"],
            type=POSITION_TYPE_BUY if request["type"] == ORDER_TYPE_BUY else POSITION_TYPE_SELL,
            volume=float(request["volume"]),
            price_open=price,
            sl=float(request.get("sl") or 0),
            tp=float(request.get("tp") or 0),
            time=when,
            magic=int(request.get("magic", 0)),
            comment=request.get("comment", ""),
        )
        deal = self._deal(
            position, DEAL_ENTRY_IN, price, 0.0, _EXPERT_REASON, position.comment, when
        )
        self._persist("open", position=position, deal=deal)
        self._apply_open(position, deal)
        return deal

    def _close(
        self,
        ticket: int,
        price: float,
        *,
        reason: int,
        comment: str,
        volume: float = 0.0,
        when: int | None = None,
    ) -> Any:
        """Close a virtual position, or `volume` of it when that is less (at `when`, the
        moment on a bar's path a stop filled; now by default)."""
        position = self._positions[ticket]
        part = volume and volume < position.volume - 1e-9
        closed = replace(position, volume=volume) if part else position
        profit = round(self._profit(closed, price), 2)
        deal = self._deal(closed, DEAL_ENTRY_OUT, price, profit, reason, comment, when)
        if part:
            left = replace(position, volume=round(position.volume - volume, 8))
            self._persist("partial", position=left, deal=deal)
            self._apply_partial(left, deal)
        else:
            self._persist("close", position=position, deal=deal)
            self._apply_close(ticket, deal)
        return deal

    def _apply_partial(self, left: VirtualPosition, deal: Any) -> None:
        self._positions[left.ticket] = left
        self._deals.append(deal)
        self._balance = round((self._balance or 0.0) + float(deal.profit), 2)
        self._next_ticket = max(self._next_ticket, deal.ticket + 1)

    def _deal(
        self,
        position: VirtualPosition,
        entry: int,
        price: float,
        profit: float,
        reason: int,
        comment: str,
        when: int | None = None,
    ) -> Any:
        opening = entry == DEAL_ENTRY_IN
        buy = (position.type == POSITION_TYPE_BUY) == opening
        now = int(self._now().timestamp()) if when is None else int(when)
        fields = dict.fromkeys(STRUCT_FIELDS["TradeDeal"], 0)
        fields.update(
            ticket=self._next_ticket if opening else self._next_ticket + 1,
            order=position.ticket if opening else 0,  # the order that opened it: its ticket
            time=now,
            time_msc=now * 1000,
            type=DEAL_TYPE_BUY if buy else DEAL_TYPE_SELL,
            entry=entry,
            magic=position.magic,
            position_id=position.ticket,
            reason=reason,
            volume=position.volume,
            price=price,
            commission=0.0,
            swap=0.0,
            profit=profit,
            fee=0.0,
            symbol=position.symbol,
            comment=comment,
            external_id="",
        )
        return RECORD_TYPES["TradeDeal"](**fields)

    def take_ticket(self) -> int:
        """A new ticket for a virtual order (positions take theirs as they open)."""
        ticket = self._next_ticket
        self._next_ticket += 1
        return ticket

    def position(self, ticket: int) -> VirtualPosition:
        return self._positions[ticket]

    def seen_until(self, ticket: int, bar_start: int) -> None:
        """Bars up to `bar_start` are checked for this ticket's stops already."""
        self._checked_until[ticket] = bar_start

    def _apply_open(self, position: VirtualPosition, deal: Any) -> None:
        self._positions[position.ticket] = position
        self._deals.append(deal)
        self._next_ticket = max(self._next_ticket, position.ticket + 1, deal.ticket + 1)

    def _apply_close(self, ticket: int, deal: Any) -> None:
        self._positions.pop(ticket, None)
        self._deals.append(deal)
        # money in cents, as an account holds it: no 9998.760000000004 after many fills
        self._balance = round((self._balance or 0.0) + float(deal.profit), 2)
        self._next_ticket = max(self._next_ticket, deal.ticket + 1)

    def _persist(self, action: str, *, position: VirtualPosition, deal: Any | None) -> None:
        """The paper fill is the paper book's record: a close may wait in the fallback journal
        while the audit database cannot be written (exits never wait for the disk)."""
        self.audit.record_event(
            "paper_fill",
            f"paper {action} {position.symbol} #{position.ticket} "
            + (f"at {deal.price}" if deal is not None else f"SL {position.sl} TP {position.tp}"),
            symbol=position.symbol,
            data={
                "action": action,
                "position": position.__dict__,
                "deal": deal._asdict() if deal is not None else None,
            },
            fallback=action != "open",
        )

    def _restore(self) -> None:
        start = self.audit.reader.last_event("paper_account")
        if start is not None:
            self._balance = float(json.loads(start["data"])["balance"])
        for order in self.pending.restore(self.audit.reader.events_of_kind("paper_order")):
            self._next_ticket = max(self._next_ticket, order.ticket + 1)
        for row in self.audit.reader.events_of_kind("paper_fill"):
            data = json.loads(row["data"])
            position = VirtualPosition(**data["position"])
            if data["action"] == "stops":
                self._positions[position.ticket] = position
                continue
            deal = RECORD_TYPES["TradeDeal"](**data["deal"])
            if data["action"] == "open":
                self._apply_open(position, deal)
            elif data["action"] == "partial":
                self._apply_partial(position, deal)
            else:
                self._apply_close(position.ticket, deal)
        if self._positions or self._deals:
            logger.info(
                "paper book restored: %d open virtual positions, paper balance %s (the "
                "terminal's own account is not traded in dry-run)",
                len(self._positions),
                "not known yet" if self._balance is None else f"{self._balance:.2f}",
            )

    def _start_balance(self, balance: float) -> None:
        self.audit.record_event(
            "paper_account", f"paper account starts at {balance:,.2f}", data={"balance": balance}
        )
        self._balance = balance

    def _floating(self, position: VirtualPosition) -> float:
        tick = self.connector.tick(position.symbol)
        price = tick.bid if position.type == POSITION_TYPE_BUY else tick.ask
        return self._profit(position, float(price))

    def _profit(self, position: VirtualPosition, price: float) -> float:
        spec = self.connector.symbol_spec(position.symbol)
        sign = 1 if position.type == POSITION_TYPE_BUY else -1
        move = sign * (price - position.price_open) * position.volume * spec.contract_size
        return spec.profit_to_account(move, price, self._account_currency())

    def _margin(self, position: VirtualPosition, account: Any) -> float:
        spec = self.connector.symbol_spec(position.symbol)
        leverage = max(int(account.leverage or 1), 1)
        if spec.currency_base == account.currency:
            return position.volume * spec.contract_size / leverage
        notional = position.volume * spec.contract_size * position.price_open
        return spec.profit_to_account(notional, position.price_open, account.currency) / leverage

    def _account_currency(self) -> str:
        return str(self.connector.account().currency)

    def _as_record(self, position: VirtualPosition) -> Any:
        fields = dict.fromkeys(STRUCT_FIELDS["TradePosition"], 0)
        tick = self.connector.tick(position.symbol)
        current = tick.bid if position.type == POSITION_TYPE_BUY else tick.ask
        fields.update(
            ticket=position.ticket,
            time=position.time,
            time_msc=position.time * 1000,
            time_update=position.time,
            time_update_msc=position.time * 1000,
            type=position.type,
            magic=position.magic,
            identifier=position.ticket,
            reason=_EXPERT_REASON,
            volume=position.volume,
            price_open=position.price_open,
            sl=position.sl,
            tp=position.tp,
            price_current=float(current),
            swap=0.0,
            profit=round(self._profit(position, float(current)), 2),
            symbol=position.symbol,
            comment=position.comment,
            external_id="",
        )
        return RECORD_TYPES["TradePosition"](**fields)

    def _send_result(self, request: Mapping[str, Any], deal: Any, tick: Any) -> Any:
        request_fields = dict.fromkeys(STRUCT_FIELDS["TradeRequest"], 0)
        request_fields.update({k: v for k, v in request.items() if k in request_fields})
        for text_field in ("symbol", "comment"):
            request_fields[text_field] = request.get(text_field, "")
        return RECORD_TYPES["OrderSendResult"](
            retcode=RETCODE_DONE,
            deal=deal.ticket,
            order=deal.position_id if deal.entry == DEAL_ENTRY_IN else deal.ticket,
            volume=deal.volume,
            price=deal.price,
            bid=float(tick.bid),
            ask=float(tick.ask),
            comment="Request executed (dry run)",
            request_id=0,
            retcode_external=0,
            request=RECORD_TYPES["TradeRequest"](**request_fields),
        )
