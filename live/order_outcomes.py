"""How each order ends, on the record: its audit rows (written through the audit logger), the
session's execution counters (ExecutionStats) and the ExecutionResult its caller gets."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from live.audit_logger import AuditLogger
from live.broker_types import RETCODE_DONE_PARTIAL, Broker
from live.errors import OrderRejected
from live.order_types import REDUCING_KINDS, ExecutionResult, OrderIntent, intent_from_row

# the executor's log, under the name it has always had
logger = logging.getLogger("live.order_executor")


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


class OrderRecords:
    """Records the steps and ends of one executor's orders and counts them in `stats`."""

    def __init__(self, broker: Broker, audit: AuditLogger, stats: ExecutionStats) -> None:
        self.broker = broker
        self.audit = audit
        self.stats = stats

    def record(self, intent: OrderIntent, status: str, **fields: object) -> None:
        """One row of the order in the audit log (`fields` over the intent's own)."""
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

    def filled(
        self, intent: OrderIntent, request: dict, result: Any, attempts: int, deal: Any | None
    ) -> ExecutionResult:
        """An order the broker accepted (`result`: its reply; `deal`: the deal it made)."""
        status = "partial" if result.retcode == RETCODE_DONE_PARTIAL else "filled"
        if intent.kind == "pending":  # accepted: it waits at the broker until its price
            status = "placed"
        ticket = intent.position_ticket if intent.kind == "close" else int(result.order)
        if intent.kind != "close" and deal is not None:
            ticket = int(deal.position_id)  # the deal says which position it opened or added to
        self.record(
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

    def rejected(self, intent: OrderIntent, exc: OrderRejected, attempts: int) -> ExecutionResult:
        """An order the broker refused for good."""
        self.record(intent, "rejected", attempt=attempts, retcode=exc.code, detail=str(exc))
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

    def give_up(self, intent: OrderIntent, exc: Exception, attempts: int) -> ExecutionResult:
        """An order still failing with `exc` when its retries ran out."""
        code = getattr(exc, "code", None)
        self.record(
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

    def note_failure(self, intent: OrderIntent, status: str, exc: Exception, attempts: int) -> None:
        """A failed attempt, as a row not final: `retry` (refused, retryable) or `unknown`
        (the reply was lost)."""
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
        self.record(intent, status, attempt=attempts, retcode=code, detail=str(exc))

    def record_pending_outcome(self, row: dict, deal: Any | None) -> None:
        """The end of a pending entry the broker filled (`deal`: its entry deal) or expired
        (None), as a row of its order: its deal is then in the record like any fill's."""
        intent = intent_from_row(row)
        if deal is None:
            self.record(intent, "expired", broker_order=row["broker_order"],
                        detail="expired at the broker unfilled")  # fmt: skip
            return
        self.record(
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


def _fill_detail(intent: OrderIntent, deal: Any | None) -> str:
    if intent.kind in ("modify", "cancel"):
        return "stops set" if intent.kind == "modify" else "order removed"
    if intent.kind == "pending":
        return "placed: waits at the broker for its price"
    return "" if deal is not None else "its deal was not in the history yet"
