"""The position manager: carries out the reconciler's actions for one symbol through the
executor, each with a write-ahead client id: cancels of pending orders, closes (never held
back by the disk), the care of held positions (live/position_care.py: stops, size, time
exits), entries (live/entries.py), and the kill switch's close_all. It tells what it did as
the signal row's action and outcome.
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
from live.backtesting_bridge import (
    BacktestingBridge,
    Decision,
    build_close_request,
)
from live.broker_types import DEAL_ENTRY_IN, POSITION_TYPE_BUY, TRADE_ACTION_REMOVE
from live.config import LiveConfig
from live.entries import EntryDesk, pending_expired
from live.errors import AuditWriteError, BrokerError
from live.market_clock import MarketClock
from live.order_executor import ExecutionResult, OrderExecutor, OrderIntent, make_client_order_id
from live.position_care import PositionCare
from live.reconciler import (
    CANCEL,
    CLOSE,
    OPEN,
    Action,
    ChaseRule,
    Holding,
    Market,
    Why,
    plan,
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
        self.entries = EntryDesk(
            config,
            broker=broker,
            executor=executor,
            bridge=bridge,
            label=self.label,
            state=state,
            risk=risk,
            audit=audit,
            health=health,
            clock=clock,
            summary=summary,
            alerts=alerts,
            on_filled=self._after_entry,
            bar_seconds=bar_seconds,
        )
        self.care = PositionCare(
            config,
            broker=broker,
            executor=executor,
            label=self.label,
            state=state,
            audit=audit,
            clock=clock,
            summary=summary,
            close=self.close,
            sync=self.sync,
            on_partial=ledger.partly_closed,
            open_id=self.entries.open_id,
            entry_blocker=risk.entry_blocker,
            rules_refusal=self.entries.rules_refusal,
            bar_seconds=bar_seconds,
        )

    # ------------------------------------------------------------ one symbol

    def reconcile(self, decision: Decision, *, fresh: bool) -> Outcome:
        """Bring the symbol's positions to the decision's target; what was done."""
        target = target_of(decision)
        holdings = [
            Holding(int(p.ticket), _direction(p), float(p.volume), float(p.sl), float(p.tp))
            for p in self.state.positions_for(decision.symbol)
        ]
        pending = self._pending_of_target(decision)
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
        self.care.care(decision, [h for h in holdings if h.ticket not in closing], fresh=fresh)
        opening = next((a for a in actions if a.kind == OPEN), None)
        if opening is not None and all(r.filled or r.status == "not_needed" for r in results):
            return Outcome(*self.entries.enter(decision, opening))
        if any(a.kind not in (OPEN, CLOSE, CANCEL) for a in actions):
            self.entries.tell_skip(decision)
        return self._close_outcome(decision, results, holdings, fresh=fresh)

    def _pending_of_target(self, decision: Decision) -> list[Holding]:
        """This trader's pending orders on the symbol, less those that no longer belong to
        the target (an older entry's, or past their bars), which are removed now."""
        orders = list(self.state.pending_for(decision.symbol))
        current = self.entries.open_id(decision)
        expired = pending_expired(decision)
        blocked = self.risk.entry_blocker()  # a waiting entry must not fill while blocked
        kept = []
        for order in orders:
            mine = self.audit.reader.client_order_id_of(int(order.ticket)) or str(order.comment)
            if mine != current or expired or decision.position == 0 or blocked:
                why = (
                    f"entries blocked ({blocked})"
                    if blocked
                    else "its bars have passed"
                    if mine == current and expired
                    else "a new target"
                )
                self._cancel(decision, Action(CANCEL, Why.UNWANTED_ORDER, int(order.ticket)), why)
            else:
                kept.append(
                    Holding(int(order.ticket), _order_direction(order), float(order.volume_current))
                )
        return kept

    def _after_entry(self) -> None:
        self.sync()  # whatever else closed meanwhile goes to the ledger too
        self._changed()

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

    def close_all(self, reason: str = "kill switch close_all") -> None:
        """Every pending entry and position of this trader (the kill switch's close_all, an
        account rule's breach); a close that fails is chased on the next loop."""
        self.remove_waiting_entries(reason)
        for position in list(self.state.positions.values()):
            cid = make_client_order_id(
                "close_all", position.symbol, _utc(position.time), f"close_{position.ticket}"
            )
            try:
                self.close(position, cid, reason)
            except AuditWriteError as exc:
                self._health.failed(exc)
            except BrokerError as exc:  # the others are closed all the same
                logger.error("%s: closing #%s failed: %s", reason, position.ticket, exc)
        if not self.state.positions and not self.state.pending:
            self.risk.settle_close_all()

    def remove_waiting_entries(self, reason: str, symbol: str | None = None) -> None:
        """Remove this trader's pending entries (of `symbol`, or all): none may fill while
        entries are blocked or its symbol is paused. Once per order (its ticket is its key)."""
        for order in list(self.state.pending):
            if symbol is not None and order.symbol != symbol:
                continue
            cid = make_client_order_id(
                "remove", order.symbol, _utc(order.time_setup), f"cancel_{order.ticket}"
            )
            try:
                self._remove(order, cid, f"cancel: {reason}")
            except AuditWriteError as exc:
                self._health.failed(exc)

    def _cancel(
        self, decision: Decision, action: Action, why: str = Why.UNWANTED_ORDER.value
    ) -> ExecutionResult | None:
        """Remove a pending order of this trader that the target no longer wants."""
        order = next((o for o in self.state.pending if int(o.ticket) == action.ticket), None)
        if order is None:
            return None
        cid = make_client_order_id(
            self.label, decision.symbol, decision.bar_time, f"cancel_{order.ticket}"
        )
        return self._remove(order, cid, f"cancel: {why}")

    def _remove(self, order: Any, cid: str, reason: str) -> ExecutionResult:
        """TRADE_ACTION_REMOVE of one pending order (a reducing order: never waits for the
        disk)."""
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
                reason=reason,
            )
        )
        self.sync()
        return result

    def sync(self) -> None:
        """Read this trader's positions and pending orders from the broker; the closed
        positions go to the ledger, also those a pending order opened and the server closed
        between two loops (never seen open)."""
        gone_orders = self.state.sync_orders(self.broker.orders())
        gone = self.state.sync_positions(self.broker.positions())
        self._pending_outcomes(gone_orders)
        closed = {change.ticket for change in gone} | self._filled_and_closed(gone_orders)
        self.ledger.closed(sorted(closed))
        if closed:
            self._changed()

    def settle_placed(self) -> None:
        """At start-up: pending entries the record has waiting that left the broker's book
        while the trader was down get their outcome (the fill's deal, or expired)."""
        waiting = {int(o.ticket) for o in self.broker.orders()}
        gone = [
            int(row["broker_order"])
            for row in self.audit.reader.placed_orders()
            if row["broker_order"] and int(row["broker_order"]) not in waiting
        ]
        self._pending_outcomes(gone)

    def _pending_outcomes(self, order_tickets: list[int]) -> None:
        """A pending entry that left the broker's book filled (its deal recorded with its
        order) or expired; one removed by this trader has its cancel rows already."""
        for ticket in order_tickets:
            cid = self.audit.reader.client_order_id_of(ticket)
            row = self.audit.latest_order(cid) if cid else None
            if row is None or row["status"] != "placed":
                continue
            deals = self.broker.deals_for_order(ticket)
            entry = next((d for d in deals if int(d.entry) == DEAL_ENTRY_IN), None)
            if entry is not None or not self.audit.reader.cancel_recorded(ticket):
                self.executor.record_pending_outcome(row, entry)

    def _filled_and_closed(self, order_tickets: list[int]) -> set[int]:
        """Positions opened by these (gone) pending orders that are no longer open."""
        if not order_tickets:
            return set()
        open_now = {int(getattr(p, "identifier", 0) or p.ticket) for p in self.broker.positions()}
        found = set()
        for ticket in order_tickets:
            for deal in self.broker.deals_for_order(ticket):
                if int(deal.position_id) not in open_now:
                    found.add(int(deal.position_id))
        return found


def _direction(position: Any) -> int:
    return 1 if position.type == POSITION_TYPE_BUY else -1


def _order_direction(order: Any) -> int:
    """+1 for the buy order types (market, limit, stop, stop-limit: even), -1 for sells."""
    return 1 if int(order.type) % 2 == 0 else -1


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(float(epoch_seconds), tz=UTC)
