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
"""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from live.audit_logger import AuditLogger
from live.audit_schema import FILLED_ORDER_STATUSES, utc_now
from live.broker_types import (
    RETCODE_DONE_PARTIAL,
    RETCODE_INVALID_FILL,
    Broker,
    retcode_text,
)
from live.config import LiveConfig
from live.errors import (
    BrokerUnavailable,
    OrderRejected,
    OutcomeUnknown,
    RetryableOrderError,
)
from live.order_lookup import CLIENT_ID_PREFIX, PENDING_AT_BROKER, Found, OrderLookup

logger = logging.getLogger(__name__)

# Orders that only reduce exposure or protect a position (closes, stop changes, cancels).
REDUCING_KINDS = frozenset({"close", "modify", "cancel"})


def make_client_order_id(strategy: str, symbol: str, bar_time: datetime, action: str) -> str:
    """A short deterministic id (18 characters, fits MT5's 29-character comment)."""
    key = f"{strategy}|{symbol}|{bar_time.isoformat()}|{action}".encode()
    digest = base64.b32encode(hashlib.sha256(key).digest()).decode().rstrip("=")
    return CLIENT_ID_PREFIX + digest[:16]


@dataclass(frozen=True)
class OrderIntent:
    """What the trader wants done. `kind`: "open" (a market entry), "pending" (a limit or
    stop entry), "close" (whole or partial: names the position), "modify" (its stops) or
    "cancel" (a pending order)."""

    client_order_id: str
    symbol: str
    side: str
    volume: float
    kind: str
    request: dict[str, Any]
    position_ticket: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class ExecutionResult:
    """How an order ended. status: filled, partial, rejected, failed, not_needed, unknown."""

    client_order_id: str
    status: str
    symbol: str
    kind: str
    side: str
    volume: float = 0.0
    price: float = 0.0
    position_ticket: int | None = None
    retcode: int | None = None
    attempts: int = 0
    message: str = ""
    duplicate: bool = False

    @property
    def filled(self) -> bool:
        return self.status in ("filled", "partial")


@dataclass
class ExecutionStats:
    """Counters for the session summary and the metrics endpoint."""

    orders: int = 0
    sends: int = 0
    filled: int = 0
    rejected: int = 0
    failed: int = 0
    unknown: int = 0
    retries: int = 0
    duplicates_suppressed: int = 0
    reconciled_found: int = 0
    reconciled_absent: int = 0
    by_retcode: Counter = field(default_factory=Counter)
    slippage_points: list[float] = field(default_factory=list)
    last_send_at: float = 0.0  # monotonic time of the latest order_send call

    def as_dict(self) -> dict[str, object]:
        slips = self.slippage_points[-1000:]
        return {
            "orders": self.orders,
            "sends": self.sends,
            "filled": self.filled,
            "rejected": self.rejected,
            "failed": self.failed,
            "unknown": self.unknown,
            "retries": self.retries,
            "duplicates_suppressed": self.duplicates_suppressed,
            "reconciled_found": self.reconciled_found,
            "reconciled_absent": self.reconciled_absent,
            "by_retcode": dict(self.by_retcode),
            "avg_slippage_points": sum(slips) / len(slips) if slips else None,
        }


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
        self.audit = audit
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._now = now
        self.stats = ExecutionStats()
        self.lookup = OrderLookup(broker, audit, magic=config.magic_number, now=now)

    # ------------------------------------------------------------ public

    def execute_order(self, intent: OrderIntent) -> ExecutionResult:
        """Execute once, whatever happened before to this client_order_id.

        Raises AuditWriteError when the intent cannot be recorded (nothing is sent) and
        OutcomeUnknown when the broker cannot be asked whether a sent order exists.
        """
        self.stats.orders += 1
        earlier = self.audit.latest_order(intent.client_order_id)
        if earlier is not None:
            done = self._settle_earlier(intent, earlier)
            if done is not None:
                return done
        self._record(intent, "intent", detail=intent.reason, price=intent.request.get("price"))
        return self._send_with_retries(intent)

    def reconcile_pending(self) -> list[ExecutionResult]:
        """At start-up: give every order left unfinished in the audit log a broker outcome."""
        results = []
        for row in self.audit.reader.unresolved_orders():
            intent = _intent_from_row(row)
            found = self.lookup.find(intent, since=_parse_ts(row["ts"]))
            results.append(self._record_reconciliation(intent, found, attempts=0))
        return results

    # ------------------------------------------------------------ flow

    def _settle_earlier(self, intent: OrderIntent, earlier: dict) -> ExecutionResult | None:
        status = earlier["status"]
        if status in FILLED_ORDER_STATUSES or status in (
            "rejected",
            "failed",
            "not_needed",
            "dry_rejected",
            "placed",
            "expired",
            "partial",
        ):
            self.stats.duplicates_suppressed += 1
            logger.info(
                "order %s already %s; not sent again",
                intent.client_order_id,
                status,
                extra={"client_order_id": intent.client_order_id},
            )
            return _result_from_row(intent, earlier, duplicate=True)
        # asked even after a final "absent": the broker is the truth, and asking is cheap
        found = self.lookup.find(intent, since=_parse_ts(earlier["ts"]))
        if found is None and status == "reconciled_absent":
            return None
        result = self._record_reconciliation(intent, found, attempts=0)
        return result if found is not None or result.status == "not_needed" else None

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
            return self._rejected(intent, exc, state.count)
        if isinstance(exc, OutcomeUnknown):
            return self._after_lost_reply(intent, state, exc)
        self._note_failure(intent, "retry", exc, state.count)
        if state.count > self.config.order_max_retries:
            return self._give_up(intent, exc, state.count)
        if isinstance(exc, BrokerUnavailable):  # not sent: reconnect and try again
            self._backoff(state.count)
            self._reconnect()
            return None
        found = self._pause_then_look(intent, state.count)
        if found is not None:
            return self._record_reconciliation(intent, found, state.count)
        state.request = self._refresh_price(state.request)
        return None

    def _after_lost_reply(
        self, intent: OrderIntent, state: _Attempts, exc: OutcomeUnknown
    ) -> ExecutionResult | None:
        self._note_failure(intent, "unknown", exc, state.count)
        found = self._look_until_known(intent, state.count)
        if found is not None:
            return self._record_reconciliation(intent, found, state.count)
        self._record(
            intent,
            "reconciled_absent",
            attempt=state.count,
            detail="not at the broker after a lost reply",
        )
        self.stats.reconciled_absent += 1
        if state.count > self.config.order_max_retries:
            return self._give_up(intent, exc, state.count)
        # reconciled_absent is final; a crash during the resend must leave a row that is not,
        # or the restarted trader would take the order for absent without asking the broker
        self._record(
            intent,
            "resend",
            attempt=state.count + 1,
            detail="resending: not at the broker after a lost reply",
        )
        return None

    def _filled(
        self, intent: OrderIntent, request: dict, result: Any, attempts: int
    ) -> ExecutionResult:
        status = "partial" if result.retcode == RETCODE_DONE_PARTIAL else "filled"
        if intent.kind == "pending":  # accepted: it waits at the broker until its price
            status = "placed"
        deal = self._deal_of(result) if intent.kind in ("open", "close") else None
        ticket = intent.position_ticket if intent.kind == "close" else int(result.order)
        if intent.kind != "close" and deal is not None:
            ticket = int(deal.position_id)  # the deal says which position it opened or added to
        self._record(
            intent,
            status,
            attempt=attempts,
            retcode=int(result.retcode),
            broker_order=int(result.order),
            broker_deal=int(deal.ticket) if deal is not None else None,
            detail=_fill_detail(intent, deal),
            fill_price=float(result.price),
            fill_volume=float(result.volume),
            position_ticket=ticket,
            price=request.get("price"),
        )
        self.stats.filled += 1
        self.stats.by_retcode[int(result.retcode)] += 1
        self._note_slippage(intent, request, float(result.price))
        del self.stats.slippage_points[:-1000]  # keep memory flat in long sessions
        return ExecutionResult(
            intent.client_order_id,
            status,
            intent.symbol,
            intent.kind,
            intent.side,
            float(result.volume),
            float(result.price),
            ticket,
            int(result.retcode),
            attempts,
        )

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

    def _rejected(self, intent: OrderIntent, exc: OrderRejected, attempts: int) -> ExecutionResult:
        self._record(intent, "rejected", attempt=attempts, retcode=exc.code, detail=str(exc))
        self.stats.rejected += 1
        if exc.code is not None:
            self.stats.by_retcode[exc.code] += 1
        logger.warning(
            "order %s rejected: %s",
            intent.client_order_id,
            exc,
            extra={
                "client_order_id": intent.client_order_id,
                "retcode": exc.code,
                "symbol": intent.symbol,
            },
        )
        return ExecutionResult(
            intent.client_order_id,
            "rejected",
            intent.symbol,
            intent.kind,
            intent.side,
            retcode=exc.code,
            attempts=attempts,
            message=str(exc),
        )

    def _give_up(self, intent: OrderIntent, exc: Exception, attempts: int) -> ExecutionResult:
        code = getattr(exc, "code", None)
        self._record(
            intent,
            "failed",
            attempt=attempts,
            retcode=code,
            detail=f"gave up after {attempts} attempts: {exc}",
        )
        self.stats.failed += 1
        logger.error(
            "order %s failed after %d attempts: %s",
            intent.client_order_id,
            attempts,
            exc,
            extra={"client_order_id": intent.client_order_id, "retcode": code},
        )
        return ExecutionResult(
            intent.client_order_id,
            "failed",
            intent.symbol,
            intent.kind,
            intent.side,
            retcode=code,
            attempts=attempts,
            message=str(exc),
        )

    def _note_failure(
        self, intent: OrderIntent, status: str, exc: Exception, attempts: int
    ) -> None:
        code = getattr(exc, "code", None)
        if status == "retry":
            self.stats.retries += 1
        else:
            self.stats.unknown += 1
        if code is not None:
            self.stats.by_retcode[code] += 1
        logger.warning(
            "order %s attempt %d: %s",
            intent.client_order_id,
            attempts,
            exc,
            extra={
                "client_order_id": intent.client_order_id,
                "retcode": code,
                "symbol": intent.symbol,
            },
        )
        self._record(intent, status, attempt=attempts, retcode=code, detail=str(exc))

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

    # ------------------------------------------------------------ reconciliation

    def _record_reconciliation(
        self, intent: OrderIntent, found: Found | None, attempts: int
    ) -> ExecutionResult:
        cid = intent.client_order_id
        if found is None:
            self._record(
                intent, "reconciled_absent", attempt=attempts, detail="not found at the broker"
            )
            self.stats.reconciled_absent += 1
            return ExecutionResult(
                cid,
                "unknown",
                intent.symbol,
                intent.kind,
                intent.side,
                attempts=attempts,
                message="not at the broker",
            )
        if found.detail == PENDING_AT_BROKER:
            self._record(
                intent,
                "placed",
                attempt=attempts,
                broker_order=found.order,
                detail="found pending at the broker; not sent again",
            )
            self.stats.reconciled_found += 1
            return ExecutionResult(
                cid,
                "placed",
                intent.symbol,
                intent.kind,
                intent.side,
                found.volume,
                found.price,
                attempts=attempts,
                message="pending at the broker",
            )
        if found.detail == "position already gone":
            self._record(
                intent,
                "not_needed",
                attempt=attempts,
                position_ticket=found.position_ticket,
                detail="position closed before this order (stop-loss, take-profit or by hand)",
            )
            return ExecutionResult(
                cid,
                "not_needed",
                intent.symbol,
                intent.kind,
                intent.side,
                position_ticket=found.position_ticket,
                attempts=attempts,
            )
        self._record(
            intent,
            "reconciled_filled",
            attempt=attempts,
            fill_price=found.price,
            fill_volume=found.volume,
            position_ticket=found.position_ticket,
            broker_deal=found.deal,
            broker_order=found.order,
            detail=found.detail,
        )
        self.stats.reconciled_found += 1
        logger.info(
            "order %s found at the broker (%s); not sent again",
            cid,
            found.detail,
            extra={"client_order_id": cid, "symbol": intent.symbol},
        )
        return ExecutionResult(
            cid,
            "filled",
            intent.symbol,
            intent.kind,
            intent.side,
            found.volume,
            found.price,
            found.position_ticket,
            attempts=attempts,
            message="reconciled",
        )

    # ------------------------------------------------------------ audit

    def _record(self, intent: OrderIntent, status: str, **fields: object) -> None:
        request = intent.request
        base = {
            "side": intent.side,
            "kind": intent.kind,
            "volume": intent.volume,
            "sl": request.get("sl") or None,
            "tp": request.get("tp") or None,
            "position_ticket": intent.position_ticket,
            "comment": intent.client_order_id,
        }
        base.update(fields)
        # an order that reduces exposure is never held back by the disk: its rows may wait in
        # the fallback journal; an entry without its row in the database is not sent
        self.audit.record_order(
            client_order_id=intent.client_order_id,
            status=status,
            symbol=intent.symbol,
            dry_run=self.broker.dry_run,
            fallback=intent.kind in REDUCING_KINDS,
            **base,
        )

    def record_pending_outcome(self, row: dict, deal: Any | None) -> None:
        """The end of a pending entry the broker filled (`deal`: its entry deal) or expired
        (None), as a row of its order: its deal is then in the record like any fill's."""
        intent = _intent_from_row(row)
        if deal is None:
            self._record(intent, "expired", broker_order=row["broker_order"],
                         detail="expired at the broker unfilled")  # fmt: skip
            return
        self._record(
            intent,
            "filled",
            broker_order=int(deal.order),
            broker_deal=int(deal.ticket),
            fill_price=float(deal.price),
            fill_volume=float(deal.volume),
            position_ticket=int(deal.position_id),
            detail="the pending entry filled at the broker",
        )
        self.stats.filled += 1

    def _note_slippage(self, intent: OrderIntent, request: dict, fill: float) -> None:
        asked = request.get("price")
        if not asked:
            return
        try:
            point = self.broker.symbol_spec(intent.symbol).point
        except Exception:  # statistics only; never fail a filled order for them
            return
        sign = 1 if intent.side == "buy" else -1
        self.stats.slippage_points.append(sign * (fill - asked) / point)


def _intent_from_row(row: dict) -> OrderIntent:
    return OrderIntent(
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=row["side"] or "",
        volume=float(row["volume"] or 0.0),
        kind=row["kind"] or "open",
        request={"symbol": row["symbol"], "price": row["price"], "sl": row["sl"], "tp": row["tp"]},
        position_ticket=row["position_ticket"],
    )


def _result_from_row(intent: OrderIntent, row: dict, *, duplicate: bool) -> ExecutionResult:
    status = row["status"]
    mapped = (
        "filled"
        if status in FILLED_ORDER_STATUSES
        else "rejected"
        if status in ("rejected", "dry_rejected")
        else status
    )
    return ExecutionResult(
        intent.client_order_id,
        mapped,
        intent.symbol,
        intent.kind,
        intent.side,
        float(row["fill_volume"] or 0.0),
        float(row["fill_price"] or 0.0),
        row["position_ticket"],
        row["retcode"],
        int(row["attempt"] or 0),
        message=retcode_text(row["retcode"]) if row["retcode"] else status,
        duplicate=duplicate,
    )


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _fill_detail(intent: OrderIntent, deal: Any | None) -> str:
    if intent.kind in ("modify", "cancel"):
        return "stops set" if intent.kind == "modify" else "order removed"
    if intent.kind == "pending":
        return "placed: waits at the broker for its price"
    return "" if deal is not None else "its deal was not in the history yet"
