"""Audit log: append-only, hash-chained tables, verification, queries, and write failures."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from live.audit_logger import AuditLogger, main
from live.audit_reader import AuditReader
from live.audit_schema import CHAINED_TABLES, SCHEMA_VERSION
from live.errors import AuditWriteError

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def audit(tmp_path):
    clock = iter(T0 + timedelta(seconds=i) for i in range(10_000))
    logger = AuditLogger(tmp_path / "audit.db", now=lambda: next(clock))
    yield logger
    logger.close()


def fill(audit: AuditLogger) -> None:
    audit.record_event("startup", "hello", data={"mode": "dry-run"})
    audit.record_signal(
        symbol="EURUSD",
        bar_time=T0,
        action="open_long",
        outcome="executed",
        position=1,
        entry=True,
        client_order_id="LTX",
    )
    audit.record_order(
        client_order_id="LTX",
        status="intent",
        symbol="EURUSD",
        dry_run=False,
        side="buy",
        kind="open",
        volume=0.1,
        price=1.1,
    )
    audit.record_order(
        client_order_id="LTX",
        status="filled",
        symbol="EURUSD",
        dry_run=False,
        side="buy",
        kind="open",
        volume=0.1,
        fill_price=1.10003,
    )
    audit.record_trade(
        symbol="EURUSD",
        position_ticket=7,
        dry_run=False,
        direction="long",
        volume=0.1,
        entry_time=T0,
        entry_price=1.1,
        exit_time=T0,
        exit_price=1.2,
        pnl=1000.0,
        exit_reason="tp",
    )
    audit.record_snapshot(
        balance=1e4,
        equity=1.01e4,
        margin=100.0,
        margin_free=1e4,
        margin_level=1e4,
        profit=100.0,
        open_positions=1,
        dry_run=False,
    )


def test_fresh_database_has_wal_schema_version_and_intact_chains(audit):
    fill(audit)
    conn = sqlite3.connect(audit.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    reports = audit.verify()
    assert [r.table for r in reports] == list(CHAINED_TABLES)
    assert all(r.ok for r in reports) and sum(r.rows for r in reports) == 6


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE orders SET status = 'rejected' WHERE id = 2",
        "DELETE FROM events WHERE id = 1",
    ],
)
def test_tables_refuse_updates_and_deletes(audit, statement):
    fill(audit)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        sqlite3.connect(audit.path).execute(statement)


def tamper(path, sql: str) -> None:
    """Edit the file as an attacker would: drop the guard triggers first."""
    conn = sqlite3.connect(path)
    for table in CHAINED_TABLES:
        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("sql", "table", "broken_id", "reason"),
    [
        ("UPDATE orders SET fill_price = 1.0 WHERE id = 2", "orders", 2, "edited"),
        ("DELETE FROM orders WHERE id = 1", "orders", 2, "removed"),
        ("UPDATE trades SET pnl = 5000 WHERE id = 1", "trades", 1, "edited"),
    ],
)
def test_verify_names_the_first_broken_link(audit, sql, table, broken_id, reason, capsys):
    fill(audit)
    audit.record_order(client_order_id="LTY", status="intent", symbol="EURUSD", dry_run=False)
    tamper(audit.path, sql)
    report = next(r for r in audit.verify() if r.table == table)
    assert (report.ok, report.broken_id) == (False, broken_id)
    assert reason in report.reason
    assert main(["verify", str(audit.path)]) == 1
    assert f"BROKEN  at id {broken_id}" in capsys.readouterr().out


def test_verify_command_line_exit_codes(audit, tmp_path):
    fill(audit)
    ok = subprocess.run(
        [sys.executable, "-m", "live.audit_logger", "verify", str(audit.path)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "orders             ok      2 rows" in ok.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "live.audit_logger", "verify", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_order_life_queries(audit):
    fill(audit)
    audit.record_order(client_order_id="LTZ", status="intent", symbol="GBPUSD", dry_run=False)
    reader = audit.reader
    assert reader.latest_order("LTX")["status"] == "filled"
    assert [r["client_order_id"] for r in reader.unresolved_orders()] == ["LTZ"]
    assert reader.entries_filled_since(T0 - timedelta(days=1), dry_run=False) == 1
    assert reader.entries_filled_since(T0 - timedelta(days=1), dry_run=True) == 0
    assert reader.last_signal("EURUSD")["bar_time"] == T0.isoformat(timespec="milliseconds")


def test_trades_summary_and_duplicate_trade_rows(audit):
    for ticket, pnl in ((1, 100.0), (2, -50.0), (3, 30.0), (4, -80.0)):
        assert (
            audit.record_trade(
                symbol="EURUSD",
                position_ticket=ticket,
                dry_run=True,
                pnl=pnl,
                exit_time=T0 + timedelta(hours=ticket),
            )
            is not None
        )
    assert audit.record_trade(symbol="EURUSD", position_ticket=1, dry_run=True, pnl=1.0) is None
    summary = audit.reader.trades_summary()
    assert summary["count"] == 4 and summary["wins"] == 2
    assert summary["win_rate_pct"] == 50.0
    assert summary["profit_factor"] == pytest.approx(130 / 130)
    assert summary["net_pnl"] == 0.0
    assert summary["max_drawdown"] == -100.0  # peak 100 -> 50 -> 80 -> 0


def test_a_locked_database_raises_audit_write_error_until_a_probe_gets_through(tmp_path):
    audit = AuditLogger(tmp_path / "audit.db", busy_timeout_s=0.05)
    blocker = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(AuditWriteError, match="locked"):
            audit.record_event("x", "y")
        # in the outage, writes fail at once instead of waiting on the lock again
        with pytest.raises(AuditWriteError, match="unwritable since"):
            audit.record_event("x", "still locked")
        assert not audit.probe() and audit.outage is not None
    finally:
        blocker.execute("ROLLBACK")
    assert audit.probe() and audit.outage is None  # the probe gets through: the outage is over
    audit.record_event("x", "after the lock")
    assert [r["kind"] for r in audit.reader.recent_events()] == ["x", "audit_recovered"]
    recovered = audit.reader.last_event("audit_recovered")
    assert json.loads(recovered["data"])["failed_writes"] == 1


def test_naive_datetimes_are_refused(audit):
    with pytest.raises(ValueError, match="naive datetime"):
        audit.record_signal(
            symbol="EURUSD", bar_time=datetime(2024, 1, 1), action="none", outcome="no_action"
        )


def test_reopening_does_not_migrate_twice_and_chains_continue(tmp_path):
    first = AuditLogger(tmp_path / "a.db")
    first.record_event("one")
    first.close()
    second = AuditLogger(tmp_path / "a.db")
    second.record_event("two")
    assert second.schema_version == SCHEMA_VERSION
    assert all(r.ok for r in second.verify())
    assert second.reader.count("events") == 2


def test_reader_is_read_only(audit):
    fill(audit)
    reader = AuditReader(audit.path)
    with pytest.raises(sqlite3.OperationalError):
        reader.query(
            "INSERT INTO events (ts, level, kind, prev_hash, row_hash) "
            "VALUES ('x','info','k','0','0')"
        )


@pytest.mark.parametrize(
    ("table", "row"),
    [
        (
            "account_snapshots",
            {"balance": 10_000, "profit": -0.0, "open_positions": 2.0, "dry_run": True},
        ),
        (
            "orders",
            {
                "client_order_id": "LT1",
                "status": "sent",
                "symbol": "EURUSD",
                "side": "buy",
                "kind": "open",
                "volume": 1,
                "price": -0.0,
                "comment": 12.5,
                "retcode": 10009.0,
                "dry_run": 0,
            },
        ),
    ],
)
def test_values_sqlite_converts_still_verify(audit, table, row):
    """Ints in REAL columns, -0.0, integral floats and numbers in TEXT columns read back
    differently from how they were passed; the chain must still hold."""
    audit.insert(table, row)
    audit.insert(table, row)
    assert all(report.ok for report in audit.verify())
