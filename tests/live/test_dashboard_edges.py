"""The dashboard's edges: a database replaced or deleted under it, every error as JSON,
unknown parameters, equity paging and the all-time drawdown peak, the account shown from the
newest record, and the command line when the port is taken."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from live.audit_logger import AuditLogger
from live.dashboard import create_app
from tests.live.conftest import ROOT, copy_audit_db, run_bars, serve_app

T0 = datetime(2024, 3, 4, 10, tzinfo=UTC)


@pytest.fixture
def trader_db(live_config, make_sim, make_trader, tmp_path) -> Path:
    """A database written by a real dry run on the simulator, copied (no -wal) to its own
    file the way an operator would find it after the run."""
    config = live_config(strategy_params="fast=3,slow=6")
    terminal = make_sim()
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 150)
    trader.shutdown()
    return copy_db(config.audit_db, tmp_path / "served" / "audit.db")


def copy_db(source: Path, target: Path) -> Path:
    return copy_audit_db(source, target)


def clocked(path: Path, start: datetime = T0) -> tuple[AuditLogger, list[datetime]]:
    """An audit logger whose rows carry times the test sets (moment[0])."""
    audit = AuditLogger(path)
    moment = [start]
    audit.use_clock(lambda: moment[0])
    return audit, moment


def snapshot(audit: AuditLogger, equity: float, balance: float = 10_000.0) -> None:
    audit.record_snapshot(
        balance=balance,
        equity=equity,
        margin=0.0,
        margin_free=equity,
        margin_level=0.0,
        profit=equity - balance,
        open_positions=0,
        dry_run=True,
    )


def served(db: Path):
    """The dashboard of `db` under waitress; yields its base URL."""
    return serve_app(create_app(db))


def remove_db(path: Path) -> None:
    """The database and its WAL companions, as SQLite needs them removed together."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)


# ---------------------------------------------------------------- replaced or deleted


def other_db(path: Path) -> Path:
    audit, _ = clocked(path, T0 + timedelta(days=30))
    audit.record_event("startup", "another database")
    audit.record_order(
        client_order_id="LTREPLACEMENT0001",
        status="intent",
        symbol="XAUUSD",
        side="buy",
        kind="open",
        volume=0.02,
        dry_run=True,
    )
    audit.close()
    return path


def test_a_replaced_or_deleted_database_is_never_served_from_the_old_file(trader_db, tmp_path):
    keep = copy_db(trader_db, tmp_path / "kept.db")
    with served(trader_db) as base:
        first = requests.get(base + "/api/orders?limit=500", timeout=10).json()["rows"]
        assert first and requests.get(base + "/api/summary", timeout=10).json()["count"] > 0

        remove_db(trader_db)  # a new database moved in place of the old one
        os.replace(other_db(tmp_path / "other.db"), trader_db)
        rows = requests.get(base + "/api/orders", timeout=10).json()["rows"]
        assert [r["client_order_id"] for r in rows] == ["LTREPLACEMENT0001"]
        assert requests.get(base + "/api/summary", timeout=10).json()["count"] == 0

        remove_db(trader_db)
        status = requests.get(base + "/api/status", timeout=10).json()
        assert status["state"] == "no data" and str(trader_db) in status["message"]
        assert requests.get(base + "/api/orders", timeout=10).json()["rows"] == []

        shutil.copyfile(keep, trader_db)  # a backup copied back
        again = requests.get(base + "/api/orders?limit=500", timeout=10).json()["rows"]
        assert [r["id"] for r in again] == [r["id"] for r in first]


def test_a_database_copied_over_the_same_file_is_noticed(trader_db, tmp_path):
    """Same inode, new content (cp over it): the first event or the event count changed."""
    replacement = other_db(tmp_path / "other.db")
    with served(trader_db) as base:
        assert requests.get(base + "/api/summary", timeout=10).json()["count"] > 0
        inode = trader_db.stat().st_ino
        with open(replacement, "rb") as source, open(trader_db, "r+b") as target:
            target.truncate(0)
            shutil.copyfileobj(source, target)
        assert trader_db.stat().st_ino == inode
        assert requests.get(base + "/api/summary", timeout=10).json()["count"] == 0
        rows = requests.get(base + "/api/orders", timeout=10).json()["rows"]
        assert [r["client_order_id"] for r in rows] == ["LTREPLACEMENT0001"]


