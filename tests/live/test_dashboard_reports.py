"""The dashboard's trader-facing reports over real audit databases written by AuditLogger: each
order in one row with its P/L, P/L per UTC day and per symbol, the max-drawdown card's figure
and the chart on one basis, and several traders on one dashboard, chosen by name only."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from live.audit_logger import AuditLogger
from live.dashboard import create_app
from tests.live.conftest import ROOT, serve_app
from tests.live.test_dashboard_edges import T0, clocked, free_port, heartbeat, snapshot

# (position, exit time, symbol, P/L, entry client id, exit client id): the days and symbols
# the sums check
TRADES = [
    (101, T0 + timedelta(hours=5), "EURUSD", 50.0, "LT-A-OPEN", "LT-B-CLOSE"),
    (103, T0 + timedelta(days=1, hours=-1), "USDJPY", -30.0, "LT-D-OPEN", None),  # stop-loss
    (104, T0 + timedelta(days=1, hours=13, minutes=59), "GBPUSD", 20.25, None, None),
    (105, datetime.fromisoformat("2024-04-01T00:00:00+00:00"), "EURUSD", -10.5, None, None),
]
EQUITY = (10_000.0, 10_100.0, 9_950.0, 10_200.0, 10_050.0, 10_150.0)


def write_ledger(path: Path, *, strategy: str = "SmaCross", login: int = 5001) -> Path:
    """A trader's database: four orders (intent row first, then their outcome), four closed
    trades over three UTC days, equity snapshots over two months and a heartbeat newer than
    the last one."""
    audit, moment = clocked(path)
    audit.record_event("startup", "ledger")
    order = {"dry_run": True, "volume": 0.1}
    audit.record_order(client_order_id="LT-A-OPEN", status="intent", symbol="EURUSD",
                       side="buy", kind="open", sl=1.09, tp=1.12, detail="fast crossed up",
                       **order)  # fmt: skip
    moment[0] += timedelta(seconds=1)
    audit.record_order(client_order_id="LT-A-OPEN", status="filled", symbol="EURUSD",
                       side="buy", kind="open", position_ticket=101, fill_price=1.1,
                       fill_volume=0.1, retcode=10009, attempt=1, **order)  # fmt: skip
    moment[0] += timedelta(hours=5)
    audit.record_order(client_order_id="LT-B-CLOSE", status="intent", symbol="EURUSD",
                       side="sell", kind="close", position_ticket=101, detail="exit signal",
                       **order)  # fmt: skip
    audit.record_order(client_order_id="LT-B-CLOSE", status="filled", symbol="EURUSD",
                       side="sell", kind="close", position_ticket=101, fill_price=1.105,
                       retcode=10009, attempt=1, **order)  # fmt: skip
    moment[0] += timedelta(hours=1)
    audit.record_order(client_order_id="LT-C-OPEN", status="intent", symbol="GBPUSD",
                       side="sell", kind="open", **order)  # fmt: skip
    audit.record_order(client_order_id="LT-C-OPEN", status="retry", symbol="GBPUSD",
                       side="sell", kind="open", attempt=1, retcode=10004, **order)  # fmt: skip
    audit.record_order(client_order_id="LT-C-OPEN", status="rejected", symbol="GBPUSD",
                       side="sell", kind="open", attempt=2, retcode=10006,
                       detail="rejected: no money", **order)  # fmt: skip
    audit.record_order(client_order_id="LT-D-OPEN", status="intent", symbol="USDJPY",
                       side="buy", kind="open", **order)  # fmt: skip
    audit.record_order(client_order_id="LT-D-OPEN", status="dry_filled", symbol="USDJPY",
                       side="buy", kind="open", position_ticket=103, fill_price=150.1,
                       **order)  # fmt: skip
    for ticket, exit_time, symbol, pnl, entry_cid, exit_cid in TRADES:
        audit.record_trade(
            symbol=symbol, position_ticket=ticket, dry_run=True,
            direction="long", volume=0.1, entry_time=T0, entry_price=1.0, exit_time=exit_time,
            exit_price=1.0, pnl=pnl, exit_reason="signal" if exit_cid else "stop-loss",
            entry_client_order_id=entry_cid, exit_client_order_id=exit_cid,
        )  # fmt: skip
    for equity in EQUITY:  # ten days apart: the chart's axis spans months
        snapshot(audit, equity)
        moment[0] += timedelta(days=10)
    heartbeat(audit, strategy=strategy, mode="dry-run",
              account={"login": login, "balance": 10_000.0, "equity": 9_990.0})  # fmt: skip
    audit.close()
    return path


@pytest.fixture
def ledger(tmp_path) -> Path:
    return write_ledger(tmp_path / "audit.db")


def test_each_order_is_one_row_with_its_outcome_and_pnl(ledger):
    client = create_app(ledger).test_client()
    rows = client.get("/api/order_groups").get_json()["rows"]
    assert [r["client_order_id"] for r in rows] == ["LT-D-OPEN", "LT-C-OPEN", "LT-B-CLOSE",
                                                    "LT-A-OPEN"]  # fmt: skip
    by_id = {r["client_order_id"]: r for r in rows}
    opened = by_id["LT-A-OPEN"]
    assert (opened["status"], opened["reason"], opened["steps"]) == (
        "filled", "fast crossed up", ["intent", "filled"])  # fmt: skip
    assert (opened["sl"], opened["tp"], opened["fill_price"]) == (1.09, 1.12, 1.1)
    assert opened["intent_ts"] < opened["outcome_ts"]
    assert (opened["pnl"], opened["pnl_of"]) == (50.0, "opened")  # the trade it opened
    assert (by_id["LT-B-CLOSE"]["pnl"], by_id["LT-B-CLOSE"]["pnl_of"]) == (50.0, "closed")
    assert (by_id["LT-D-OPEN"]["pnl"], by_id["LT-D-OPEN"]["position_ticket"]) == (-30.0, 103)
    rejected = by_id["LT-C-OPEN"]
    assert (rejected["status"], rejected["retcode"], rejected["attempts"]) == (
        "rejected", 10006, 2)  # fmt: skip
    assert (rejected["outcome"], rejected["pnl"], rejected["pnl_of"]) == (
        "rejected: no money", None, None)  # fmt: skip
    # four orders, nine rows: the raw table still has every row
    assert len(client.get("/api/orders?limit=50").get_json()["rows"]) == 9

    page = client.get("/api/order_groups?limit=2&offset=1&symbol=EURUSD").get_json()["rows"]
    assert [r["client_order_id"] for r in page] == ["LT-A-OPEN"]
    AuditLogger(ledger).record_order(client_order_id="LT-E-OPEN", status="intent",
                                     symbol="EURUSD", side="buy", kind="open", volume=0.2,
                                     dry_run=True)  # fmt: skip
    newest = client.get("/api/order_groups?limit=1").get_json()["rows"][0]
    assert (newest["client_order_id"], newest["status"], newest["outcome_ts"]) == (
        "LT-E-OPEN", "intent", None)  # in flight: asked, no outcome yet  # fmt: skip
    assert client.get("/api/order_groups?limit=0").status_code == 400
    assert "symbl" in client.get("/api/order_groups?symbl=X").get_json()["error"]


def test_daily_pnl_sums_the_closed_trades_of_each_utc_day(ledger):
    daily = create_app(ledger).test_client().get("/api/daily_pnl").get_json()
    assert daily["clock"] == "UTC"
    assert [(r["day"], r["count"], r["net_pnl"]) for r in daily["rows"]] == [
        ("2024-03-04", 1, 50.0),
        ("2024-03-05", 2, -9.75),  # 09:00 and 23:59 UTC the next day: one day
        ("2024-04-01", 1, -10.5),
    ]
    assert daily["total"]["net_pnl"] == round(sum(t[3] for t in TRADES), 2)
    assert daily["total"]["count"] == len(TRADES)
    day = daily["rows"][1]
    assert (day["wins"], day["losses"], day["win_rate_pct"], day["profit_factor"]) == (
        1, 1, 50.0, 0.68)  # fmt: skip


def test_per_symbol_breakdown(ledger):
    client = create_app(ledger).test_client()
    table = client.get("/api/symbols").get_json()
    rows = {r["symbol"]: r for r in table["rows"]}
    assert list(rows) == ["EURUSD", "GBPUSD", "USDJPY"]
    eurusd = rows["EURUSD"]
    assert (eurusd["count"], eurusd["net_pnl"], eurusd["gross_win"], eurusd["gross_loss"]) == (
        2, 39.5, 50.0, 10.5)  # fmt: skip
    assert (eurusd["win_rate_pct"], eurusd["profit_factor"]) == (50.0, 4.76)
    assert rows["GBPUSD"]["profit_factor"] is None  # no loss: no ratio
    assert table["total"]["net_pnl"] == client.get("/api/summary").get_json()["net_pnl"]
    assert client.get("/api/symbols?dry_run=false").get_json()["rows"] == []
    assert client.get("/api/symbols?dry_run=maybe").status_code == 400


def test_the_max_drawdown_card_is_the_charts_lowest_point(ledger):
    client = create_app(ledger).test_client()
    equity = client.get("/api/equity").get_json()
    deepest = equity["max_drawdown"]
    lowest = min(equity["points"], key=lambda p: p["drawdown"])
    # peak 10,200; the newer heartbeat's 9,990 is the deepest point, not a snapshot's 10,050
    assert deepest["amount"] == lowest["drawdown"] == -210.0
    assert deepest["pct"] == min(p["drawdown_pct"] for p in equity["points"])
    assert (deepest["ts"], lowest["source"]) == (lowest["ts"], "heartbeat")
    assert deepest["basis"] == "equity below its all-time peak"
    # a window of the chart: the card still measures from the all-time peak
    window = client.get("/api/equity?limit=1").get_json()
    assert window["max_drawdown"] == deepest and window["points"][0]["drawdown"] == -50.0
    # not the closed trades' P/L, which fell 30 from its own peak
    assert client.get("/api/summary").get_json()["max_drawdown"] == -30.0

    audit, _ = clocked(ledger, T0 + timedelta(days=90))
    snapshot(audit, 9_900.0)  # newer than the heartbeat: a new deepest point
    snapshot(audit, 10_400.0)
    again = client.get("/api/equity").get_json()
    assert again["max_drawdown"]["amount"] == min(p["drawdown"] for p in again["points"])
    assert again["max_drawdown"]["amount"] == -300.0


def test_an_empty_or_missing_database_has_no_drawdown(tmp_path):
    client = create_app(tmp_path / "none.db").test_client()
    assert client.get("/api/equity").get_json()["max_drawdown"] is None
    assert client.get("/api/daily_pnl").get_json()["rows"] == []
    assert client.get("/api/order_groups").get_json()["rows"] == []


# ---------------------------------------------------------------- several traders


def test_several_traders_each_chosen_by_name(tmp_path):
    first = write_ledger(tmp_path / "ftmo" / "audit.db", strategy="SmaCross", login=111)
    second = write_ledger(tmp_path / "demo" / "audit.db", strategy="Breakout", login=222)
    audit, _ = clocked(second, T0 + timedelta(days=60))
    audit.record_trade(symbol="XAUUSD", position_ticket=900, dry_run=True, pnl=99.0,
                       exit_time=T0 + timedelta(days=60), exit_client_order_id="X")  # fmt: skip
    audit.close()
    client = create_app([first, second]).test_client()

    traders = client.get("/api/traders").get_json()["traders"]
    assert [(t["name"], t["default"], t["strategy"], t["account"]) for t in traders] == [
        ("audit", True, "SmaCross", 111),
        ("demo-audit", False, "Breakout", 222),  # same file name: its folder's too
    ]
    count = client.get("/api/summary").get_json()["count"]  # the default: the first
    assert client.get("/api/summary?trader=audit").get_json()["count"] == count == len(TRADES)
    other = client.get("/api/symbols?trader=demo-audit").get_json()["rows"]
    assert "XAUUSD" in {r["symbol"] for r in other}
    assert client.get("/api/status?trader=demo-audit").get_json()["db"] == str(second)
    for endpoint in ("/api/order_groups", "/api/trades", "/api/equity", "/metrics"):
        assert client.get(f"{endpoint}?trader=demo-audit").status_code == 200, endpoint

    for name in ("nobody", "../demo/audit", str(second), "demo/audit.db", "%2e%2e", ""):
        answer = client.get("/api/summary", query_string={"trader": name})
        assert answer.status_code == 400, name
        assert "unknown trader" in answer.get_json()["error"]
        assert "known: audit, demo-audit" in answer.get_json()["error"]


def test_one_odd_database_does_not_break_the_list_of_traders(tmp_path):
    """A heartbeat that is no JSON object (a damaged or foreign file): the selector still
    lists every trader, the odd one with nothing to say about it."""
    good = write_ledger(tmp_path / "good.db")
    for name, data in (("listed", [1, 2]), ("scalar", {"account": "x", "strategy": "S"})):
        audit = AuditLogger(tmp_path / f"{name}.db")
        audit.record_event("heartbeat", "odd", data=data)
        audit.close()
    client = create_app([good, tmp_path / "listed.db", tmp_path / "scalar.db"]).test_client()
    answer = client.get("/api/traders")
    assert answer.status_code == 200, answer.get_json()
    listed = {t["name"]: t for t in answer.get_json()["traders"]}
    assert (listed["good"]["strategy"], listed["listed"]["strategy"]) == ("SmaCross", None)
    assert (listed["scalar"]["strategy"], listed["scalar"]["account"]) == ("S", None)


def test_a_folder_of_databases_is_looked_at_again(tmp_path):
    folder = tmp_path / "traders"
    folder.mkdir()
    client = create_app([], db_dir=folder).test_client()
    assert client.get("/api/traders").get_json()["traders"] == []
    assert client.get("/api/status").get_json()["state"] == "no data"

    write_ledger(folder / "zeta.db")
    write_ledger(folder / "alpha.db", strategy="Breakout")
    (folder / "notes.txt").write_text("not a database")
    assert (folder / "alpha.db.key").exists()  # the chain key beside it is no trader
    names = [t["name"] for t in client.get("/api/traders").get_json()["traders"]]
    assert names == ["alpha", "zeta"]
    assert client.get("/api/status").get_json()["db"] == str(folder / "alpha.db")
    assert client.get("/api/status?trader=zeta").get_json()["strategy"] == "SmaCross"
    (folder / "alpha.db").unlink()
    assert client.get("/api/summary?trader=alpha").status_code == 400  # gone: not served


def test_the_command_line_serves_several_databases(tmp_path):
    first = write_ledger(tmp_path / "a.db")
    folder = tmp_path / "more"
    folder.mkdir()
    write_ledger(folder / "b.db")
    env = tmp_path / "test.env"
    env.write_text(f"AUDIT_DB={tmp_path / 'unused.db'}\nDASHBOARD_DB_DIR={folder}\n")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "live" / "dashboard.py"), "--config", str(env),
         "--db", str(first), "--port", str(free_port(socket.AF_INET, "127.0.0.1"))],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert f"reading {first}, {folder / '*.db'}" in line, line
        base = line.split()[2]
        names = [
            t["name"] for t in requests.get(base + "/api/traders", timeout=10).json()["traders"]
        ]
        assert names == ["a", "b"]
    finally:
        process.terminate()
        process.communicate(timeout=30)


# ---------------------------------------------------------------- the page


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
STAMP = re.compile(r"^\d{4}-\d\d-\d\d\s\d\d:\d\d UTC$")  # on a phone the date above the time


@pytest.mark.browser
@pytest.mark.parametrize(
    "device",
    [{"width": 1280, "height": 900}, {"width": 390, "height": 844, "is_mobile": True,
                                       "has_touch": True}],
    ids=["desktop", "phone"],
)  # fmt: skip
def test_the_page_as_a_trader_reads_it(tmp_path, page_probe, device):
    first = write_ledger(tmp_path / "ftmo.db")
    second = write_ledger(tmp_path / "demo.db", strategy="Breakout", login=222)
    audit, _ = clocked(second, T0 + timedelta(days=2))
    audit.record_trade(symbol="XAUUSD", position_ticket=900, dry_run=True, pnl=99.0,
                       exit_time=T0 + timedelta(days=2), exit_client_order_id="X")  # fmt: skip
    audit.close()
    with serve_app(create_app([first, second])) as base:
        probe = page_probe((base,), **device)
        page = probe.page
        page.goto(base + "/")
        page.wait_for_function(
            "() => document.querySelector('#daily-chart').dataset.bars === '3' && "
            "document.querySelectorAll('#trades tr').length === 5"
        )
        trades = page.locator("#trades tr").all_inner_texts()
        assert "-10.50" in trades[1] and "EURUSD" in trades[1]  # the newest exit first
        assert "50.00" in trades[4] and "signal" in trades[4]

        orders = page.locator("#orders tr").all_inner_texts()
        assert len(orders) == 5  # four orders, one row each (nine rows recorded)
        opened = next(r for r in orders[1:] if "1.09 / 1.12" in r)
        assert "filled" in opened and "50.00" in opened  # intent, outcome and P/L together
        assert any("rejected" in r and "GBPUSD" in r for r in orders)

        # every time: the year, 24-hour, and the clock; no month-day without its year
        times = page.locator("#trades td:first-child, #orders td:first-child").all_inner_texts()
        assert times and all(STAMP.match(t) for t in times), times
        text = page.locator("body").inner_text()
        assert not re.search(r"\b(AM|PM)\b", text)
        assert not re.search(r"(?<![\d-])\d\d-\d\d[ \n]\d\d:\d\d", text)
        assert "as of 2024-05-03 16:00 UTC" in page.locator(".card").nth(1).inner_text()

        deepest = page.locator(".card", has_text="Max drawdown").inner_text()
        chart = requests.get(base + "/api/equity?limit=2000", timeout=10).json()["points"]
        lowest = min(p["drawdown"] for p in chart)
        assert f"{lowest:,.2f}" in deepest and "all-time peak" in deepest

        assert "3 days with closed trades · net 29.75" in page.locator("#daily-note").inner_text()
        symbols = page.locator("#symbols tr").all_inner_texts()
        assert [r.split("\t")[0] for r in symbols] == ["Symbol", "EURUSD", "GBPUSD", "USDJPY",
                                                         "all"]  # fmt: skip
        assert "39.50" in symbols[1] and "29.75" in symbols[4]

        for chart_id in ("equity-chart", "daily-chart"):  # months named on the time axes
            labels = page.evaluate(f"document.querySelector('#{chart_id}').dataset.axis")
            assert any(month in labels for month in MONTHS), (chart_id, labels)
        assert page.evaluate("document.documentElement.scrollWidth") <= device["width"]

        selector = page.locator("#trader")
        assert selector.is_visible() and "Breakout" in selector.inner_text()
        selector.select_option("demo")
        page.wait_for_function("() => document.body.dataset.shown === 'demo'")
        assert "XAUUSD" in page.locator("#symbols").inner_text()
        assert str(second) in page.locator("#db-path").inner_text()
        assert "trader=demo" in page.url
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert probe.errors == [] and probe.blocked == []
