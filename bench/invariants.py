"""What must hold after any run, crash or fault: checked on the broker's deals and positions
against the audit DB. Used by the crash trials and the fault soak (and their small tests)."""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime
from typing import Any

from live.audit_chain import key_file_for, load_key
from live.audit_reader import AuditReader
from live.audit_schema import FILLED_ORDER_STATUSES, iso
from live.order_executor import make_client_order_id

SERVER_REASONS = {4, 5, 6}  # DEAL_REASON_SL, _TP, _SO: deals the server made itself


def check_orders(reader: AuditReader, deals: list[Any]) -> list[str]:
    """One execution per client_order_id; every deal of an order of ours has its order row,
    which names the deal's ticket; none unresolved. A deal is matched to its client id by its
    order ticket (as recorded) or its comment: brokers may cut or rewrite comments."""
    rows = reader.query("SELECT DISTINCT client_order_id, broker_order FROM orders")
    known = {row["client_order_id"] for row in rows}
    by_order = {int(r["broker_order"]): r["client_order_id"] for r in rows if r["broker_order"]}

    def client_id(deal: Any) -> str | None:
        return by_order.get(int(deal.order)) or (deal.comment if deal.comment in known else None)

    ours = [d for d in deals if int(d.reason) not in SERVER_REASONS]
    per_id = collections.Counter(cid for d in ours if (cid := client_id(d)))
    violations = [
        f"order {cid} executed {n} times at the broker" for cid, n in per_id.items() if n > 1
    ]
    violations += [
        f"broker deal {d.ticket} ({d.comment}) has no order row"
        for d in ours
        if client_id(d) is None
    ]
    recorded_deals = {
        int(row["broker_deal"])
        for row in reader.query("SELECT DISTINCT broker_deal FROM orders WHERE broker_deal > 0")
    }
    violations += [
        f"broker deal {d.ticket} ({d.comment}) is in the audit only through its comment"
        for d in ours
        if client_id(d) is not None and int(d.ticket) not in recorded_deals
    ]
    violations += [
        f"order {row['client_order_id']} left unresolved ({row['status']})"
        for row in reader.unresolved_orders()
    ]
    return violations + [
        f"hash chain of {c.table} broken at row {c.broken_id}: {c.reason}"
        for c in reader.verify(load_key(key_file_for(reader.path)))
        if not c.ok
    ]


EXPLAINED_OUTCOMES = ("refused", "failed", "rejected", "unknown", "exit failed", "placed")


def check_restarts(reader: AuditReader) -> tuple[list[str], int]:
    """After every restart, once its first loop is done (its first heartbeat), each symbol's
    positions are the target's direction, or the loop recorded why not (an entry not
    chased, an order refused, failed or with an unknown outcome).

    Returns (violations, restarts checked).
    """
    events = reader.query(
        "SELECT id, ts, kind, data FROM events WHERE kind IN ('startup', 'heartbeat') ORDER BY id"
    )
    violations, checked = [], 0
    for index, event in enumerate(events):
        if event["kind"] != "startup":
            continue
        beat = next((e for e in events[index + 1 :] if e["kind"] != "startup"), None)
        following = next((e for e in events[index + 1 :] if e["kind"] == "startup"), None)
        if beat is None or (following is not None and following["id"] < beat["id"]):
            continue  # killed before its first loop ended
        checked += 1
        status = json.loads(beat["data"] or "{}")
        explained = _explained(reader, event["ts"], beat["ts"])
        held: dict[str, list[int]] = collections.defaultdict(list)
        for position in status.get("positions", []):
            held[position["symbol"]].append(1 if position["side"] == "buy" else -1)
        label = json.loads(event["data"] or "{}").get("strategy", "")
        for symbol, target in status.get("targets", {}).items():
            direction = target["direction"]
            wanted = [direction] if direction else []
            entered = _entered_already(reader, label, symbol, direction, target["entry_bar"])
            if sorted(held[symbol]) != wanted and symbol not in explained and not entered:
                violations.append(
                    f"restart at {event['ts']}: {symbol} held {held[symbol]} after the first loop, "
                    f"target {direction}, and nothing recorded why"
                )
    return violations, checked


def _entered_already(
    reader: AuditReader, label: str, symbol: str, direction: int, entry_bar: str | None
) -> bool:
    """The target's entry was done earlier (filled, or a pending entry placed: it waits, or
    it expired or filled and closed since), or tried and refused (an entry is not chased):
    the strategy enters again only on its next entry."""
    if not direction or not entry_bar:
        return False
    side = "buy" if direction > 0 else "sell"
    cid = make_client_order_id(label, symbol, datetime.fromisoformat(entry_bar), f"open_{side}")
    row = reader.latest_order(cid)
    tried = FILLED_ORDER_STATUSES | {"placed", "expired", "rejected", "failed", "dry_rejected"}
    return row is not None and row["status"] in tried


