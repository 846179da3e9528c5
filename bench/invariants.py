"""What must hold after any run, crash or fault: checked on the broker's deals and positions
against the audit DB. Used by the crash trials and the fault soak (and their small tests)."""

from __future__ import annotations

import collections
from typing import Any

from live.audit_chain import key_file_for, load_key
from live.audit_reader import AuditReader


def check_orders(reader: AuditReader, deals: list[Any]) -> list[str]:
    """One execution per client_order_id; every deal has its order row, which names the deal's
    ticket; none unresolved."""
    per_comment = collections.Counter(d.comment for d in deals)
    violations = [
        f"order {cid} executed {n} times at the broker" for cid, n in per_comment.items() if n > 1
    ]
    known = {
        row["client_order_id"]
        for row in reader.query("SELECT DISTINCT client_order_id FROM orders")
    }
    violations += [
        f"broker deal {d.ticket} ({d.comment}) has no order row"
        for d in deals
        if d.comment not in known
    ]
    recorded_deals = {
        int(row["broker_deal"])
        for row in reader.query("SELECT DISTINCT broker_deal FROM orders WHERE broker_deal > 0")
    }
    violations += [
        f"broker deal {d.ticket} ({d.comment}) is in the audit only through its comment"
        for d in deals
        if d.comment in known and int(d.ticket) not in recorded_deals
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


def check_positions_and_trades(
    reader: AuditReader, deals: list[Any], positions: list[Any], *, dry_run: bool
) -> tuple[list[str], int]:
    """At most one open position per symbol; exactly one trade row per closed position.

    Returns (violations, number of closed positions).
    """
    per_symbol = collections.Counter(p.symbol for p in positions)
    violations = [f"{symbol}: {n} open positions" for symbol, n in per_symbol.items() if n > 1]
    closed = {d.position_id for d in deals if d.entry != 0} - {p.ticket for p in positions}
    trades = collections.Counter(
        row["position_ticket"]
        for row in reader.query(
            "SELECT position_ticket FROM trades WHERE dry_run = ?", (int(dry_run),)
        )
    )
    violations += [
        f"closed position {t} has {trades[t]} trade rows" for t in sorted(closed) if trades[t] != 1
    ]
    return violations, len(closed)


def print_verdict(violations: list[str]) -> int:
    """Print each violation and the verdict; the exit code (1 when any)."""
    for violation in violations:
        print("VIOLATION:", violation)
    print("all invariants held" if not violations else f"{len(violations)} violation(s)")
    return 1 if violations else 0
