"""Broker time, live equals the backtest: bars replayed through a simulator whose server runs
at UTC+2/+3 (New York close, daylight saving on US dates) across the March 2024 switch weeks
(US on the 10th, Europe on the 31st). The trader, converting the server's times at the edge,
trades as the backtest does on the same bars, trade for trade:

- a D1 strategy: its daily bars are cut at the broker's midnight by the simulator and by the
  backtest's resampler alike (five a week);
- an H1 strategy filtered by broker hours (its `broker_time` column), with the windows on:
  trade hours, no entries before a session's close, flat before the weekend and news
  blackouts from the shipped sample calendar."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.broker_clock import parse_zone
from backtest.data import load_csv, resample_bars, save_csv
from backtest.econ_calendar import load_calendar
from backtest.engine import BacktestConfig, run_backtest
from backtest.sessions import parse_hours
from backtest.sizing import Sizing
from backtest.synthetic import generate_bars
from backtest.trading_windows import TradingRules
from live.audit_reader import AuditReader
from live.backtesting_bridge import get_strategy_from_file
from tests.live.conftest import ROOT, run_bars
from tests.live.test_management_parity import live_rows

STRATEGIES = ROOT / "backtest" / "strategies"
CALENDAR = ROOT / "docs" / "calendar_sample.csv"
SERVER = "NY+7"


def replayed_hours(tmp_path: Path, start: str, weeks: int) -> Path:
    """H1 bars on the forex session at a constant spread (a D1 bar's spread is its lowest
    hour's, the fill's is its first hour's)."""
    bars = generate_bars("EURUSD", "H1", 24 * 5 * weeks, start=start, seed=11)
    bars["spread"] = 8
    path = tmp_path / "EURUSD_H1.csv"
    save_csv(bars, path)
    return path


def comparable(frame: pd.DataFrame) -> list[tuple]:
    return [
        (
            t.entry_time.floor("min"),
            t.exit_time.floor("min"),
            t.direction,
            round(float(t.entry_price), 5),
            round(float(t.exit_price), 5),
            str(t.exit_reason).replace("end", "signal"),
        )
        for t in frame.itertuples()
    ]


def replay(
    tmp_path, live_config, make_sim, make_trader, *, timeframe, strategy, params, weeks, **settings
):
    """Run the trader in lockstep over bars from three weeks before February 26 (warm-up) to
    `weeks` later; its trades and first decided bar."""
    data = replayed_hours(tmp_path, "2024-02-05", weeks + 4)
    config = live_config(
        dry_run=False,
        strategy_path=str(STRATEGIES / f"{strategy}.py"),
        strategy_params=params,
        timeframe=timeframe,
        lot_size=0.1,
        broker_tz=SERVER,
        **settings,
    )
    terminal = make_sim(data=str(data), server_tz=SERVER, history_bars=24 * 5 * 3)
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 24 * 5 * weeks)
    trader.shutdown()
    reader = AuditReader(config.audit_db)
    first_decided = pd.Timestamp(reader.signal_span("EURUSD")[0])
    spec = terminal.server.feeds["EURUSD"].symbol.as_symbol_spec()
    return live_rows(config.audit_db), first_decided, data, spec


def backtest_trades(bars, strategy, params, first_decided, spec, rules):
    first = int((bars["time"] < first_decided).sum())
    config = BacktestConfig(
        close_at_end=False,
        spread_mode="bid",
        sizing=Sizing(mode="fixed", lots=0.1),
        rules=rules,
    )
    instance = get_strategy_from_file(STRATEGIES / f"{strategy}.py", params.split(","))
    return run_backtest(bars, instance, spec=spec, config=config, trade_from=first).trades


@pytest.mark.slow
def test_a_daily_strategy_trades_the_broker_days(tmp_path, live_config, make_sim, make_trader):
    params = "fast=2,slow=3"
    live, first_decided, data, spec = replay(
        tmp_path, live_config, make_sim, make_trader,
        timeframe="D1", strategy="sma_cross", params=params, weeks=8,
    )  # fmt: skip
    zone = parse_zone(SERVER)
    daily = resample_bars(load_csv(data), "D1", zone)
    opens = zone.local_times(daily["time"])
    assert (opens.dt.hour == 0).all() and (opens.dt.day_of_week < 5).all()  # five a week
    backtest = backtest_trades(
        daily, "sma_cross", params, first_decided, spec, TradingRules(zone=zone)
    )
    assert len(backtest) >= 6, "the replay must trade"
    done = backtest[backtest["exit_time"] <= live["exit_time"].max()]
    assert comparable(live) == comparable(done)
    entry_hours = set(live["entry_time"].dt.hour)
    assert entry_hours == {21, 22}  # the broker's midnight: 22:00 UTC in winter, 21:00 after


