"""The position manager: carries out the reconciler's actions for one symbol through the
executor, each with a write-ahead client id: entries (sized as the backtest sizes them, gated
by the risk gate, pre-checked and order_check'ed), closes (never held back by the disk), and
the kill switch's close_all. It tells what it did as the signal row's action and outcome.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backtest.strategy import Strategy
from live.audit_health import AuditHealth
from live.audit_logger import AuditLogger
from live.audit_schema import FILLED_ORDER_STATUSES
from live.backtesting_bridge import (
    BacktestingBridge,
    Decision,
    PrecheckFailed,
    build_close_request,
    build_order_request,
    build_stops_request,
    estimated_margin,
    simulate_precheck,
    stop_levels,
    stops_blocker,
)
from live.broker_types import POSITION_TYPE_BUY, TRADE_ACTION_REMOVE
from live.config import LiveConfig
from live.errors import AuditWriteError, OrderRejected
from live.market_clock import MarketClock
from live.order_executor import ExecutionResult, OrderExecutor, OrderIntent, make_client_order_id
from live.reconciler import (
    CANCEL,
    CLOSE,
    OPEN,
    Action,
    ChaseRule,
    Holding,
    Market,
    Stops,
    Why,
    plan,
    stop_changes,
)
from live.risk_gate import RiskGate
from live.state_manager import StateManager
from live.status import SessionSummary
from live.target_book import target_of
from live.trade_ledger import TradeLedger

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one reconciliation did, for the signal row: action, outcome and client id."""

    action: str
    outcome: str
    client_order_id: str | None = None


