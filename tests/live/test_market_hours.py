"""Market hours in the trader: nothing is sent while the session table says the market is
closed, a 10018 while it says open is told once a day, and the status names the broker's
clock and the next news blackout."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from backtest.broker_clock import parse_zone
from live.market_hours import MarketHours
from tests.live.conftest import ROOT

CALENDAR = ROOT / "docs" / "calendar_sample.csv"


def hours_for(config, zone="NY+7", moment="2024-03-08 12:00"):
    now = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    return MarketHours(
        config,
        zone=lambda: parse_zone(zone),
        currencies=lambda symbol: (symbol[:3], symbol[3:6]),
        now=lambda: now,
    ), now


def test_the_gate_follows_the_session_table(live_config):
    hours, _ = hours_for(live_config(sessions="EURUSD=Mon 01:00-Fri 23:00"))
    friday_late = datetime(2024, 3, 8, 21, 30, tzinfo=UTC)  # 23:30 on a NY+7 server
    monday_early = datetime(2024, 3, 10, 21, 30, tzinfo=UTC)  # Mon 00:30 server (summer)
    monday_open = datetime(2024, 3, 10, 22, 0, tzinfo=UTC)
    assert hours.gate("EURUSD", datetime(2024, 3, 8, 12, tzinfo=UTC))
    assert not hours.gate("EURUSD", friday_late) and hours.closed_symbols == ["EURUSD"]
    assert not hours.gate("EURUSD", monday_early)
    assert hours.gate("EURUSD", monday_open) and hours.closed_symbols == []
    # the default forex session: Sunday 17:00 New York
    default, _ = hours_for(live_config())
    assert not default.is_open("EURUSD", datetime(2024, 3, 10, 20, 59, tzinfo=UTC))
    assert default.is_open("EURUSD", datetime(2024, 3, 10, 21, 0, tzinfo=UTC))


def test_a_market_closed_answer_while_the_table_says_open_is_told_once_a_day(live_config):
    hours, now = hours_for(live_config())
    said = hours.broker_said("EURUSD", now, "refused: order_check: market closed (10018)")
    assert said and "SESSIONS" in said and "EURUSD" in said
    assert hours.broker_said("EURUSD", now, "refused: 10018") is None  # once a day
    assert hours.broker_said("EURUSD", now, "executed") is None
    tomorrow = now + pd.Timedelta(days=1)
    assert hours.broker_said("EURUSD", tomorrow, "refused: 10018")


def test_the_next_blackout_and_the_rules_described(live_config):
    config = live_config(
        calendar_file=CALENDAR, news_before_min=30.0, news_after_min=15.0, trade_hours="08:00-20:00"
    )
    hours, now = hours_for(config, moment="2024-03-08 13:00")  # NFP at 13:30 UTC
    described = hours.describe(now)
    blackout = described["next_blackouts"][0]
    assert blackout["start"].startswith("2024-03-08T13:00") and "Non-Farm" in blackout["event"]
    assert described["trade_hours"] == "08:00-20:00"
    assert described["broker_offset"] == "NY+7 (UTC+02:00 now)"
    later, _ = hours_for(config, moment="2024-03-08 13:40")  # inside the 15 minutes after
    assert (
        later.next_blackout("EURUSD", datetime(2024, 3, 8, 13, 40, tzinfo=UTC))["start"][:16]
        == "2024-03-08T13:00"
    )


def test_nothing_is_sent_while_the_session_is_closed(live_config, make_sim, make_trader, caplog):
    """A trader started on a Saturday decides on Friday's last bar but sends nothing."""
    config = live_config(dry_run=False, strategy_params="fast=3,slow=8")
    terminal = make_sim(server_tz="NY+7", history_bars=300)
    friday_bars = terminal.server.feeds["EURUSD"].times
    clock = terminal.sim_time()
    saturday = next(
        t for t in friday_bars if t > clock and pd.Timestamp(t, unit="s").day_of_week == 4
    )
    terminal.sim_set_time(float(saturday) + 36 * 3600)  # Saturday, the market closed
    trader = make_trader(config, terminal)
    trader.start()
    with caplog.at_level("INFO"):
        trader.iterate()
    decision = trader.targets.decision("EURUSD")
    assert decision is not None and decision.position != 0  # it wants a position...
    assert terminal.positions_get() == ()  # ...and waits for the market
    assert "market closed by the session table" in caplog.text
    assert trader.status.last_status.get("market", {}).get("closed_sessions") in (
        ["EURUSD"],
        None,
    )


def test_the_heartbeat_goes_out_while_the_link_is_down(live_config, make_sim, make_trader):
    """With news rules on, a heartbeat names each symbol's next blackout; a terminal gone
    away (its symbol details forgotten at a reconnect) must not stop the loop."""
    config = live_config(
        calendar_file=CALENDAR, news_before_min=30.0, news_after_min=15.0, dry_run=False
    )
    terminal = make_sim(history_bars=300)
    trader = make_trader(config, terminal)
    trader.start()
    trader.iterate()
    assert "next_blackouts" in trader.status.last_status["market"]
    trader.connector.market_watch.forget_specs()  # as a reconnect does
    terminal.sim_drop_connection(calls=1000)
    trader.status.changed()
    trader.iterate()  # raises nothing
    assert trader.status.last_status["connected"] is False
