"""The simulated market: what is visible when, the clock, the intrabar path, replayed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.data import load_csv, resample_bars, save_csv
from backtest.synthetic import generate_bars
from live.sim_terminal import SimConfig, SimTerminal

H1 = 3600
DATA = Path(__file__).resolve().parents[1] / "data"


def test_nothing_after_the_clock_is_visible(sim):
    now = sim.sim_time()
    rates = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 1000)
    assert rates["time"].max() <= now
    later = sim.copy_rates_range("EURUSD", sim.TIMEFRAME_H1, int(now), int(now) + 86_400 * 30)
    assert len(later) == 1  # only the bar forming now
    assert sim.copy_ticks_range("EURUSD", int(now) + 1, int(now) + 86_400, -1).size == 0


def test_forming_bar_grows_along_the_path_and_closes_at_its_end(sim):
    generated = generate_bars("EURUSD", "H1", 3000, seed=7)
    opened = sim.sim_time()
    full = generated.loc[generated["time"] == pd.Timestamp(opened, unit="s", tz="UTC")].iloc[0]
    first = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 1)[0]
    assert first["open"] == first["close"] == full["open"]  # only the open is known yet
    sim.sim_advance(H1 / 2)
    middle = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 1)[0]
    assert full["low"] <= middle["low"] <= middle["high"] <= full["high"]
    assert middle["close"] == sim.symbol_info_tick("EURUSD").bid
    sim.sim_advance(H1 / 2)
    closed = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 1, 1)[0]
    assert (closed["time"], closed["open"], closed["high"], closed["low"], closed["close"]) == (
        opened,
        full["open"],
        full["high"],
        full["low"],
        full["close"],
    )


def test_intrabar_path_visits_the_nearer_extreme_first(sim):
    index = sim.server.feeds["EURUSD"].index_at(sim.sim_time())
    feed = sim.server.feeds["EURUSD"]
    o, h, lo = feed.open[index], feed.high[index], feed.low[index]
    sim.sim_advance(H1 / 3)
    expected_first = lo if (o - lo) <= (h - o) else h
    assert sim.symbol_info_tick("EURUSD").bid == pytest.approx(expected_first)


def test_copy_rates_from_pos_counts_back_from_the_forming_bar(sim):
    all_bars = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 50)
    skipped = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 1, 49)
    np.testing.assert_array_equal(skipped, all_bars[:-1])
    assert len(sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 10**6)) == 201


def test_higher_timeframes_are_built_from_what_is_visible(sim):
    for _ in range(30):
        sim.sim_step_bar()
    h1 = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 500)
    h4 = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H4, 0, 100)
    frame = pd.DataFrame(h1)
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    expected = resample_bars(frame, "H4")
    np.testing.assert_array_equal(h4["time"], expected["time"].astype("int64") // 10**9)
    np.testing.assert_array_equal(h4["high"], expected["high"])
    np.testing.assert_array_equal(h4["close"], expected["close"])
    assert sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_M15, 0, 5) is None  # finer: none


def test_step_bar_lands_on_the_next_open_and_crosses_weekends(sim):
    feed = sim.server.feeds["EURUSD"]
    steps = 0
    while steps < 200:
        before = sim.sim_time()
        assert sim.sim_step_bar()
        steps += 1
        now = sim.sim_time()
        assert now in set(feed.times.tolist())
        if now - before > H1:  # a weekend gap: Friday 21:00 bar -> Sunday 22:00 bar
            last_closed = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 1, 1)[0]
            assert last_closed["time"] == before  # Friday's last bar is now the last closed
            break
    assert steps < 200, "no weekend within 200 bars"


def test_market_is_closed_over_the_weekend_and_after_the_data(make_sim):
    terminal = make_sim(n_bars=300, history_bars=100)
    feed = terminal.server.feeds["EURUSD"]
    friday_close = next(
        t
        for t in feed.times
        if pd.Timestamp(t, unit="s").day_of_week == 4
        and pd.Timestamp(t, unit="s").hour == 21
        and t > terminal.sim_time()
    )
    terminal.sim_set_time(friday_close + H1 + 3600)  # Friday 23:00 UTC
    tick = terminal.symbol_info_tick("EURUSD")
    assert tick.time == friday_close + H1 - 1  # the last quote stays Friday's
    result = terminal.order_send(_buy(terminal))
    assert result.retcode == terminal.TRADE_RETCODE_MARKET_CLOSED
    while terminal.sim_step_bar():
        pass
    assert terminal.sim_finished()
    assert terminal.order_send(_buy(terminal)).retcode == terminal.TRADE_RETCODE_MARKET_CLOSED


def _buy(terminal: SimTerminal) -> dict:
    tick = terminal.symbol_info_tick("EURUSD")
    return {
        "action": terminal.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": terminal.ORDER_TYPE_BUY,
        "price": tick.ask,
        "deviation": 10,
        "type_filling": terminal.ORDER_FILLING_FOK,
    }


def test_accelerated_clock_follows_the_injected_wall_clock():
    wall = [1000.0]
    terminal = SimTerminal(
        SimConfig(speed=60.0, n_bars=500, history_bars=100, wall=lambda: wall[0])
    )
    start = terminal.sim_time()
    wall[0] += 30.0
    assert terminal.sim_time() == start + 1800.0
    terminal.initialize()
    assert terminal.symbol_info_tick("EURUSD").time == int(start + 1800)


def test_hidden_symbol_needs_symbol_select(sim):
    info = sim.symbol_info("USDCHF")
    assert info is not None and info.visible is False and info.select is False
    assert sim.symbol_info_tick("USDCHF") is None
    assert sim.last_error() == (-1, "Terminal: Call failed")
    assert sim.copy_rates_from_pos("USDCHF", sim.TIMEFRAME_H1, 0, 5) is None
    assert sim.symbol_select("USDCHF", True) is True
    assert sim.symbol_info("USDCHF").visible is True
    assert 0.5 < sim.symbol_info_tick("USDCHF").bid < 1.5


def test_symbol_specs_look_like_a_broker(sim):
    eurusd, gbpusd, usdjpy, gold = (
        sim.symbol_info(s) for s in ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")
    )
    assert (eurusd.digits, eurusd.point, eurusd.trade_contract_size) == (5, 1e-05, 100_000)
    assert (eurusd.volume_min, eurusd.volume_step, eurusd.trade_stops_level) == (0.01, 0.01, 10)
    assert gbpusd.filling_mode == 2  # IOC only
    assert usdjpy.trade_exemode == sim.SYMBOL_TRADE_EXECUTION_INSTANT
    assert (gold.digits, gold.trade_contract_size) == (2, 100)
    assert sim.symbol_info("USDTRY").trade_mode == sim.SYMBOL_TRADE_MODE_DISABLED
    tick = sim.symbol_info_tick("EURUSD")
    assert eurusd.bid == tick.bid and eurusd.ask == tick.ask


def test_replays_a_csv_file(tmp_path):
    bars = load_csv(DATA / "eurusd_h1_generic.csv")
    path = tmp_path / "replay.csv"
    save_csv(bars, path)
    terminal = SimTerminal(SimConfig(data=str(path), n_bars=50, history_bars=10))
    terminal.initialize()
    rates = terminal.copy_rates_from_pos("EURUSD", terminal.TIMEFRAME_H1, 1, 10)
    np.testing.assert_array_equal(rates["close"], bars["close"].to_numpy()[:10])
    assert terminal.sim_time() == bars["time"].iloc[10].timestamp()
    other = terminal.copy_rates_from_pos("XAUUSD", terminal.TIMEFRAME_H1, 1, 1)[0]
    assert other["time"] == rates["time"][-1]  # other symbols share the calendar


def test_ticks_follow_the_path(sim):
    start = int(sim.sim_time())
    sim.sim_advance(H1)
    ticks = sim.copy_ticks_range("EURUSD", start, start + H1 - 1, sim.COPY_TICKS_ALL)
    assert len(ticks) == 4  # open, two extremes, close of one bar
    assert (np.diff(ticks["time"]) > 0).all()
    assert (ticks["time_msc"] == ticks["time"] * 1000).all()


def test_copy_rates_from_pos_never_returns_more_than_count_nor_bars_past_history(sim):
    everything = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 10**6)
    total = len(everything)
    assert len(sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 5, 7)) == 7
    tail = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, total - 3, 10)
    np.testing.assert_array_equal(tail, everything[:3])  # history ends: fewer bars
    for start_pos in (total, total + 5, total + 1000):
        assert sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, start_pos, 10) is None
        assert sim.last_error() == (-1, "Terminal: Call failed")


def test_monthly_bars_are_calendar_months(make_sim):
    sim = make_sim(history_bars=2000)
    months = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_MN1, 0, 100)
    frame = pd.DataFrame(sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 10**6))
    stamps = pd.to_datetime(frame["time"], unit="s", utc=True)
    frame["month"] = stamps.dt.tz_localize(None).dt.to_period("M")
    grouped = frame.groupby("month")
    opens = [int(p.start_time.tz_localize("UTC").timestamp()) for p in grouped.groups]
    np.testing.assert_array_equal(months["time"], opens)
    assert all(pd.Timestamp(t, unit="s").day == 1 for t in months["time"])
    np.testing.assert_array_equal(months["open"], grouped["open"].first().to_numpy())
    np.testing.assert_array_equal(months["high"], grouped["high"].max().to_numpy())
    np.testing.assert_array_equal(months["close"], grouped["close"].last().to_numpy())
    assert months["close"][-1] == sim.symbol_info_tick("EURUSD").bid  # the forming month


def test_weekly_bars_open_on_sunday_and_hold_the_sunday_evening_open(make_sim):
    """As MT5's W1 bars: dated Sunday 00:00, so the FX week that opens on Sunday evening is
    one bar, and its Sunday bars are not the tail of the week before."""
    sim = make_sim(history_bars=2000)
    weeks = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_W1, 0, 100)
    hours = pd.DataFrame(sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 10**6))
    starts = pd.to_datetime(weeks["time"], unit="s", utc=True)
    assert len(weeks) >= 10
    assert (starts.day_name() == "Sunday").all() and (starts.hour == 0).all()
    stamps = pd.to_datetime(hours["time"], unit="s", utc=True)
    first_bars = hours.groupby(np.searchsorted(weeks["time"], hours["time"], side="right"))
    opens = hours["open"].to_numpy()[first_bars.head(1).index]
    np.testing.assert_array_equal(weeks["open"], opens)
    assert (stamps[first_bars.head(1).index][1:].dt.day_name() == "Sunday").all()


def test_a_csv_of_another_timeframe_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "daily.csv"
    save_csv(load_csv(DATA / "eurusd_d1_mt5.csv"), path)
    with pytest.raises(ValueError, match=r"daily\.csv: its bars are D1 .* timeframe is H1"):
        SimTerminal(SimConfig(data=str(path), n_bars=50, history_bars=10))
    daily = SimTerminal(SimConfig(data=str(path), timeframe="D1", n_bars=50, history_bars=10))
    assert daily.initialize()
    assert len(daily.copy_rates_from_pos("EURUSD", daily.TIMEFRAME_D1, 1, 5)) == 5


def test_copy_ticks_honours_flags(sim):
    start = int(sim.sim_time())
    sim.sim_advance(3 * H1)
    every = sim.copy_ticks_range("EURUSD", start, start + 3 * H1, sim.COPY_TICKS_ALL)
    info = sim.copy_ticks_range("EURUSD", start, start + 3 * H1, sim.COPY_TICKS_INFO)
    np.testing.assert_array_equal(info, every)  # every simulated tick is a bid/ask tick
    trade = sim.copy_ticks_from("EURUSD", start, 100, sim.COPY_TICKS_TRADE)
    assert len(trade) == 0 and trade.dtype == every.dtype  # no trades on forex quotes
    for flags in (12345, 0, "all", None):
        assert sim.copy_ticks_range("EURUSD", start, start + H1, flags) is None
        assert sim.last_error() == (-2, "Invalid arguments")
        assert sim.copy_ticks_from("EURUSD", start, 10, flags) is None
