"""The dashboard's JSON API, metrics, security rules and its page in headless Chromium, over an
audit database made by a real dry run."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from live.audit_logger import AuditLogger
from live.audit_reader import AuditReader
from live.dashboard import MAX_LIMIT, create_app, equity_points
from tests.live.conftest import ROOT, SMA_CROSS, copy_audit_db, serve_app

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@pytest.fixture(scope="module")
def dry_run_db(tmp_path_factory) -> Path:
    """An audit DB written by `live_trader.py --dry-run` on the simulator (3 symbols)."""
    folder = tmp_path_factory.mktemp("dashboard")
    env = folder / "test.env"
    env.write_text(
        f"AUDIT_DB={folder / 'audit.db'}\nLOG_DIR={folder / 'logs'}\n"
        f"KILL_SWITCH_FILE={folder / 'KILL'}\nLOCK_DIR={folder / 'locks'}\nMT5_BACKEND=sim\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "live" / "live_trader.py"),
            "--config",
            str(env),
            "--strategy",
            str(SMA_CROSS),
            "--param",
            "fast=5",
            "--param",
            "slow=12",
            "--symbols",
            "EURUSD,GBPUSD,USDJPY",
            "--dry-run",
            "--max-bars",
            "300",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return folder / "audit.db"


@pytest.fixture
def db(dry_run_db, tmp_path) -> Path:
    """A private copy, so tests that add rows do not disturb the others."""
    return copy_audit_db(dry_run_db, tmp_path / "audit.db")


@pytest.fixture
def client(db):
    return create_app(db).test_client()


def test_status_reports_the_last_heartbeat(client, db):
    status = client.get("/api/status").get_json()
    assert status["state"] == "stopped"  # the run ended with a shutdown event
    assert status["mode"] == "dry-run" and status["backend"] == "sim"
    assert status["symbols"] == ["EURUSD", "GBPUSD", "USDJPY"]
    assert status["account"]["equity"] > 0 and status["limits"]["max_trades_per_day"] == 20
    assert status["kill_switch"] is None


def test_status_is_stale_without_recent_heartbeats_and_running_with_them(db):
    audit = AuditLogger(db)
    beat = {"wall_ts": datetime(2030, 1, 1, tzinfo=UTC).isoformat(), "mode": "live"}
    audit.record_event("heartbeat", "live", data=beat)
    at = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    fresh = create_app(db, wall_clock=lambda: at + 20).test_client()
    assert fresh.get("/api/status").get_json()["state"] == "running"
    late = create_app(db, wall_clock=lambda: at + 600).test_client()
    assert late.get("/api/status").get_json()["state"] == "stale"


def test_positions_come_from_the_trader(client):
    positions = client.get("/api/positions").get_json()["rows"]
    assert positions and {p["symbol"] for p in positions} <= {"EURUSD", "GBPUSD", "USDJPY"}


@pytest.mark.parametrize(
    ("path", "table"),
    [
        ("/api/orders", "orders"),
        ("/api/signals", "signals"),
        ("/api/events", "events"),
        ("/api/trades", "trades"),
    ],
)
def test_tables_page_newest_first(client, db, path, table):
    first = client.get(f"{path}?limit=5").get_json()["rows"]
    second = client.get(f"{path}?limit=5&offset=5").get_json()["rows"]
    ids = [r["id"] for r in first + second]
    with sqlite3.connect(db) as conn:
        newest = [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id DESC LIMIT 10")]
    assert ids == newest
    assert "row_hash" not in first[0]


def test_filters(client):
    orders = client.get("/api/orders?symbol=GBPUSD&limit=50").get_json()["rows"]
    assert orders and {o["symbol"] for o in orders} == {"GBPUSD"}
    events = client.get("/api/events?exclude_kind=heartbeat&limit=500").get_json()["rows"]
    assert events and "heartbeat" not in {e["kind"] for e in events}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("/api/orders?limit=0", "limit must be between 1 and"),
        (f"/api/orders?limit={MAX_LIMIT + 1}", "limit must be between"),
        ("/api/signals?offset=-1", "offset must be between"),
        ("/api/events?limit=ten", "limit must be an integer"),
        ("/api/orders?symbol=EUR%20USD", "symbol must be"),
        ("/api/summary?dry_run=maybe", "dry_run must be"),
        ("/api/equity?limit=0", "limit must be between"),
    ],
)
def test_bad_parameters_get_400_json(client, query, message):
    response = client.get(query)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_unknown_api_path_is_404_json(client):
    response = client.get("/api/nothing")
    assert response.status_code == 404 and "error" in response.get_json()


def test_summary_matches_the_trades(client, db):
    summary = client.get("/api/summary").get_json()
    with sqlite3.connect(db) as conn:
        pnl = [r[0] for r in conn.execute("SELECT pnl FROM trades ORDER BY id")]
    assert summary["count"] == len(pnl) > 10
    assert summary["net_pnl"] == pytest.approx(round(sum(pnl), 2))
    assert summary["wins"] == sum(p > 0 for p in pnl)


def test_equity_drawdown_from_the_running_peak():
    points = equity_points(
        [
            {"ts": "a", "balance": 1, "equity": 100.0},
            {"ts": "b", "balance": 1, "equity": 120.0},
            {"ts": "c", "balance": 1, "equity": 90.0},
        ]
    )
    assert [p["drawdown"] for p in points] == [0.0, 0.0, -30.0]
    assert points[2]["drawdown_pct"] == -25.0


def test_metrics_in_prometheus_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(True))}
    for name in (
        "trader_loop_duration_seconds",
        "trader_decision_latency_ms",
        "trader_orders",
        "trader_reconnects",
        "trader_alert_queue_depth",
        "trader_account_equity",
    ):
        assert name in families, name
    orders = {
        s.labels["retcode"]: s.value
        for s in families["trader_orders"].samples
        if s.name == "trader_orders_total"
    }
    assert orders.get("10009", 0) > 0


def test_the_dashboard_cannot_write(client, db):
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    for path in ("/api/status", "/api/orders", "/api/summary", "/metrics", "/"):
        assert client.get(path).status_code == 200
    assert client.post("/api/orders").status_code == 405
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with pytest.raises(sqlite3.OperationalError):  # its read-only connection refuses writes
        AuditReader(db).query(
            "INSERT INTO events (ts, level, kind, prev_hash, row_hash) "
            "VALUES ('x', 'info', 'x', '', '')"
        )


def test_token_is_required_on_every_request_when_set(db):
    client = create_app(db, token="s3cret-token-for-tests").test_client()
    assert client.get("/api/status").status_code == 401
    assert client.get("/").status_code == 401
    assert client.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    bearer = {"Authorization": "Bearer s3cret-token-for-tests"}
    assert client.get("/api/status", headers=bearer).status_code == 200
    first = client.get("/?token=s3cret-token-for-tests")
    assert first.status_code == 303 and first.headers["Location"] == "/"
    assert client.get("/api/summary").status_code == 200  # the cookie carries it now
    assert b"s3cret-token" not in first.data


def test_refuses_to_bind_beyond_loopback_without_a_token(tmp_path):
    env = tmp_path / "test.env"
    env.write_text("DASHBOARD_HOST=0.0.0.0\n")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "live" / "dashboard.py"),
            "--config",
            str(env),
            "--db",
            str(tmp_path / "audit.db"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "DASHBOARD_TOKEN" in done.stderr


# ---------------------------------------------------------------- in the browser


@pytest.fixture
def served(db) -> Iterator[str]:
    """The app under waitress on a free loopback port, as `python dashboard.py` serves it."""
    with serve_app(create_app(db)) as base:
        yield base


@pytest.mark.browser
def test_page_shows_the_dry_run_and_updates_when_rows_arrive(served, db, page_probe):
    probe = page_probe((served,))
    page = probe.page
    page.goto(served + "/")
    page.locator("#orders tr").nth(5).wait_for()
    assert page.locator("#state").inner_text().startswith("stopped")
    assert "s ago (wall clock)" in page.locator("#state").inner_text()  # which clock it is
    assert page.locator("#clock").inner_text() == "Times: simulated market time (UTC)"
    assert page.locator("#positions tr").count() > 1
    assert "EURUSD" in page.locator("#orders").inner_text()
    assert page.locator("#equity-chart canvas").count() > 0

    audit = AuditLogger(db)
    audit.record_order(
        client_order_id="LTNEWROWARRIVED01",
        status="intent",
        symbol="XAUUSD",
        side="buy",
        kind="open",
        volume=0.01,
        dry_run=True,
    )
    page.locator("#orders td", has_text="LTNEWROWARRIVED01").first.wait_for(timeout=15_000)
    page.screenshot(path=str(db.with_name("dashboard.png")))
    assert probe.errors == [] and probe.blocked == []


@pytest.mark.browser
def test_markup_from_the_database_stays_text(served, db, page_probe):
    audit = AuditLogger(db)
    audit.record_event("strategy_error", XSS, level="error", symbol="EURUSD")
    audit.record_order(
        client_order_id="LTXSSPROBE",
        status="rejected",
        symbol="EURUSD",
        side="buy",
        kind="open",
        volume=0.01,
        detail=XSS,
        dry_run=True,
    )
    probe = page_probe((served,), bypass_csp=True)  # escaping must hold even without the CSP
    page = probe.page
    page.goto(served + "/")
    page.locator("#events td", has_text="onerror").first.wait_for()
    assert XSS in page.locator("#events").inner_text()
    assert XSS in page.locator("#orders").inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#events img, #orders img, #events script").count() == 0
    assert probe.dialogs == [] and probe.errors == []


@pytest.mark.browser
def test_kill_switch_banner(served, db, page_probe):
    AuditLogger(db).record_event(
        "heartbeat",
        "dry-run",
        data={
            **json.loads(
                sqlite3.connect(db)
                .execute("SELECT data FROM events WHERE kind = 'heartbeat' ORDER BY id DESC")
                .fetchone()[0]
            ),
            "kill_switch": "halt",
        },
    )
    probe = page_probe((served,), width=390, height=900)
    probe.page.goto(served + "/")
    banner = probe.page.locator(".banner.critical")
    banner.wait_for()
    assert "KILL SWITCH: halt" in banner.inner_text()