@pytest.mark.slow
def test_an_hour_filtered_strategy_with_windows(tmp_path, live_config, make_sim, make_trader):
    params = "fast=5,slow=15,start=8,end=20"
    settings = {
        "trade_hours": "09:00-18:00",
        "no_entry_before_close_min": 120.0,
        "flat_before_weekend_min": 60.0,
        "calendar_file": CALENDAR,
        "news_before_min": 45.0,
        "news_after_min": 30.0,
    }
    live, first_decided, data, spec = replay(
        tmp_path, live_config, make_sim, make_trader,
        timeframe="H1", strategy="session_momentum", params=params, weeks=6, **settings,
    )  # fmt: skip
    zone = parse_zone(SERVER)
    rules = TradingRules(
        zone=zone,
        trade_hours=parse_hours("09:00-18:00"),
        no_entry_before_close_min=120.0,
        flat_before_weekend_min=60.0,
        calendar=load_calendar(CALENDAR),
        news_before_min=45.0,
        news_after_min=30.0,
    )
    bars = load_csv(data)
    backtest = backtest_trades(bars, "session_momentum", params, first_decided, spec, rules)
    assert len(backtest) >= 20, "the replay must trade"
    done = backtest[backtest["exit_time"] <= live["exit_time"].max()]
    assert comparable(live) == comparable(done)
    hours = zone.local_times(live["entry_time"]).dt.hour
    assert hours.between(9, 17).all()
    # the switch weeks traded: before and after the US switch, and in the weeks the US and
    # Europe disagree
    weeks = set(live["entry_time"].dt.strftime("%m-%d").str[:2])
    assert {"02", "03"} <= weeks
    assert (live["entry_time"] > pd.Timestamp("2024-03-11", tz="UTC")).any()
    free = backtest_trades(
        bars, "session_momentum", params, first_decided, spec, TradingRules(zone=zone)
    )
    assert len(free) > len(backtest)  # the windows took trades away


@pytest.mark.slow
def test_a_minimum_trade_duration_holds_alike(tmp_path, live_config, make_sim, make_trader):
    """MIN_TRADE_SECONDS: a quick SMA cross whose exits come sooner than 3 hours and a
    minute after the entry waits in the trader as in the backtest, trade for trade."""
    params = "fast=2,slow=4"
    hold = 3 * 3600 + 60.0
    live, first_decided, data, spec = replay(
        tmp_path, live_config, make_sim, make_trader,
        timeframe="H1", strategy="sma_cross", params=params, weeks=2, min_trade_seconds=hold,
    )  # fmt: skip
    zone, bars = parse_zone(SERVER), load_csv(data)
    rules = TradingRules(zone=zone, min_trade_seconds=hold)
    backtest = backtest_trades(bars, "sma_cross", params, first_decided, spec, rules)
    assert len(backtest) >= 10 and len(live) >= 5, "the replay must trade"
    done = backtest[backtest["exit_time"] <= live["exit_time"].max()]
    assert comparable(live) == comparable(done)
    lasted = (live["exit_time"] - live["entry_time"]).dt.total_seconds()
    assert (lasted >= hold - 60).all()  # fills come at the bar opens the decisions act at
    free = backtest_trades(bars, "sma_cross", params, first_decided, spec, TradingRules(zone=zone))
    assert ((free["exit_time"] - free["entry_time"]).dt.total_seconds() < hold).any()


@pytest.mark.slow
def test_a_strategy_with_an_informative_timeframe(tmp_path, live_config, make_sim, make_trader):
    """DailyTrendSma on H1 reads D1 bars: the trader fetches them from the terminal (cut at
    the server's midnight, the forming one included), the backtest resamples its H1 bars on
    the same clock; trade for trade the same, across the US switch week."""
    params = "fast=5,slow=15,days=3"
    live, first_decided, data, spec = replay(
        tmp_path, live_config, make_sim, make_trader,
        timeframe="H1", strategy="daily_trend_sma", params=params, weeks=5,
    )  # fmt: skip
    zone, bars = parse_zone(SERVER), load_csv(data)
    rules = TradingRules(zone=zone)
    backtest = backtest_trades(bars, "daily_trend_sma", params, first_decided, spec, rules)
    assert len(backtest) >= 10 and len(live) >= 5, "the replay must trade"
    done = backtest[backtest["exit_time"] <= live["exit_time"].max()]
    assert comparable(live) == comparable(done)
    assert (live["entry_time"] > pd.Timestamp("2024-03-11", tz="UTC")).any()
    # the daily filter took trades away from the same cross without it
    plain = backtest_trades(bars, "sma_cross", "fast=5,slow=15", first_decided, spec, rules)
    assert len(plain) > len(backtest)
