"""Entries: the order that opens the strategy's target on a symbol, with a write-ahead client
id. A market order (sized as the backtest sizes it, gated by the risk gate, pre-checked and
order_check'ed), or a pending limit or stop order at the strategy's price that expires after
its bars (the symbol's own expiration when it allows one; the trader removes it otherwise).
A pending order whose price the market has already passed is sent as a market order: the
backtest fills such an entry at the open, as a gap does.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Any

from live.audit_health import AuditHealth
from live.audit_logger import AuditLogger
from live.audit_schema import FILLED_ORDER_STATUSES
from live.backtesting_bridge import BacktestingBridge, Decision
from live.broker_types import (
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_BUY_STOP,
    ORDER_TYPE_SELL_LIMIT,
    ORDER_TYPE_SELL_STOP,
    SYMBOL_EXPIRATION_SPECIFIED,
    TRADE_ACTION_PENDING,
)
from live.config import LiveConfig
from live.errors import OrderRejected
from live.market_clock import MarketClock
from live.order_executor import ExecutionResult, OrderExecutor, OrderIntent, make_client_order_id
from live.order_requests import (
    PrecheckFailed,
    build_order_request,
    estimated_margin,
    simulate_precheck,
    stop_levels,
)
from live.reconciler import Action, Why
from live.risk_gate import RiskGate
from live.state_manager import StateManager
from live.status import SessionSummary

logger = logging.getLogger(__name__)

LIMIT, STOP = 1, 2  # entry_type codes of backtest/signals.py
PENDING_TYPES = {
    (LIMIT, 1): ORDER_TYPE_BUY_LIMIT,
    (LIMIT, -1): ORDER_TYPE_SELL_LIMIT,
    (STOP, 1): ORDER_TYPE_BUY_STOP,
    (STOP, -1): ORDER_TYPE_SELL_STOP,
}
# statuses after which an entry is not sent again: filled, or waiting at the broker
DONE_ENTRY_STATUSES = FILLED_ORDER_STATUSES | {"placed", "expired"}


class EntryDesk:
    """Sends the entry of a decision's target, once per entry bar."""

    def __init__(
        self,
        config: LiveConfig,
        *,
        broker: Any,
        executor: OrderExecutor,
        bridge: BacktestingBridge,
        label: str,
        state: StateManager,
        risk: RiskGate,
        audit: AuditLogger,
        health: AuditHealth,
        clock: MarketClock,
        summary: SessionSummary,
        alerts: Any,
        on_filled: Any,
        bar_seconds: int,
    ) -> None:
        self.config = config
        self.broker = broker
        self.executor = executor
        self.bridge = bridge
        self.label = label
        self.state = state
        self.risk = risk
        self.audit = audit
        self._health = health
        self.clock = clock
        self.summary = summary
        self.alerts = alerts
        self._on_filled = on_filled
        self._bar_seconds = bar_seconds
        self._skips_told: set[tuple[str, Any]] = set()

    def open_id(self, decision: Decision) -> str:
        """The client id of the entry of the decision's target (the same on every loop and
        after a restart, so it is sent once)."""
        entered = decision.entry_bar or decision.bar_time
        return make_client_order_id(self.label, decision.symbol, entered, f"open_{decision.side}")

    def enter(self, decision: Decision, action: Action) -> tuple[str, str, str]:
        """Send the entry; (action name, outcome, client id) for the signal row."""
        cid = self.open_id(decision)
        name = f"open_{decision.side}"
        if self._already_sent(cid):
            return name, "already_executed", cid
        blocker = self.risk.entry_blocker()
        if blocker:
            self.summary.refused += 1
            logger.info(
                "%s%s entry refused: %s",
                self.clock.stamp(),
                decision.symbol,
                blocker,
                extra={"symbol": decision.symbol},
            )
            return name, f"refused: {blocker}", cid
        try:
            request, kind, full = self._request(decision, cid)
        except PrecheckFailed as exc:
            self.summary.refused += 1
            logger.warning(
                "%s entry refused: %s", decision.symbol, exc, extra={"symbol": decision.symbol}
            )
            return name, f"refused: {exc}", cid
        reason = f"{self.label} bar {decision.bar_time.isoformat()}"
        if action.why is Why.CHASED_ENTRY:
            reason = f"{reason}: {Why.CHASED_ENTRY.value} from {decision.entry_bar}"
        if decision.manage.entry_size < 1.0:  # partial exits and scale-ins are fractions of it
            reason = f"{reason}; full volume {full:g} lots"
        result = self.executor.execute_order(
            OrderIntent(
                client_order_id=cid,
                symbol=decision.symbol,
                side=decision.side or "",
                volume=request["volume"],
                kind=kind,
                request=request,
                reason=reason,
            )
        )
        return name, self._outcome(result), cid

    def _already_sent(self, cid: str) -> bool:
        row = self.audit.latest_order(cid)
        return row is not None and row["status"] in DONE_ENTRY_STATUSES

    def tell_skip(self, decision: Decision) -> None:
        """A missed entry not chased: said once per entry bar, unless it was tried (and its
        outcome recorded) already."""
        key = (decision.symbol, decision.entry_bar)
        if key in self._skips_told or decision.entry_bar is None:
            return
        self._skips_told.add(key)
        if self.audit.latest_order(self.open_id(decision)) is not None:
            return
        self._health.event(
            "entry_not_chased",
            f"{decision.symbol}: the strategy entered {decision.side} on the bar of "
            f"{decision.entry_bar.isoformat()}, which this trader did not trade (it was down or "
            f"the entry was refused); not chased at a later price (ENTRY_CHASE_BARS="
            f"{self.config.entry_chase_bars})",
            "warning",
            symbol=decision.symbol,
            entry_bar=decision.entry_bar.isoformat(),
            direction=decision.position,
        )

    # ------------------------------------------------------------ the request

    def _request(self, decision: Decision, cid: str) -> tuple[dict[str, Any], str, float]:
        """The entry's request, its kind ("pending" for a limit or stop order still on the
        right side of the market, else "open": a market order) and the full volume its
        size is a fraction of."""
        symbol, buying = decision.symbol, decision.position > 0
        broker = self.broker
        tick, spec, account = broker.tick(symbol), broker.symbol_spec(symbol), broker.account()
        market = float(tick.ask if buying else tick.bid)
        manage = decision.manage
        pending = manage.pending and _waits(manage.entry_type, decision.position, manage, market)
        price = spec.round_price(manage.entry_price) if pending else market
        sl, tp = stop_levels(decision, spec, price)
        volume = self.bridge.position_size(
            spec=spec,
            equity=float(account.equity),
            entry_price=price,
            sl=sl,
            account_currency=account.currency,
        )
        full = volume  # the size fraction is of this: recorded with the entry
        volume = spec.floor_volume(volume * manage.entry_size)
        if volume < spec.volume_min:
            raise PrecheckFailed(
                f"{symbol}: size {manage.entry_size} of the volume is below volume_min "
                f"{spec.volume_min}"
            )
        request = build_order_request(
            symbol=symbol,
            side=decision.side or "",
            volume=volume,
            price=price,
            spec=spec,
            magic=self.config.magic_number,
            comment=cid,
            deviation=self.config.deviation_points,
            filling=broker.filling_mode(symbol),
            sl=sl,
            tp=tp,
        )
        margin = estimated_margin(volume, price, spec, account)
        refusal = self.state.entry_refusal(symbol, volume, margin, account)
        refusal = refusal or self.rules_refusal(request, account, tick)
        if refusal:
            raise PrecheckFailed(refusal)
        if pending:
            self._make_pending(request, decision, symbol)
            return request, "pending", full
        simulate_precheck(
            request,
            spec=spec,
            symbol_info=broker.symbol_info(symbol),
            tick=tick,
            account=account,
            now=self.clock.now(),
            max_tick_age_s=max(3.0 * self._bar_seconds, 900.0),
        )
        request["type_filling"] = broker.confirm_filling(request)
        try:
            broker.check_order(**request)
        except OrderRejected as exc:
            raise PrecheckFailed(f"order_check: {exc}", code=exc.code) from None
        return request, "open", full

    def rules_refusal(self, request: dict[str, Any], account: Any, tick: Any) -> str | None:
        """The account rules' check of an entry or a scale-in (`request`: its type, symbol,
        volume, price and sl): the exposure limits, and the floors if this entry's stop
        and every open position's stop were all hit (a position without a stop counts at its
        current price: its loss cannot be bounded). A stopless entry still costs its spread
        at once: that counts as its risk."""
        guard = self.risk.guard
        if guard is None:
            return None
        side, symbol, volume, price = (request[k] for k in ("type", "symbol", "volume", "price"))
        sl = float(request.get("sl") or 0.0)
        new_risk, spread = None, 0.0
        if sl:  # its loss at the stop includes the spread
            new_risk = self._loss_at_stop(side, symbol, volume, price, sl)
        else:
            exit_now = tick.bid if side == 0 else tick.ask
            spread = self._loss_at_stop(side, symbol, volume, price, exit_now)
        open_risk = sum(
            self._loss_at_stop(p.type, p.symbol, p.volume, p.price_current, p.sl)
            for p in self.state.positions.values()
            if float(p.sl)
        )
        return guard.entry_refusal(
            new_risk=new_risk,
            open_risk=open_risk + spread,
            equity=float(account.equity),
            lots=float(request["volume"]),
            open_lots=self.state.total_lots,
        )

    def _loss_at_stop(
        self, side: int, symbol: str, volume: float, price: float, sl: float
    ) -> float:
        """The money lost from `price` to the stop `sl` (0 for a stop on the winning side);
        `side` 0 buy, 1 sell, as order and position types both number them."""
        profit = self.broker.calc_profit(int(side) % 2, symbol, float(volume), float(price), sl)
        return max(0.0, -profit)

    def _make_pending(self, request: dict[str, Any], decision: Decision, symbol: str) -> None:
        """Turn a market request into the pending limit or stop order of the decision, with
        its expiry as the symbol allows it."""
        manage = decision.manage
        request["action"] = TRADE_ACTION_PENDING
        request["type"] = PENDING_TYPES[(manage.entry_type, decision.position)]
        request.pop("deviation", None)
        expires = pending_expiry(decision, self._bar_seconds)
        modes = int(getattr(self.broker.symbol_info(symbol), "expiration_mode", 0) or 0)
        if expires is not None and modes & SYMBOL_EXPIRATION_SPECIFIED:
            request["type_time"] = ORDER_TIME_SPECIFIED
            request["expiration"] = int(expires.timestamp())
        else:  # GTC; the trader removes it when its bars have passed (PositionManager)
            request["type_time"] = ORDER_TIME_GTC

    def _outcome(self, result: ExecutionResult) -> str:
        if result.filled:
            if not result.duplicate:
                self.summary.entries += 1
                logger.info(
                    "%s%s opened %s %s lots at %s (%s)",
                    self.clock.stamp(),
                    result.symbol,
                    result.side,
                    result.volume,
                    result.price,
                    result.client_order_id,
                    extra={"symbol": result.symbol, "client_order_id": result.client_order_id},
                )
                self.alerts.notify(
                    "trade_opened",
                    f"opened {result.symbol} {result.side} {result.volume} lots at {result.price}",
                    symbol=result.symbol,
                )
            self._on_filled()
            return "executed" if not result.duplicate else "already_executed"
        if result.status == "placed":  # a pending order: adopted with the positions on a fill
            logger.info(
                "%s%s order %s is pending at the broker",
                self.clock.stamp(),
                result.symbol,
                result.client_order_id,
                extra={"symbol": result.symbol},
            )
            self._on_filled()
            return "placed"
        self.summary.refused += 1
        self.alerts.notify(
            "order_failed",
            f"{result.symbol} {result.side} order {result.status}: {result.message}",
            severity="error",
            symbol=result.symbol,
        )
        return f"{result.status}: {result.message}"


