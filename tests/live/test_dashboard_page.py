"""The dashboard page in headless Chromium: the chart shows every point and follows new ones
until the user zooms, labels and layout that say what they mean, on a desktop and a phone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

from live.audit_logger import AuditLogger
from tests.live.test_dashboard_edges import clocked, heartbeat, served, snapshot, trader_db

__all__ = ["trader_db"]  # the fixture, shared with the API tests

POINTS = "Number(document.querySelector('#equity-chart').dataset.points)"
FITTED = "document.querySelector('#equity-chart').dataset.fitted"


def api_points(base: str) -> int:
    """The points the page should draw (one per distinct time, as /api/equity gives them)."""
    points = requests.get(base + "/api/equity?limit=2000", timeout=10).json()["points"]
    return len({p["ts"] for p in points})


def add_snapshots(db, count: int) -> None:
    """Snapshots after the last one recorded, as a running trader adds them."""
    last = AuditLogger(db).reader.latest_snapshot()
    audit, moment = clocked(db, datetime.fromisoformat(str(last["ts"])))
    for number in range(count):
        moment[0] += timedelta(hours=1)
        snapshot(audit, float(last["equity"]) + number)
    audit.close()


@pytest.mark.browser
def test_the_chart_shows_every_point_and_keeps_a_users_zoom(trader_db, page_probe, tmp_path):
    with served(trader_db) as base:
        probe = page_probe((base,), width=1280, height=900)
        page = probe.page
        page.goto(base + "/")
        page.wait_for_function(f"() => {POINTS} == {api_points(base)} && {FITTED} === 'true'")
        assert page.locator("#equity-chart a").count() == 0  # no logo over the line
        assert "TradingView" in page.locator("footer").inner_text()  # the attribution

        add_snapshots(trader_db, 5)  # new points: still all of them visible
        page.wait_for_function(
            f"() => {POINTS} == {api_points(base)} && {FITTED} === 'true'", timeout=15_000
        )
        page.screenshot(path=str(tmp_path / "fitted.png"))

        box = page.locator("#equity-chart").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 3)
        page.mouse.wheel(0, -600)  # the user zooms in
        page.wait_for_function(f"() => {FITTED} === 'false'")
        add_snapshots(trader_db, 3)
        page.wait_for_function(f"() => {POINTS} == {api_points(base)}", timeout=15_000)
        assert page.evaluate(FITTED) == "false"  # their zoom is kept

        page.get_by_role("button", name="Show all").click()
        page.wait_for_function(f"() => {FITTED} === 'true'")
        assert probe.errors == [] and probe.blocked == []


@pytest.mark.browser
def test_a_stopped_trader_and_the_columns(trader_db, page_probe):
    with served(trader_db) as base:
        probe = page_probe((base,), width=1280, height=900)
        page = probe.page
        page.goto(base + "/")
        page.locator("#orders tr").nth(2).wait_for()
        assert page.locator("#state").inner_text().startswith("stopped")
        headline = page.locator("#headline").inner_text()
        assert "SmaCross" in headline and "connected" not in headline.lower()
        aligned = page.evaluate("""() => [...document.querySelectorAll('#orders th')]
            .map(th => [th.textContent, getComputedStyle(th).textAlign])""")
        assert ["Lots", "right"] in aligned and ["Retcode", "right"] in aligned
        assert ["Symbol", "left"] in aligned
        assert page.locator(".more-hint.shown").count() == 0  # everything fits on a desktop
        assert str(trader_db) in page.locator("#db-path").inner_text()
        # a stopped trader opens nothing, whatever its last heartbeat allowed
        entries = page.locator(".card", has_text="New entries").inner_text()
        assert "none" in entries and "the trader is stopped" in entries
        assert "allowed" not in entries
        assert probe.errors == []


@pytest.mark.browser
def test_on_a_phone_hidden_columns_are_announced(trader_db, page_probe, tmp_path):
    with served(trader_db) as base:
        probe = page_probe((base,), width=390, height=844, is_mobile=True, has_touch=True)
        page = probe.page
        page.goto(base + "/")
        page.locator("#orders tr").nth(2).wait_for()
        hint = page.locator("#orders").locator("xpath=../preceding-sibling::p[1]")
        assert hint.is_visible() and "sideways" in hint.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no page scroll
        # the columns that say what happened fit on the screen; the secondary ones are left out
        shown = page.evaluate("""() => [...document.querySelectorAll('#signals th')]
            .filter(th => th.offsetParent !== null)
            .map(th => [th.textContent, Math.round(th.getBoundingClientRect().right)])""")
        assert [name for name, _ in shown] == ["Bar", "Symbol", "Target", "Action", "Outcome"]
        assert max(right for _, right in shown) <= 390
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        assert probe.errors == []


@pytest.mark.browser
def test_kill_switch_blocks_entries_on_the_page(tmp_path, page_probe):
    audit, _ = clocked(tmp_path / "audit.db")
    snapshot(audit, 10_000.0)
    heartbeat(
        audit,
        kill_switch="close_all",
        entries_enabled=True,
        strategy="S",
        symbols=["EURUSD"],
        timeframe="H1",
    )
    with served(audit.path) as base:
        probe = page_probe((base,))
        probe.page.goto(base + "/")
        entries = probe.page.locator(".card", has_text="New entries")
        entries.locator(".sub").wait_for()
        assert "blocked" in entries.inner_text() and "close_all" in entries.inner_text()
        assert "KILL SWITCH: close_all" in probe.page.locator(".banner.critical").inner_text()


@pytest.mark.browser
def test_the_next_news_blackout_is_shown(tmp_path, page_probe):
    audit, _ = clocked(tmp_path / "audit.db")
    snapshot(audit, 10_000.0)
    blackout = {
        "symbol": "EURUSD",
        "start": "2024-03-08T12:45:00+00:00",
        "end": "2024-03-08T14:00:00+00:00",
        "event": "USD high: Non-Farm Employment Change",
    }
    market = {"broker_offset": "NY+7 (UTC+02:00 now)", "next_blackouts": [blackout]}
    heartbeat(audit, strategy="S", symbols=["EURUSD"], timeframe="H1", market=market)
    with served(audit.path) as base:
        probe = page_probe((base,))
        probe.page.goto(base + "/")
        card = probe.page.locator(".card", has_text="Next news blackout")
        card.locator(".sub").wait_for()
        text = card.inner_text()
        assert "EURUSD 2024-03-08 12:45" in text and "until 2024-03-08 14:00" in text
        assert "NY+7 (UTC+02:00 now)" in text
        assert probe.errors == []


@pytest.mark.browser
def test_each_account_rule_floor_is_shown_and_a_breach_blocks_entries(tmp_path, page_probe):
    """What the trader's guard describes (a real AccountGuard after a breach): a card per
    floor with where it stops, the distance in money and %, the firm's level and the next
    reset; the breach as a banner and on the entries card."""
    from backtest.broker_clock import UTC_ZONE
    from backtest.prop_rules import load_preset
    from live.account_guard import AccountGuard

    audit, _ = clocked(tmp_path / "audit.db")
    snapshot(audit, 100_000.0)
    guard = AccountGuard(
        load_preset("static_5_10"),
        None,
        record=None,
        zone=lambda: UTC_ZONE,
        now=lambda: datetime.fromisoformat("2024-03-08T12:00:00+00:00"),
        account_size=100_000.0,
    )
    guard.check(100_000.0, 97_000.0)
    healthy = guard.describe()
    guard.check(100_000.0, 95_400.0)
    heartbeat(audit, strategy="S", symbols=["EURUSD"], timeframe="H1",
              account_rules=healthy)  # fmt: skip
    with served(audit.path) as base:
        probe = page_probe((base,))
        probe.page.goto(base + "/")
        daily = probe.page.locator(".card", has_text="static_5_10: daily floor")
        daily.locator(".sub").wait_for()
        text = daily.inner_text()
        assert "95,500.00" in text and "1,500.00 (1.50%) away" in text
        assert "firm's level 95,000.00" in text and "resets 2024-03-08 23:00" in text
        assert "90,500.00" in probe.page.locator(".card", has_text="maximum loss").inner_text()
        assert probe.errors == []
    heartbeat(audit, strategy="S", symbols=["EURUSD"], timeframe="H1", entries_enabled=False,
              disabled_reasons=[guard.blocker()], account_rules=guard.describe())  # fmt: skip
    with served(audit.path) as base:
        probe = page_probe((base,))
        probe.page.goto(base + "/")
        banner = probe.page.locator(".banner.warning", has_text="account rules")
        banner.wait_for()
        assert "daily floor breached" in banner.inner_text() and "halted" in banner.inner_text()
        assert "blocked" in probe.page.locator(".card", has_text="New entries").inner_text()
        assert probe.errors == []


@pytest.mark.browser
def test_the_no_data_page_names_the_database(tmp_path, page_probe):
    missing = tmp_path / "not-yet" / "audit.db"
    with served(missing) as base:
        probe = page_probe((base,))
        probe.page.goto(base + "/")
        probe.page.wait_for_function(
            "() => document.querySelector('#state').dataset.state === 'no data'"
        )
        probe.page.locator("#headline", has_text=str(missing)).wait_for()
        assert str(missing) in probe.page.locator("#db-path").inner_text()
        assert probe.errors == []


def managed_run_db(live_config, make_sim, make_trader, tmp_path, name, params, until) -> object:
    """A live run on the simulator of a shipped management example, stopped as soon as
    `until(trader)` holds; its database copied as an operator would find it."""
    from tests.live.conftest import ROOT, copy_audit_db, run_bars

    config = live_config(
        dry_run=False,
        strategy_path=str(ROOT / "backtest" / "strategies" / f"{name}.py"),
        strategy_params=params,
        lot_size=0.1,
        audit_db=tmp_path / name / "audit.db",
    )
    terminal = make_sim(history_bars=400)
    trader = make_trader(config, terminal)
    trader.start()
    for _ in range(1500):
        run_bars(trader, terminal, 1)
        if until(trader):
            break
    trader.status.heartbeat(True)  # the page reads the newest heartbeat
    trader.shutdown()
    return copy_audit_db(config.audit_db, tmp_path / name / "served.db")


@pytest.mark.browser
def test_pending_orders_and_stop_changes_are_shown(
    live_config, make_sim, make_trader, page_probe, tmp_path
):
    pending_db = managed_run_db(
        live_config, make_sim, make_trader, tmp_path, "pending_breakout",
        "channel=8,fast=5,slow=20,atr_period=10", lambda t: bool(t.state.pending),
    )  # fmt: skip
    with served(pending_db) as base:
        status = requests.get(base + "/api/status", timeout=10).json()
        (order,) = status["pending_orders"]
        probe = page_probe((base,), width=1280, height=900)
        page = probe.page
        page.goto(base + "/")
        page.locator("#pending tr").nth(1).wait_for()
        row = page.locator("#pending tr").nth(1).inner_text()
        assert order["type"] in ("buy stop", "sell stop") and order["type"] in row
        assert f"{order['price']}" in row and f"{order['sl']}" in row
        assert order["expires"] is not None  # the symbol allows a specified expiry
        assert probe.errors == []

    moved_db = managed_run_db(
        live_config, make_sim, make_trader, tmp_path, "donchian_chandelier",
        "channel=10,period=10,atr_period=10", lambda t: t.summary.stop_changes >= 2,
    )  # fmt: skip
    with served(moved_db) as base:
        probe = page_probe((base,), width=1280, height=900)
        page = probe.page
        page.goto(base + "/")
        page.locator("#orders tr").nth(2).wait_for()
        rows = page.locator("#orders tr").all_inner_texts()
        changes = [r for r in rows if "modify" in r]
        assert changes, rows
        sl = requests.get(base + "/api/orders?limit=25", timeout=10).json()["rows"]
        modified = [r for r in sl if r["kind"] == "modify"]
        assert any(f"{r['sl']} / " in changes[0] for r in modified)  # the SL it set is shown
        assert probe.errors == []
