"""Idempotent order execution: persist, send, retry what is retryable, reconcile what is unknown.

Protocol (see docs/live.md):
1. Every order has a client_order_id derived from strategy, symbol, bar time and action, so
   the same decision always gets the same id, even after a restart. It travels in the order
   comment, where the broker keeps it on the order, its deals and the position.
2. Before the first send an `intent` row is written to the audit DB. If that write fails the
   order is not sent. Every later send, too, follows a row that is not final (`retry`,
   `resend`), so a crash at any moment leaves the order for start-up reconciliation.
3. Retryable refusals (requote, prices changed, off quotes, timeout, no connection) are resent
   with exponential backoff and jitter; other refusals fail at once.
4. Before every resend, when a reply was lost, and for every unfinished order at start-up,
   the broker is asked (positions, then deals, by magic number and comment) whether the order
   already exists. Only when it does not is it sent again. An id whose order was filled is
   never sent twice.

This module owns the protocol and the send loop (retries, backoff, lost replies). An order's
values are in order_types, its records in order_outcomes, the broker's answer in order_reconcile.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from live.audit_logger import AuditLogger
from live.audit_schema import utc_now
from live.broker_types import RETCODE_INVALID_FILL, Broker
from live.config import LiveConfig
from live.errors import (
    BrokerUnavailable,
    OrderRejected,
    OutcomeUnknown,
    RetryableOrderError,
)
from live.order_lookup import Found, OrderLookup
from live.order_outcomes import ExecutionStats, OrderRecords
from live.order_reconcile import OrderReconciler
from live.order_types import REDUCING_KINDS, ExecutionResult, OrderIntent, make_client_order_id

# the order's values live in order_types; importers name them from here as well
__all__ = [
    "REDUCING_KINDS",
    "ExecutionResult",
    "ExecutionStats",
    "OrderExecutor",
    "OrderIntent",
    "make_client_order_id",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _DealRef:
    """The deal an order_send reply names (the position it belongs to is the order's)."""

    ticket: int
    position_id: int


@dataclass
class _Attempts:
    """The request being sent and how many times it has been."""

    request: dict[str, Any]
    count: int = 0
    filling_retried: bool = False


class OrderExecutor:
    """Sends OrderIntents through a Broker, recording every step in the audit log."""

    def __init__(
        self,
        broker: Broker,
        audit: AuditLogger,
        config: LiveConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.broker = broker
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._now = now
        self.records = OrderRecords(broker, audit, ExecutionStats())
        self.lookup = OrderLookup(broker, audit, magic=config.magic_number, now=now)
        self.reconciler = OrderReconciler(self.lookup, self.records)

    @property
    def stats(self) -> ExecutionStats:
        """This session's counters: one object, the records' own (they count outcomes)."""
        return self.records.stats

    @property
    def audit(self) -> AuditLogger:
        """The audit log this executor's order rows go to (its records' own)."""
        return self.records.audit

    @audit.setter
    def audit(self, audit: AuditLogger) -> None:
        self.records.audit = audit
        self.lookup.audit = audit  # it matches positions against the same log

    # ------------------------------------------------------------ public

    def execute_order(self, intent: OrderIntent) -> ExecutionResult:
        """Execute once, whatever happened before to this client_order_id.

        Raises AuditWriteError when the intent cannot be recorded (nothing is sent) and
        OutcomeUnknown when the broker cannot be asked whether a sent order exists.
        """
        self.stats.orders += 1
        earlier = self.audit.latest_order(intent.client_order_id)
        if earlier is not None:
            done = self.reconciler.settle_earlier(intent, earlier)
            if done is not None:
                return done
        self.records.record(
            intent, "intent", detail=intent.reason, price=intent.request.get("price")
        )
        return self._send_with_retries(intent)

    def reconcile_pending(self) -> list[ExecutionResult]:
        """At start-up: give every order left unfinished in the audit log a broker outcome."""
        return self.reconciler.reconcile_pending()

    def record_pending_outcome(self, row: dict, deal: Any | None) -> None:
        """The end of a pending entry the broker filled (`deal`: its entry deal) or expired
        (None), as a row of its order: its deal is then in the record like any fill's."""
        self.records.record_pending_outcome(row, deal)

    # ------------------------------------------------------------ flow

    def _send_with_retries(self, intent: OrderIntent) -> ExecutionResult:
        state = _Attempts(dict(intent.request))
        while True:
            state.count += 1
            self.stats.sends += 1
            self.stats.last_send_at = time.monotonic()
            try:
                result = self.broker.send_order(**state.request)
            except (RetryableOrderError, BrokerUnavailable, OutcomeUnknown, OrderRejected) as exc:
                outcome = self._after_failure(intent, state, exc)
                if outcome is not None:
                    return outcome
            else:
                return self._filled(intent, state.request, result, state.count)

    def _after_failure(
        self, intent: OrderIntent, state: _Attempts, exc: Exception
    ) -> ExecutionResult | None:
        """The final result, or None to send again (with state.request updated)."""
        if isinstance(exc, OrderRejected):
            if exc.code == RETCODE_INVALID_FILL and not state.filling_retried:
                state.filling_retried = True
                state.request = self._other_filling(state.request)
                return None
            return self.records.rejected(intent, exc, state.count)
        if isinstance(exc, OutcomeUnknown):
            return self._after_lost_reply(intent, state, exc)
        self.records.note_failure(intent, "retry", exc, state.count)
        if state.count > self.config.order_max_retries:
            return self.records.give_up(intent, exc, state.count)
        if isinstance(exc, BrokerUnavailable):  # not sent: reconnect and try again
            self._backoff(state.count)
            self._reconnect()
            return None
        found = self._pause_then_look(intent, state.count)
        if found is not None:
            return self.reconciler.record(intent, found, state.count)
        state.request = self._refresh_price(state.request)
        return None

    def _after_lost_reply(
        self, intent: OrderIntent, state: _Attempts, exc: OutcomeUnknown
    ) -> ExecutionResult | None:
        self.records.note_failure(intent, "unknown", exc, state.count)
        found = self._look_until_known(intent, state.count)
        if found is not None:
            return self.reconciler.record(intent, found, state.count)
        self.records.record(
            intent,
            "reconciled_absent",
            attempt=state.count,
            detail="not at the broker after a lost reply",
        )
        self.stats.reconciled_absent += 1
        if state.count > self.config.order_max_retries:
            return self.records.give_up(intent, exc, state.count)
        # reconciled_absent is final; a crash during the resend must leave a row that is not,
        # or the restarted trader would take the order for absent without asking the broker
        self.records.record(
            intent,
            "resend",
            attempt=state.count + 1,
            detail="resending: not at the broker after a lost reply",
        )
        return None

    def _filled(
        self, intent: OrderIntent, request: dict, result: Any, attempts: int
    ) -> ExecutionResult:
        deal = self._deal_of(result) if intent.kind in ("open", "close") else None
        return self.records.filled(intent, request, result, attempts, deal)

    def _deal_of(self, result: Any) -> Any | None:
        """The deal a fill made. Right after order_send the history can lag (the reply's deal
        is 0): look it up, a few times with backoff, never assume it."""
        if int(result.deal):
            return _DealRef(int(result.deal), int(result.order))
        if not int(result.order):
            return None
        for attempt in range(1, self.config.order_max_retries + 3):
            deal = self.lookup.deal_of_order(int(result.order))
            if deal is not None:
                return deal
            self._backoff(attempt)
        logger.warning("order %s filled but its deal is not in the history yet", result.order)
        return None

    # ------------------------------------------------------------ waiting and looking

    def _backoff(self, attempts: int) -> None:
        base = self.config.order_retry_base_seconds * (2 ** (attempts - 1))
        delay = min(base, self.config.order_retry_max_seconds)
        self._sleep(delay * (0.5 + self._rng.random() / 2))  # jitter: 50-100 % of the delay

    def _pause_then_look(self, intent: OrderIntent, attempts: int) -> Found | None:
        self._backoff(attempts)
        try:
            return self.lookup.find(intent)
        except BrokerUnavailable:
            return None

    def _look_until_known(self, intent: OrderIntent, attempts: int) -> Found | None:
        """After a lost reply the order's fate must be learnt before anything else."""
        for extra in range(self.config.order_max_retries + 2):
            self._backoff(attempts + extra)
            self._reconnect()
            try:
                return self.lookup.find(intent)
            except BrokerUnavailable:
                continue
        raise OutcomeUnknown(
            f"order {intent.client_order_id}: cannot reach the broker to learn "
            "whether it was executed; will reconcile before trading on"
        )

    def _reconnect(self) -> None:
        ensure = getattr(self.broker, "ensure_connected", None)
        if ensure is not None:
            ensure()

    def _refresh_price(self, request: dict) -> dict:
        tick = self.broker.tick(request["symbol"])
        buying = request["type"] == 0
        return {**request, "price": float(tick.ask if buying else tick.bid)}

    def _other_filling(self, request: dict) -> dict:
        forget = getattr(self.broker, "forget_filling", None)
        if forget is not None:
            forget(request["symbol"])
        mode = self.broker.filling_mode(request["symbol"])
        confirm = getattr(self.broker, "confirm_filling", None)
        if confirm is not None:
            mode = confirm(request)
        return {**request, "type_filling": mode}