def pending_expired(decision: Decision) -> bool:
    """Whether a pending entry's bars have passed: it may fill on the `expiry_bars` bars
    after its entry bar and is removed once the last of them has closed (bars, not hours:
    a weekend does not count, as in the backtest)."""
    bars = decision.manage.expiry_bars
    if not math.isfinite(bars) or decision.entry_bar is None:
        return False
    return decision.bars_held_since(decision.entry_bar.timestamp()) > bars


def pending_expiry(decision: Decision, bar_seconds: int) -> Any:
    """The server-side expiry of a pending entry: a backstop for a trader that is down (the
    trader removes it itself after its bars, `pending_expired`). The bars' span in hours,
    two days more when it crosses a weekend, so it never ends before its last bar; None
    when the entry waits until the target changes."""
    bars = decision.manage.expiry_bars
    if not math.isfinite(bars) or decision.entry_bar is None:
        return None
    start = decision.entry_bar
    end = start + timedelta(seconds=(int(bars) + 1) * bar_seconds)
    days = (end.date() - start.date()).days + 1
    weekend = any((start + timedelta(days=d)).weekday() >= 5 for d in range(days))
    return end + timedelta(days=2) if weekend else end


def _waits(entry_type: int, direction: int, manage: Any, market: float) -> bool:
    """Whether a limit or stop price is still on its side of the market (else the market
    has passed it: the entry fills now, at the market)."""
    price = manage.entry_price
    if not math.isfinite(price):
        return False
    below = price < market
    return below if (entry_type == LIMIT) == (direction > 0) else price > market
