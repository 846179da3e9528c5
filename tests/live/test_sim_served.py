"""The simulator served over RPyC, driven by the real mt5linux client."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
import rpyc
from mt5linux import MetaTrader5

from backtest.data import load_csv, save_csv
from live.audit_logger import AuditLogger
from live.backtesting_bridge import get_strategy_from_file
from live.live_trader import LiveTrader
from live.mt5_connector import MT5Connector
from live.sim_terminal.launch import start_served_sim
from live.sim_terminal.server import is_loopback
from tests.live.conftest import ROOT, WallClock

pytestmark = pytest.mark.served


def buy_request(mt5, comment: str) -> dict:
    tick = mt5.symbol_info_tick("EURUSD")
    return {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": mt5.ORDER_TYPE_BUY,
        "price": tick.ask,
        "deviation": 20,
        "magic": 4242,
        "comment": comment,
        "type_filling": mt5.ORDER_FILLING_FOK,
    }


def test_mt5linux_client_trades_and_reads_back(served_sim):
    mt5 = MetaTrader5(host="127.0.0.1", port=served_sim.port)
    assert mt5.initialize() is True
    assert mt5.version()[0] == 500
    rates = mt5.copy_rates_from("EURUSD", mt5.TIMEFRAME_H1, datetime.now(UTC), 10)
    assert len(rates) == 10 and rates.dtype.itemsize == 60
    result = mt5.order_send(buy_request(mt5, "LTSERVED"))
    assert result.retcode == mt5.TRADE_RETCODE_DONE
    positions = mt5.positions_get(symbol="EURUSD")
    assert [(p.ticket, p.comment, p.magic) for p in positions] == [(result.order, "LTSERVED", 4242)]
    start = datetime(2000, 1, 1, tzinfo=UTC)
    deals = mt5.history_deals_get(start, datetime.now(UTC) + timedelta(days=1))
    assert [d.comment for d in deals] == ["LTSERVED"]


CLIENT = textwrap.dedent("""
    import sys, time
    from mt5linux import MetaTrader5
    mt5 = MetaTrader5(host="127.0.0.1", port=int(sys.argv[1]))
    mt5.initialize()
    tick = mt5.symbol_info_tick("EURUSD")
    result = mt5.order_send({"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD",
        "volume": 0.2, "type": mt5.ORDER_TYPE_SELL, "price": tick.bid, "deviation": 20,
        "magic": 1, "comment": "LTKILLED", "type_filling": mt5.ORDER_FILLING_FOK})
    print(result.retcode, flush=True)
    time.sleep(600)
""")


def test_state_survives_a_killed_client_and_a_server_restart(tmp_path):
    served = start_served_sim(tmp_path / "state.json")
    try:
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(served.port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout.readline().strip() == "10009"
        client.send_signal(signal.SIGKILL)  # the client dies mid-session
        client.wait(timeout=10)
        mt5 = MetaTrader5(host="127.0.0.1", port=served.port)
        mt5.initialize()
        assert [p.comment for p in mt5.positions_get()] == ["LTKILLED"]
        balance = mt5.account_info().balance
        ticket = mt5.positions_get()[0].ticket
        assert served.stop(signal.SIGKILL) != 0  # even a hard kill keeps the saved state
    finally:
        served.stop()
    saved = json.loads((tmp_path / "state.json").read_text())
    assert [p["comment"] for p in saved["positions"]] == ["LTKILLED"]
    again = start_served_sim(tmp_path / "state.json")
    try:
        mt5 = MetaTrader5(host="127.0.0.1", port=again.port)
        mt5.initialize()
        positions = mt5.positions_get()
        assert [(p.ticket, p.comment, p.volume) for p in positions] == [(ticket, "LTKILLED", 0.2)]
        assert mt5.account_info().balance == balance
        assert [d.comment for d in mt5.history_deals_get(0, 2**31 - 1)] == ["LTKILLED"]
    finally:
        again.stop()


def test_non_loopback_host_is_refused_without_allow_remote():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "live.sim_terminal",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--bars",
            "100",
            "--history-bars",
            "10",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0" in result.stderr


def test_ipv6_loopback_is_served(tmp_path):
    assert is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    served = start_served_sim(tmp_path / "state.json", "--host", "::1")  # the last --host wins
    try:
        conn = rpyc.classic.connect("::1", served.port, ipv6=True)
        conn.execute("import MetaTrader5 as mt5")
        assert conn.eval("mt5.initialize()") is True
        assert conn.eval("mt5.version()[0]") == 500
        conn.close()
    finally:
        served.stop()


def test_serve_refuses_a_csv_of_another_timeframe(tmp_path):
    path = tmp_path / "daily.csv"
    save_csv(load_csv(ROOT / "tests" / "data" / "eurusd_d1_mt5.csv"), path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "live.sim_terminal",
            "serve",
            "--port",
            "0",
            "--data",
            str(path),
            "--timeframe",
            "H1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "daily.csv: its bars are D1" in result.stderr and "--timeframe D1" in result.stderr


def test_a_simulated_session_stays_on_the_market_clock_when_the_link_drops(tmp_path, live_config):
    """Disconnect events and the heartbeat written with them carry market time, as every
    other row of a replay does: a wall clock years away from it must not show up."""
    served = start_served_sim(tmp_path / "state.json")
    config = live_config(
        backend="mt5linux", mt5linux_port=served.port, strategy_params="fast=2,slow=4"
    )
    trader = LiveTrader(
        config,
        connector=MT5Connector(config),
        strategy=get_strategy_from_file(config.strategy_path, config.strategy_param_pairs()),
        audit=AuditLogger(config.audit_db),
        wall_clock=WallClock(start=2_000_000_000.0),  # 2033: far from the replayed market
    )
    try:
        trader.start()
        for _ in range(5):
            trader.iterate()
            trader.connector.sim_call("sim_step_bar")
        market = trader.now()
        served.stop(signal.SIGKILL)
        trader.iterate()
        trader.iterate()
    finally:
        served.stop()
        trader.audit.close()
    with sqlite3.connect(config.audit_db) as conn:
        events = conn.execute("SELECT kind, ts, data FROM events ORDER BY id").fetchall()
    stamps = [ts for _, ts, _ in events]
    assert stamps == sorted(stamps)  # one clock: rows in time order
    assert all(ts < "2030" for ts in stamps)
    (disconnect,) = [ts for kind, ts, _ in events if kind == "disconnect"]
    assert disconnect == market.isoformat(timespec="milliseconds")
    beat = json.loads([data for kind, _, data in events if kind == "heartbeat"][-1])
    assert beat["connected"] is False and beat["clock"] == "simulated market time (UTC)"
    assert beat["market_ts"] == market.isoformat()
