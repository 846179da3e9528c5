"""Reconciling orders whose outcome the trader does not know: asking the broker (through
OrderLookup) whether a client order id already exists there, recording what it says, settling
an id that was seen before, and giving every order left unfinished at start-up its outcome."""

from __future__ import annotations

import logging
from datetime import datetime

from live.audit_schema import FILLED_ORDER_STATUSES
from live.order_lookup import PENDING_AT_BROKER, Found, OrderLookup
from live.order_outcomes import OrderRecords
from live.order_types import ExecutionResult, OrderIntent, intent_from_row, result_from_row

# the executor's log, under the name it has always had
logger = logging.getLogger("live.order_executor")


class OrderReconciler:
    """Gives an order of one executor the outcome the broker knows, recorded in its records."""

    def __init__(self, lookup: OrderLookup, records: OrderRecords) -> None:
        self.lookup = lookup
        self.records = records

    @property
    def stats(self):
        """The executor's counters (its records' own: one object)."""
        return self.records.stats

    def reconcile_pending(self) -> list[ExecutionResult]:
        """At start-up: give every order left unfinished in the audit log a broker outcome."""
        results = []
        for row in self.records.audit.reader.unresolved_orders():
            intent = intent_from_row(row)
            found = self.lookup.find(intent, since=_parse_ts(row["ts"]))
            results.append(self.record(intent, found, attempts=0))
        return results

    def settle_earlier(self, intent: OrderIntent, earlier: dict) -> ExecutionResult | None:
        """The result of an id with an earlier row (`earlier`), or None when it must be sent."""
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
            return result_from_row(intent, earlier, duplicate=True)
        # asked even after a final "absent": the broker is the truth, and asking is cheap
        found = self.lookup.find(intent, since=_parse_ts(earlier["ts"]))
        if found is None and status == "reconciled_absent":
            return None
        result = self.record(intent, found, attempts=0)
        return result if found is not None or result.status == "not_needed" else None

    def record(self, intent: OrderIntent, found: Found | None, attempts: int) -> ExecutionResult:
        """What the broker said of the order (`found`; None: it has no such order), recorded."""
        cid = intent.client_order_id
        if found is None:
            self.records.record(
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
            self.records.record(
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
            self.records.record(
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
        self.records.record(
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


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)
