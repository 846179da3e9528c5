"""What the dashboard makes of the orders and trades: each order's life in one row (its intent
and what became of it, with the P/L of the trade it opened or closed), and the closed trades'
P/L per UTC day and per symbol.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from live.audit_reader import AuditReader


def order_groups(
    reader: AuditReader, *, limit: int, offset: int, symbol: str | None = None
) -> list[dict[str, Any]]:
    """The `limit` orders with the newest activity after the first `offset`, one row each."""
    lives = reader.order_lives(limit=limit, offset=offset, symbol=symbol)
    trades = reader.trades_of_orders(str(life[0]["client_order_id"]) for life in lives)
    return [order_group(life, trades) for life in lives]


def order_group(rows: list[dict[str, Any]], trades: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One order from its rows (oldest first): what was asked (the intent row: the first row
    when there is none, as for an order found only by reconciliation) and the latest outcome.
    P/L is that of the trades the order closed, or else of the trades it opened once they
    closed; `pnl_of` says which."""
    intent = next((r for r in rows if r["status"] == "intent"), rows[0])
    last, cid = rows[-1], rows[0]["client_order_id"]
    closed = [t for t in trades if t["exit_client_order_id"] == cid]
    opened = [t for t in trades if t["entry_client_order_id"] == cid]
    fill = next((r for r in reversed(rows) if r["fill_price"] is not None), {})
    priced, pnl_of = (closed, "closed") if closed else (opened, "opened") if opened else ([], None)
    return {
        "client_order_id": cid,
        "symbol": intent["symbol"],
        "kind": intent["kind"],
        "side": intent["side"],
        "volume": intent["volume"],
        "price": intent["price"],
        "sl": intent["sl"],
        "tp": intent["tp"],
        "intent_ts": intent["ts"],
        "reason": intent["detail"] if intent["status"] == "intent" else None,
        "status": last["status"],
        "outcome_ts": None if last["status"] == "intent" else last["ts"],
        "outcome": None if last["status"] == "intent" else last["detail"],
        "retcode": last["retcode"],
        "fill_price": fill.get("fill_price"),
        "fill_volume": fill.get("fill_volume"),
        "position_ticket": next(
            (r["position_ticket"] for r in reversed(rows) if r["position_ticket"]), None
        ),
        "attempts": max((int(r["attempt"] or 0) for r in rows), default=0),
        "steps": [r["status"] for r in rows],
        "dry_run": bool(rows[0]["dry_run"]),
        "pnl": round(sum(float(t["pnl"] or 0.0) for t in priced), 2) if priced else None,
        "pnl_of": pnl_of,
    }


def pnl_table(reader: AuditReader, key: str, *, dry_run: bool | None = None) -> dict[str, Any]:
    """Closed trades' P/L per `key` ("day": the UTC day of the exit, or "symbol"), each row
    with its win rate and profit factor, and the totals over all rows."""
    rows = reader.pnl_by(key, dry_run=dry_run)
    for row in rows:
        _add_ratios(row)
    total: dict[str, Any] = {
        name: sum(row[name] for row in rows)
        for name in ("count", "wins", "losses", "net_pnl", "gross_win", "gross_loss", "lots")
    }
    for name in ("net_pnl", "gross_win", "gross_loss", "lots"):
        total[name] = round(total[name], 2)
    return {"rows": rows, "total": _add_ratios(total)}


def _add_ratios(row: dict[str, Any]) -> dict[str, Any]:
    count, gross_loss = row["count"], row["gross_loss"]
    row["win_rate_pct"] = round(100.0 * row["wins"] / count, 1) if count else None
    row["profit_factor"] = round(row["gross_win"] / gross_loss, 2) if gross_loss else None
    return row
