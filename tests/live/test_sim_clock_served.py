"""The server's clock through the served simulator and the real mt5linux client: a NY+7
server's D1 bars at its midnight, ticks and deals with milliseconds, dates in server time,
and 10018 at the weekend."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
import rpyc
from mt5linux import MetaTrader5

from backtest.broker_clock import parse_zone
from backtest.data import save_csv
from backtest.synthetic import generate_bars
from live.sim_terminal.launch import start_served_sim

pytestmark = pytest.mark.served


def utc(text: str) -> float:
    return pd.Timestamp(text, tz="UTC").timestamp()


def buy(mt5: MetaTrader5) -> dict:
    return {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": mt5.ORDER_TYPE_BUY,
        "price": mt5.symbol_info_tick("EURUSD").ask,
        "deviation": 20,
        "type_filling": mt5.ORDER_FILLING_FOK,
    }


def test_a_ny7_server_over_mt5linux(tmp_path):
    csv = tmp_path / "eurusd.csv"
    bars = generate_bars("EURUSD", "H1", 24 * 5 * 4, start="2024-03-03", zone=parse_zone("NY+7"))
    save_csv(bars, csv)
    start = str(utc("2024-03-13 12:00:00.250"))  # 15:00:00.250 on the server
    served = start_served_sim(
        tmp_path / "state.json", "--data", str(csv), "--server-tz", "NY+7", "--start", start
    )
    try:
        mt5 = MetaTrader5(host="127.0.0.1", port=served.port)
        assert mt5.initialize() is True
        days = mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_D1, 0, 3)
        midnight = int(utc("2024-03-13 00:00"))  # the server's wall clock, read as UTC
        assert days["time"].tolist() == [midnight - 2 * 86_400, midnight - 86_400, midnight]
        tick = mt5.symbol_info_tick("EURUSD")
        assert (tick.time, tick.time_msc) == (
            midnight + 15 * 3600,
            (midnight + 15 * 3600) * 1000 + 250,
        )
        done = mt5.order_send(buy(mt5))
        found = mt5.history_deals_get(
            datetime(2024, 3, 13, 14, 59, tzinfo=UTC), datetime(2024, 3, 13, 15, 1, tzinfo=UTC)
        )
        assert [(d.ticket, d.time_msc % 1000) for d in found] == [(done.deal, 250)]
        control = rpyc.classic.connect("127.0.0.1", served.port)
        control.execute("import MetaTrader5 as mt5")
        assert control.eval("mt5.sim_server_offset()") == 3 * 3600
        control.eval(f"mt5.sim_set_time({utc('2024-03-16 12:00')})")  # Saturday
        closed = mt5.order_send(buy(mt5))
        assert (closed.retcode, closed.comment) == (
            mt5.TRADE_RETCODE_MARKET_CLOSED,
            "Market closed",
        )
        control.close()
    finally:
        served.stop()