def _explained(reader: AuditReader, since: str, until: str) -> set[str]:
    """Symbols whose divergence from the target has a recorded reason in [since, until]."""
    told = reader.query(
        "SELECT DISTINCT symbol FROM events WHERE kind IN ('entry_not_chased', "
        "'outcome_unknown', 'symbol_error') AND ts >= ? AND ts <= ?",
        (since, until),
    )
    signals = reader.query(
        "SELECT symbol, outcome FROM signals WHERE ts >= ? AND ts <= ?", (since, until)
    )
    orders = reader.query(
        "SELECT DISTINCT symbol FROM orders WHERE status IN ('failed', 'rejected', 'unknown') "
        "AND ts >= ? AND ts <= ?",
        (since, until),
    )
    return (
        {row["symbol"] for row in told}
        | {row["symbol"] for row in orders}
        | {row["symbol"] for row in signals if str(row["outcome"]).startswith(EXPLAINED_OUTCOMES)}
    )


def check_positions_and_trades(
    reader: AuditReader, deals: list[Any], positions: list[Any], *, dry_run: bool
) -> tuple[list[str], int]:
    """At most one open position per symbol; a closed position has one trade row per exit
    deal (one, unless it was closed in parts), none missing and none twice.

    Returns (violations, number of closed positions).
    """
    per_symbol = collections.Counter(p.symbol for p in positions)
    violations = [f"{symbol}: {n} open positions" for symbol, n in per_symbol.items() if n > 1]
    closed = {d.position_id for d in deals if d.entry != 0} - {p.ticket for p in positions}
    exits = collections.Counter(d.position_id for d in deals if d.entry != 0)
    trades = collections.Counter(
        row["position_ticket"]
        for row in reader.query(
            "SELECT position_ticket FROM trades WHERE dry_run = ?", (int(dry_run),)
        )
    )
    violations += [
        f"closed position {t} has {trades[t]} trade rows for {exits[t]} exit deals"
        for t in sorted(closed)
        if trades[t] != exits[t]
    ]
    return violations, len(closed)


def check_account_rules(reader: AuditReader, floor_amount: float) -> tuple[list[str], int]:
    """Under a daily floor `floor_amount` below the day's base (no buffer): no entry was
    sent while a breach held (from its event to its `until`), and every account snapshot
    at or below the day's floor has a breach of that day recorded by the next snapshot (the
    loop after an entry's spread pushed it there, or the first loop after a restart).

    Returns (violations, breaches recorded)."""
    events = reader.query(
        "SELECT ts, kind, data FROM events WHERE kind IN ('account_day', 'account_breach') "
        "ORDER BY id"
    )
    breaches = [(e["ts"], json.loads(e["data"])) for e in events if e["kind"] == "account_breach"]
    violations = []
    for ts, data in breaches:
        until = iso(datetime.fromisoformat(data["until"])) if data.get("until") else "9999"
        sent = reader.query(
            "SELECT client_order_id, ts FROM orders WHERE kind = 'open' AND status = 'intent' "
            "AND ts > ? AND ts < ?",
            (ts, until),
        )
        violations += [
            f"entry {row['client_order_id']} sent at {row['ts']} during the breach of {ts}"
            for row in sent
        ]
    days = [(e["ts"], json.loads(e["data"])) for e in events if e["kind"] == "account_day"]
    snapshots = reader.query("SELECT ts, equity FROM account_snapshots ORDER BY id")
    for index, snap in enumerate(snapshots):
        day = next((d for ts, d in reversed(days) if ts <= snap["ts"]), None)
        if day is None or snap["equity"] > day["base"] - floor_amount + 1e-6:
            continue
        by = snapshots[index + 1]["ts"] if index + 1 < len(snapshots) else "9999"
        label = datetime.fromtimestamp(int(day["day"]) * 86400, UTC).date().isoformat()
        if not any(b["day"] == label and ts <= by for ts, b in breaches):
            violations.append(
                f"equity {snap['equity']:.2f} at {snap['ts']} at or below the floor "
                f"{day['base'] - floor_amount:.2f} of day {label}, and no breach recorded"
            )
    return violations, len(breaches)


def print_verdict(violations: list[str]) -> int:
    """Print each violation and the verdict; the exit code (1 when any)."""
    for violation in violations:
        print("VIOLATION:", violation)
    print("all invariants held" if not violations else f"{len(violations)} violation(s)")
    return 1 if violations else 0
