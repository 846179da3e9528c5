"""Exits while the audit database cannot be written: a real SQLite "database or disk is full"
(PRAGMA max_page_count on the trader's own connection), a kill switch in the outage, the
fallback journal moved in afterwards with chains that verify, a crash in the middle, one
alert and one line a minute instead of a flood, and a journal that a full disk cannot stop."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
import sys

import pytest

from live.audit_journal import JOURNAL_BYTES, FallbackJournal
from live.audit_logger import AuditLogger
from live.errors import AuditWriteError
from tests.live.conftest import RecordingAlerts, WallClock, on_tiny_disk

BAR_WALL_SECONDS = 10.0  # wall time the test lets pass per simulated bar


def fill_the_database(audit: AuditLogger) -> None:
    """Cap the database at its size on the trader's connection, then write smaller and
    smaller rows until SQLite says "database or disk is full" even for a tiny one: from here
    on a write fails as on a disk with no room left."""
    conn = audit._conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    for size in (2000, 200, 20, 0):
        for _ in range(1000):
            try:
                audit.insert_many("events", [{"level": "info", "kind": "f", "message": "x" * size}])
            except AuditWriteError as exc:
                assert "database or disk is full" in str(exc)
                break
        else:
            raise AssertionError("the capped database never filled")
    audit.outage = None
    with pytest.raises(AuditWriteError):
        audit.record_event("test_filler", "the disk is full now")  # the outage begins here


def make_room(audit: AuditLogger) -> None:
    audit._conn().execute("PRAGMA max_page_count = 1073741823")


def held_against_target(trader) -> list[str]:
    """Positions the strategy no longer wants after the bar just decided (wrong direction or
    flat): none may be left once a loop has run."""
    wrong = []
    for symbol in trader.config.symbols:
        target = trader.bridge.decide(symbol, trader.bridge.latest_bars(symbol)).position
        for position in trader.broker.positions(symbol):
            held = 1 if position.type == 0 else -1
            if held != target:
                wrong.append(f"{symbol} #{position.ticket} {held} vs target {target}")
    return wrong


def step(trader, terminal, wall: WallClock) -> list[str]:
    """One loop and one bar; returns the positions held against the strategy's target after
    the loop (none may be)."""
    trader.iterate()
    wrong = held_against_target(trader)
    terminal.sim_step_bar()
    wall.advance(BAR_WALL_SECONDS)
    return wrong


@pytest.fixture
def outage_trader(live_config, make_sim, make_trader):
    """Factory: a started trader with a driven wall clock and recorded alerts, holding a
    position on each of its symbols: (config, terminal, trader, wall, alerts)."""

    def factory(symbols: tuple[str, ...] = ("EURUSD",), **settings: object):
        config = live_config(strategy_params="fast=2,slow=5", symbols=symbols, **settings)
        terminal = make_sim(symbols=symbols)
        wall, alerts = WallClock(), RecordingAlerts()
        trader = make_trader(config, terminal, wall_clock=wall, alerts=alerts)
        trader.start()
        for _ in range(300):
            step(trader, terminal, wall)
            if len({p.symbol for p in trader.state.positions.values()}) == len(symbols):
                return config, terminal, trader, wall, alerts
        raise AssertionError("no position opened on every symbol")

    return factory


@pytest.mark.parametrize("dry_run", [False, True], ids=["live", "dry-run"])
def test_exits_never_wait_for_a_full_disk_and_their_rows_move_in_after(outage_trader, dry_run):
    symbols = ("EURUSD", "GBPUSD", "USDJPY")
    config, terminal, trader, wall, _ = outage_trader(symbols, dry_run=dry_run)
    fill_the_database(trader.audit)
    exits_before, entries_before = trader.summary.exits, trader.summary.entries
    for _ in range(60):
        assert step(trader, terminal, wall) == []  # no loop ends with an unwanted position
    assert trader.summary.exits >= exits_before + len(symbols)  # each symbol exited in time
    assert trader.broker.positions() == ()
    assert trader.summary.entries == entries_before  # nothing new opened without its record
    assert not trader.state.entries_enabled
    journaled = list(trader.audit.journal.records)
    intents = [r for r in journaled if r["table"] == "orders" and r["row"]["status"] == "intent"]
    assert intents and all(r["row"]["kind"] == "close" for r in intents)

    make_room(trader.audit)
    wall.advance(120)  # the next probe is due
    step(trader, terminal, wall)
    assert trader.state.entries_enabled and trader.audit.outage is None
    assert trader.audit.journal.records == []
    assert all(r.ok for r in trader.audit.verify())
    conn = sqlite3.connect(config.audit_db)
    for record in intents:
        cid = record["row"]["client_order_id"]
        statuses = [
            s
            for (s,) in conn.execute(
                "SELECT status FROM orders WHERE client_order_id = ? ORDER BY id", (cid,)
            )
        ]
        assert statuses[0] == "intent" and statuses[-1] in ("filled", "dry_filled"), statuses
        assert statuses.count("intent") == 1  # moved once
    recovered = conn.execute("SELECT data FROM events WHERE kind = 'audit_recovered'").fetchall()
    conn.close()
    assert len(recovered) == 1 and json.loads(recovered[0][0])["failed_writes"] > 0


def test_the_kill_switch_acts_within_one_loop_during_an_outage(outage_trader):
    config, terminal, trader, wall, _ = outage_trader()
    fill_the_database(trader.audit)
    step(trader, terminal, wall)
    config.kill_switch_file.write_text("close_all\n")
    step(trader, terminal, wall)
    assert terminal.positions_get() == ()
    assert trader.state.kill_switch.level == "halt"
    kinds = [r["row"].get("kind") for r in trader.audit.journal.records if r["table"] == "events"]
    assert "kill_switch_on" in kinds


def test_an_outage_alerts_once_and_logs_once_a_minute(outage_trader, caplog):
    _, terminal, trader, wall, alerts = outage_trader()
    caplog.set_level(logging.INFO)
    fill_the_database(trader.audit)
    for _ in range(36):  # 360 s of wall time
        step(trader, terminal, wall)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("AUDIT LOG UNWRITABLE" in m for m in messages) == 1
    assert 4 <= sum("audit log still unwritable" in m for m in messages) <= 7
    assert not any("audit log writable again" in m for m in messages)
    critical = [a for a in alerts.sent if a[2] == "critical" and "audit log" in a[1]]
    assert len(critical) == 1
    assert sum(r.levelno >= logging.ERROR for r in caplog.records) <= 10

    make_room(trader.audit)
    for _ in range(10):
        step(trader, terminal, wall)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("audit log writable again" in m for m in messages) == 1


def test_probes_back_off_and_entries_wait_for_a_probe_that_got_through(outage_trader):
    _, terminal, trader, wall, _ = outage_trader()
    fill_the_database(trader.audit)
    probes = []
    real_probe = trader.audit.probe
    trader.audit.probe = lambda: probes.append(wall()) or real_probe()
    for _ in range(60):  # 600 s, every bar a loop
        step(trader, terminal, wall)
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert len(probes) < 20 and gaps == sorted(gaps) and max(gaps) <= 70
    assert not trader.state.entries_enabled
    make_room(trader.audit)
    step(trader, terminal, wall)
    assert not trader.state.entries_enabled  # the probe is not due yet: no write has proved it
    wall.advance(70)
    step(trader, terminal, wall)
    assert trader.state.entries_enabled


def test_a_crash_in_an_outage_leaves_the_journal_for_the_restart(
    outage_trader, make_trader, live_config
):
    config, terminal, trader, wall, _ = outage_trader()
    fill_the_database(trader.audit)
    for _ in range(40):
        step(trader, terminal, wall)
        if trader.audit.journal.records:
            break
    kept = [r for r in trader.audit.journal.records if r["table"] == "orders"]
    assert kept, "no exit happened in the outage"
    trader.audit.close()  # the process dies here: no shutdown, the cap goes with it
    again = AuditLogger(config.audit_db)
    assert again.journal.records == []
    assert all(r.ok for r in again.verify())
    for record in kept:
        cid, status = record["row"]["client_order_id"], record["row"]["status"]
        found = [r for r in again.reader.order_rows(cid) if r["status"] == status]
        assert len(found) == 1
    again.close()


def test_the_journal_is_made_whole_at_once_and_takes_records_on_a_full_disk(tmp_path):
    journal = FallbackJournal(tmp_path / "j")
    assert (tmp_path / "j").stat().st_size == JOURNAL_BYTES
    assert (tmp_path / "j").stat().st_blocks * 512 >= JOURNAL_BYTES  # real blocks, not sparse
    journal.append({"table": "orders", "row": {"client_order_id": "LTX"}})
    journal.close()
    (tmp_path / "j").open("r+b").write(
        b'{"table": "orders", "row": {"client_order_id": "LTX"}}\n{"cut'
    )
    assert [r["row"]["client_order_id"] for r in FallbackJournal(tmp_path / "j").records] == ["LTX"]

    script = """
import sys
from pathlib import Path
from live.audit_logger import AuditLogger
from live.errors import AuditWriteError
disk = Path(sys.argv[1])
audit = AuditLogger(disk / "audit.db")
with open(disk / "filler", "wb", buffering=0) as filler:  # the disk fills up
    try:
        while True:
            filler.write(bytes(4096))
    except OSError:
        pass
try:
    audit.record_event("x", "y" * 5000)
except AuditWriteError as exc:
    print("refused:", exc)
kept = audit.record_order(
    client_order_id="LTCLOSE", status="intent", symbol="EURUSD", kind="close",
    dry_run=False, fallback=True,
)
print("journaled:", kept, "kept:", len(audit.journal.records))
"""
    done = on_tiny_disk(
        "2m",
        tmp_path / "disk",
        tmp_path / "after",
        [sys.executable, "-c", script, str(tmp_path / "disk")],
    )
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "disk full" in done.stdout
    assert "journaled: 0 kept: 1" in done.stdout
    records = FallbackJournal(tmp_path / "after" / "audit.db.journal").records
    assert [r["row"]["client_order_id"] for r in records] == ["LTCLOSE"]
