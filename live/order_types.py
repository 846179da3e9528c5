"""An order as it crosses layers: its deterministic client order id, the OrderIntent the trader
hands the executor, the ExecutionResult it gets back, and both rebuilt from an audit row."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from live.audit_schema import FILLED_ORDER_STATUSES
from live.broker_types import retcode_text
from live.order_lookup import CLIENT_ID_PREFIX

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


def intent_from_row(row: dict) -> OrderIntent:
    """The intent an order row of the audit log stands for: enough to find it at the broker or
    record its end, not to send it."""
    return OrderIntent(
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=row["side"] or "",
        volume=float(row["volume"] or 0.0),
        kind=row["kind"] or "open",
        request={"symbol": row["symbol"], "price": row["price"], "sl": row["sl"], "tp": row["tp"]},
        position_ticket=row["position_ticket"],
    )


def result_from_row(intent: OrderIntent, row: dict, *, duplicate: bool) -> ExecutionResult:
    """The result an earlier order row stands for (`duplicate`: the same id was asked again)."""
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