class PositionManager:
    """Brings the broker's positions of one trader to the strategy's targets."""

    def __init__(
        self,
        config: LiveConfig,
        *,
        broker: Any,
        executor: OrderExecutor,
        bridge: BacktestingBridge,
        strategy: Strategy,
        state: StateManager,
        risk: RiskGate,
        ledger: TradeLedger,
        audit: AuditLogger,
        health: AuditHealth,
        clock: MarketClock,
        summary: SessionSummary,
        alerts: Any,
        on_change: Callable[[], None],
        bar_seconds: int,
    ) -> None:
        self.config = config
        self.broker = broker
        self.executor = executor
        self.bridge = bridge
        self.label = strategy.label()
        self.state = state
        self.risk = risk
        self.ledger = ledger
        self.audit = audit
        self._health = health
        self.clock = clock
        self.summary = summary
        self.alerts = alerts
        self._changed = on_change
        self._bar_seconds = bar_seconds
        self._chase = ChaseRule(config.entry_chase_bars, config.entry_chase_max_points)
        self._skips_told: set[tuple[str, datetime | None]] = set()
        self._stops_of_entry: dict[int, Stops | None] = {}
        self._stops_sent: dict[int, float] = {}  # ticket -> wall time of the last change

    # ------------------------------------------------------------ one symbol

    def reconcile(self, decision: Decision, *, fresh: bool) -> Outcome:
        """Bring the symbol's positions to the decision's target; what was done."""
        target = target_of(decision)
        holdings = [
            Holding(int(p.ticket), _direction(p), float(p.volume), float(p.sl), float(p.tp))
            for p in self.state.positions_for(decision.symbol)
        ]
        pending = [
            Holding(int(o.ticket), _order_direction(o), float(o.volume_current))
            for o in self.state.pending_for(decision.symbol)
        ]
        market = self._market(decision) if self._chase.bars else None
        actions = plan(
            target, holdings, fresh=fresh, chase=self._chase, market=market, pending=pending
        )
        for action in actions:
            if action.kind == CANCEL:
                self._cancel(decision, action)
        closes = [a for a in actions if a.kind == CLOSE]
        results = [self._close(decision, action) for action in closes]
        closing = {a.ticket for a in closes}
        self._keep_stops(decision, [h for h in holdings if h.ticket not in closing])
        opening = next((a for a in actions if a.kind == OPEN), None)
        if opening is not None and all(r.filled or r.status == "not_needed" for r in results):
            return self._enter(decision, opening)
        if any(a.kind not in (OPEN, CLOSE) for a in actions):
            self._tell_skip(decision)
        return self._close_outcome(decision, results, holdings, fresh=fresh)

    def _close_outcome(
        self,
        decision: Decision,
        results: list[ExecutionResult],
        held: list[Holding],
        *,
        fresh: bool,
    ) -> Outcome:
        if decision.act and fresh:
            if decision.position and held and not results:
                return Outcome(f"open_{decision.side}", "already_in_position")
            if not decision.position:
                return Outcome("close", "executed" if results else "flat_already")
        if not results:
            return Outcome("none", "no_action")
        done = sum(r.filled or r.status == "not_needed" for r in results)
        if decision.act and fresh:
            return Outcome("close", "executed" if done == len(results) else "exit failed")
        return Outcome("close", f"exit_retried: {done}/{len(results)} closed")

    def _market(self, decision: Decision) -> Market:
        if decision.entry_bar is None:
            return Market(0, math.nan)
        bars = int((decision.bar_time - decision.entry_bar).total_seconds() // self._bar_seconds)
        try:
            tick, spec = self.broker.tick(decision.symbol), self.broker.symbol_spec(decision.symbol)
        except Exception:  # no price: no chase (the rule needs one)
            return Market(bars, math.nan)
        price = float(tick.ask if decision.position > 0 else tick.bid)
        return Market(bars, abs(price - decision.entry_close) / spec.point)

    def _tell_skip(self, decision: Decision) -> None:
        """A missed entry not chased: said once per entry bar, unless it was tried (and its
        outcome recorded) already."""
        key = (decision.symbol, decision.entry_bar)
        if key in self._skips_told or decision.entry_bar is None:
            return
        self._skips_told.add(key)
        if self.audit.latest_order(self._open_id(decision)) is not None:
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

    # ------------------------------------------------------------ entries

    def _open_id(self, decision: Decision) -> str:
        entered = decision.entry_bar or decision.bar_time
        return make_client_order_id(self.label, decision.symbol, entered, f"open_{decision.side}")

    def _enter(self, decision: Decision, action: Action) -> Outcome:
        cid = self._open_id(decision)
        name = f"open_{decision.side}"
        if self._already_opened(cid):
            return Outcome(name, "already_executed", cid)
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
            return Outcome(name, f"refused: {blocker}", cid)
        try:
            request = self._entry_request(decision, cid)
        except PrecheckFailed as exc:
            self.summary.refused += 1
            logger.warning(
                "%s entry refused: %s", decision.symbol, exc, extra={"symbol": decision.symbol}
            )
            return Outcome(name, f"refused: {exc}", cid)
        reason = f"{self.label} bar {decision.bar_time.isoformat()}"
        if action.why is Why.CHASED_ENTRY:
            reason = f"{reason}: {Why.CHASED_ENTRY.value} from {decision.entry_bar}"
        result = self.executor.execute_order(
            OrderIntent(
                client_order_id=cid,
                symbol=decision.symbol,
                side=decision.side or "",
                volume=request["volume"],
                kind="open",
                request=request,
                reason=reason,
            )
        )
        return Outcome(name, self._entry_outcome(result), cid)

    def _already_opened(self, cid: str) -> bool:
        row = self.audit.latest_order(cid)
        return row is not None and row["status"] in FILLED_ORDER_STATUSES

    def _entry_request(self, decision: Decision, cid: str) -> dict[str, Any]:
        symbol, buying = decision.symbol, decision.position > 0
        broker = self.broker
        tick, spec, account = broker.tick(symbol), broker.symbol_spec(symbol), broker.account()
        price = float(tick.ask if buying else tick.bid)
        sl, tp = stop_levels(decision, spec, price)
        volume = self.bridge.position_size(
            spec=spec,
            equity=float(account.equity),
            entry_price=price,
            sl=sl,
            account_currency=account.currency,
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
        if refusal:
            raise PrecheckFailed(refusal)
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
        return request

    def _entry_outcome(self, result: ExecutionResult) -> str:
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
            self.state.sync_positions(self.broker.positions())
            self._changed()
            return "executed" if not result.duplicate else "already_executed"
        if result.status == "placed":  # accepted, fills later: adopted with the positions
            logger.info(
                "%s order %s is pending at the broker",
                result.symbol,
                result.client_order_id,
                extra={"symbol": result.symbol},
            )
            return "placed"
        self.summary.refused += 1
        self.alerts.notify(
            "order_failed",
            f"{result.symbol} {result.side} order {result.status}: {result.message}",
            severity="error",
            symbol=result.symbol,
        )
        return f"{result.status}: {result.message}"

    # ------------------------------------------------------------ stops

    def _keep_stops(self, decision: Decision, holdings: list[Holding]) -> None:
        """Send a position's entry stops again where the broker's differ (a server that
        filled the entry without them, a change by hand): at most one change per position
        every STOPS_MIN_SECONDS, never when the server would refuse it now."""
        if not holdings:
            return
        spec = self.broker.symbol_spec(decision.symbol)
        wanted = {h.ticket: stops for h in holdings if (stops := self._entry_stops(h.ticket))}
        min_step = self.config.stops_min_step_points * spec.point
        for action in stop_changes(holdings, wanted, min_step=min_step):
            wall, last = self.clock.wall(), self._stops_sent.get(action.ticket, -math.inf)
            if wall - last < self.config.stops_min_seconds:
                continue
            self._stops_sent[action.ticket] = wall
            self._move_stops(decision, action, spec)

    def _entry_stops(self, ticket: int) -> Stops | None:
        """The stops the position's entry set (None: it set none, or it is not ours)."""
        if ticket not in self._stops_of_entry:
            found = self.audit.reader.entry_stops(ticket)
            self._stops_of_entry[ticket] = Stops(*found) if found and any(found) else None
        return self._stops_of_entry[ticket]

    def _move_stops(self, decision: Decision, action: Action, spec: Any) -> None:
        position, stops = self.state.positions[action.ticket], action.stops
        if stops is None:  # a MODIFY action always carries its stops
            return
        info = self.broker.symbol_info(position.symbol)
        blocker = stops_blocker(
            position,
            stops.sl,
            stops.tp,
            spec=spec,
            tick=self.broker.tick(position.symbol),
            freeze_level=int(info.trade_freeze_level),
        )
        if blocker:
            logger.info("%s #%s stops not moved now: %s", position.symbol, position.ticket, blocker)
            return
        cid = make_client_order_id(
            "stops", position.symbol, decision.bar_time, f"sltp_{position.ticket}_{stops}"
        )
        request = build_stops_request(
            position=position,
            sl=stops.sl,
            tp=stops.tp,
            spec=spec,
            magic=self.config.magic_number,
            comment=cid,
        )
        result = self.executor.execute_order(
            OrderIntent(
                client_order_id=cid,
                symbol=position.symbol,
                side="buy" if _direction(position) > 0 else "sell",
                volume=float(position.volume),
                kind="modify",
                request=request,
                position_ticket=int(position.ticket),
                reason="stops set again to those of the entry",
            )
        )
        if result.filled and not result.duplicate:
            logger.info(
                "%s%s #%s stops set to SL %s TP %s",
                self.clock.stamp(),
                position.symbol,
                position.ticket,
                stops.sl or "-",
                stops.tp or "-",
                extra={"symbol": position.symbol},
            )
            self.summary.stop_changes += 1
            self.sync()

    # ------------------------------------------------------------ closes

    def _close(self, decision: Decision, action: Action) -> ExecutionResult:
        position = self.state.positions[action.ticket]
        purpose = "exit_retry" if action.why is Why.CHASED else self.label
        cid = make_client_order_id(
            purpose, decision.symbol, decision.bar_time, f"close_{position.ticket}"
        )
        reason = {
            Why.CHASED: "exit retry: the strategy no longer wants this position",
            Why.REENTRY: "strategy re-entry",
        }.get(action.why, "strategy exit")
        return self.close(position, cid, reason)

    def close(self, position: Any, cid: str, reason: str) -> ExecutionResult:
        """Close one position entirely (a reducing order: its rows never wait for the disk)."""
        broker = self.broker
        request = build_close_request(
            position=position,
            tick=broker.tick(position.symbol),
            spec=broker.symbol_spec(position.symbol),
            magic=self.config.magic_number,
            comment=cid,
            deviation=self.config.deviation_points,
            filling=broker.filling_mode(position.symbol),
        )
        intent = OrderIntent(
            client_order_id=cid,
            symbol=position.symbol,
            side="buy" if request["type"] == 0 else "sell",
            volume=float(position.volume),
            kind="close",
            request=request,
            position_ticket=int(position.ticket),
            reason=reason,
        )
        result = self.executor.execute_order(intent)  # AuditWriteError: not sent, chased later
        if result.filled or result.status == "not_needed":
            self.summary.exits += 0 if result.duplicate else int(result.filled)
        else:
            self.alerts.notify(
                "order_failed",
                f"closing {position.symbol} #{position.ticket} {result.status}: {result.message}",
                severity="error",
                symbol=position.symbol,
            )
        self.sync()
        return result

    def close_all(self) -> None:
        """The kill switch's close_all: every position of this trader, then halt."""
        for position in list(self.state.positions.values()):
            cid = make_client_order_id(
                "close_all", position.symbol, _utc(position.time), f"close_{position.ticket}"
            )
            try:
                self.close(position, cid, "kill switch close_all")
            except AuditWriteError as exc:
                self._health.failed(exc)
        if not self.state.positions:
            self.risk.settle_close_all()

    def _cancel(self, decision: Decision, action: Action) -> ExecutionResult:
        """Remove a pending order of this trader that goes against the target."""
        order = next(o for o in self.state.pending if int(o.ticket) == action.ticket)
        cid = make_client_order_id(
            self.label, decision.symbol, decision.bar_time, f"cancel_{order.ticket}"
        )
        request = {
            "action": TRADE_ACTION_REMOVE,
            "order": int(order.ticket),
            "symbol": order.symbol,
            "magic": self.config.magic_number,
            "comment": cid,
        }
        result = self.executor.execute_order(
            OrderIntent(
                client_order_id=cid,
                symbol=order.symbol,
                side="buy" if _order_direction(order) > 0 else "sell",
                volume=float(order.volume_current),
                kind="cancel",
                request=request,
                position_ticket=int(order.ticket),
                reason=f"cancel: {Why.UNWANTED_ORDER.value}",
            )
        )
        self.state.sync_orders(self.broker.orders())
        return result

    def sync(self) -> None:
        """Read this trader's positions and pending orders from the broker; the closed
        positions go to the ledger."""
        self.state.sync_orders(self.broker.orders())
        gone = self.state.sync_positions(self.broker.positions())
        self.ledger.closed(change.ticket for change in gone)
        if gone:
            self._changed()


def _direction(position: Any) -> int:
    return 1 if position.type == POSITION_TYPE_BUY else -1


def _order_direction(order: Any) -> int:
    """+1 for the buy order types (market, limit, stop, stop-limit: even), -1 for sells."""
    return 1 if int(order.type) % 2 == 0 else -1


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(float(epoch_seconds), tz=UTC)