def test_rows_the_trader_adds_keep_the_same_database(trader_db):
    """New rows (and checkpoints into the main file) are no replacement: the summary stays
    incremental and counts the new trade once."""
    with served(trader_db) as base:
        before = requests.get(base + "/api/summary", timeout=10).json()
        audit = AuditLogger(trader_db)
        audit.record_trade(
            symbol="EURUSD",
            position_ticket=987654,
            dry_run=True,
            direction="long",
            volume=0.01,
            entry_time=T0,
            entry_price=1.1,
            exit_time=T0,
            exit_price=1.1005,
            pnl=5.0,
            exit_reason="tp",
        )
        audit.close()
        with sqlite3.connect(trader_db) as conn:  # the main file changes, as at a checkpoint
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        after = requests.get(base + "/api/summary", timeout=10).json()
    assert after["count"] == before["count"] + 1
    assert after["net_pnl"] == pytest.approx(before["net_pnl"] + 5.0)


# ---------------------------------------------------------------- errors as JSON


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_get_json_405(trader_db, method):
    response = create_app(trader_db).test_client().open("/api/orders", method=method)
    assert response.status_code == 405 and response.is_json
    assert "read-only" in response.get_json()["error"] and "GET" in response.headers["Allow"]


@pytest.mark.parametrize("content", [b"not a database", b""])
def test_a_file_that_is_no_audit_database_gets_json_500_naming_it(tmp_path, content):
    path = tmp_path / "notaudit.db"
    if content:
        path.write_bytes(content)
    else:
        sqlite3.connect(path).execute("CREATE TABLE unrelated (x)").connection.close()
    with served(path) as base:
        for endpoint in ("/api/status", "/api/orders", "/api/summary", "/api/equity", "/metrics"):
            response = requests.get(base + endpoint, timeout=10)
            assert response.status_code == 500, endpoint
            assert response.headers["Content-Type"].startswith("application/json")
            error = response.json()["error"]
            assert str(path) in error and "Traceback" not in response.text, error


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("/api/orders?symbl=EURUSD", "symbl"),
        ("/api/status?verbose=1", "verbose"),
        ("/api/equity?lmit=5", "lmit"),
        ("/api/events?exclude_level=info", "exclude_level"),
        ("/api/summary?dryrun=true", "dryrun"),
        ("/metrics?x=1", "x"),
    ],
)
def test_unknown_parameters_get_400_naming_them(trader_db, query, name):
    response = create_app(trader_db).test_client().get(query)
    assert response.status_code == 400
    assert f"unknown parameter '{name}'" in response.get_json()["error"]


def test_the_token_parameter_is_no_unknown_parameter(trader_db):
    guarded = create_app(trader_db, token="t0ken-for-the-tests").test_client()
    moved = guarded.get("/api/orders?token=t0ken-for-the-tests&limit=2")
    assert moved.status_code == 303 and moved.headers["Location"] == "/api/orders?limit=2"
    assert guarded.get(moved.headers["Location"]).status_code == 200
    # without a token configured, a stray ?token= is not mistaken for a typo either
    assert create_app(trader_db).test_client().get("/api/orders?token=x&limit=2").status_code == 200


# ---------------------------------------------------------------- equity


def test_equity_pages_like_the_other_endpoints_and_drawdown_uses_the_all_time_peak(tmp_path):
    audit, moment = clocked(tmp_path / "audit.db")
    for equity in (100.0, 150.0, 120.0, 110.0, 130.0, 90.0):
        snapshot(audit, equity)
        moment[0] += timedelta(hours=1)
    client = create_app(audit.path).test_client()

    newest = client.get("/api/equity?limit=3").get_json()
    assert (newest["limit"], newest["offset"]) == (3, 0)
    assert [p["equity"] for p in newest["points"]] == [110.0, 130.0, 90.0]
    assert [p["drawdown"] for p in newest["points"]] == [-40.0, -20.0, -60.0]  # peak 150
    assert newest["points"][2]["drawdown_pct"] == -40.0

    older = client.get("/api/equity?limit=3&offset=3").get_json()["points"]
    assert [p["equity"] for p in older] == [100.0, 150.0, 120.0]
    assert [p["drawdown"] for p in older] == [0.0, 0.0, -30.0]
    assert client.get("/api/equity?offset=-1").status_code == 400

    snapshot(audit, 160.0)  # a new peak moves the window on
    last = client.get("/api/equity?limit=2").get_json()["points"]
    assert [(p["equity"], p["drawdown"]) for p in last] == [(90.0, -60.0), (160.0, 0.0)]


def heartbeat(audit: AuditLogger, **fields: object) -> None:
    audit.record_event(
        "heartbeat",
        "dry-run",
        data={
            "wall_ts": datetime.now(UTC).isoformat(),
            "mode": "dry-run",
            "backend": "sim",
            "connected": True,
            "kill_switch": None,
            "entries_enabled": True,
            "disabled_reasons": [],
            **fields,
        },
    )


def test_cards_and_chart_end_on_the_newest_account_record(tmp_path):
    audit, moment = clocked(tmp_path / "audit.db")
    snapshot(audit, 10_010.0, balance=10_000.0)
    moment[0] += timedelta(minutes=3)
    heartbeat(
        audit,
        account={"balance": 10_004.0, "equity": 10_020.0, "margin": 5.0, "margin_free": 10_015.0},
    )
    client = create_app(audit.path).test_client()

    latest = client.get("/api/status").get_json()["latest_account"]
    assert (latest["source"], latest["equity"], latest["balance"]) == (
        "heartbeat",
        10_020.0,
        10_004.0,
    )
    points = client.get("/api/equity").get_json()["points"]
    assert [(p["equity"], p["source"]) for p in points] == [
        (10_010.0, "snapshot"),
        (10_020.0, "heartbeat"),
    ]
    assert client.get("/api/equity?offset=1").get_json()["points"] == []  # only the newest

    moment[0] += timedelta(minutes=2)
    snapshot(audit, 10_030.0, balance=10_004.0)  # now the snapshot is the newer record
    latest = client.get("/api/status").get_json()["latest_account"]
    assert (latest["source"], latest["equity"]) == ("snapshot", 10_030.0)
    assert [p["source"] for p in client.get("/api/equity").get_json()["points"]] == [
        "snapshot",
        "snapshot",
    ]


def test_entries_are_blocked_whenever_the_kill_switch_is_on(tmp_path):
    audit, _ = clocked(tmp_path / "audit.db")
    heartbeat(audit, kill_switch="halt", entries_enabled=True)  # as older traders recorded it
    status = create_app(audit.path).test_client().get("/api/status").get_json()
    assert status["kill_switch"] == "halt" and status["entries_enabled"] is False


def test_no_data_names_the_database_it_reads(tmp_path):
    missing = tmp_path / "nowhere" / "audit.db"
    status = create_app(missing).test_client().get("/api/status").get_json()
    assert status["state"] == "no data" and str(missing) in status["message"]
    assert status["db"] == str(missing)


# ---------------------------------------------------------------- command line


def dashboard(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = tmp_path / "test.env"
    env.write_text(f"AUDIT_DB={tmp_path / 'audit.db'}\n")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "live" / "dashboard.py"), "--config", str(env), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = dashboard(tmp_path, "--port", str(port))
        out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert f"127.0.0.1:{port}" in err and "--port" in err
    assert "Traceback" not in err and "dashboard on" not in out


def free_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")
def test_an_ipv6_address_is_printed_in_brackets(tmp_path):
    port = free_port(socket.AF_INET6, "::1")
    process = dashboard(tmp_path, "--host", "::1", "--port", str(port))
    try:
        line = process.stdout.readline()  # printed once the port is bound
        assert line.startswith(f"dashboard on http://[::1]:{port} "), line
        status = requests.get(f"http://[::1]:{port}/api/status", timeout=10).json()
        assert status["state"] == "no data"
    finally:
        process.terminate()
        process.communicate(timeout=30)
