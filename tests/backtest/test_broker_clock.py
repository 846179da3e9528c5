"""The broker's clock: zones as brokers run them, conversions both ways across daylight-saving
switches, bars cut at the broker's midnight, and a `broker_time` column for strategies."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from backtest.broker_clock import (
    BrokerZoneError,
    near_dst_switch,
    offset_from_tick,
    parse_zone,
)
from backtest.cli import main
from backtest.data import load_csv, resample_bars, save_csv
from backtest.synthetic import generate_bars
from backtest.trading_windows import with_broker_time


def utc(text: str) -> float:
    return pd.Timestamp(text, tz="UTC").timestamp()


@pytest.mark.parametrize(
    ("moment", "hours"),
    [
        ("2024-03-08 12:00", 2),  # before the US switch (2024-03-10)
        ("2024-03-11 12:00", 3),  # after it: New York close brokers follow the US
        ("2024-03-28 12:00", 3),  # the weeks the US and Europe disagree
        ("2024-11-04 12:00", 2),
    ],
)
def test_new_york_close_broker_follows_us_daylight_saving(moment, hours):
    assert parse_zone("NY+7").offset_at(utc(moment)) == hours * 3600


def test_european_zone_switches_on_european_dates():
    athens = parse_zone("Europe/Athens")
    assert athens.offset_at(utc("2024-03-28 12:00")) == 2 * 3600  # EU switches on 03-31
    assert athens.offset_at(utc("2024-04-02 12:00")) == 3 * 3600


@pytest.mark.parametrize("name", ["NY+7", "Europe/Athens", "UTC+2", "UTC-05:30", "UTC"])
def test_server_times_convert_back_to_the_same_utc_moment(name):
    zone = parse_zone(name)
    hours = np.arange(utc("2024-03-01"), utc("2024-04-15"), 1800).astype(np.int64)
    assert (zone.to_utc(zone.to_server(hours)) == hours).all()
    one = utc("2024-03-10 08:30")
    assert zone.to_utc(zone.to_server(one)) == one


@pytest.mark.parametrize("bad", ["Mars/Olympus", "UTC+15", "NY+x", ""])
def test_an_unknown_zone_names_the_setting_and_the_value(bad):
    with pytest.raises(BrokerZoneError, match=f"^BROKER_TZ.*{re.escape(bad)}"):
        parse_zone(bad)


def test_offset_from_a_tick_is_rounded_to_half_hours():
    now = utc("2024-03-08 12:00")
    assert offset_from_tick(now + 2 * 3600 - 4, now) == 7200  # a tick 4 s old
    assert offset_from_tick(now + 5.5 * 3600 + 200, now) == 19800
    assert near_dst_switch(utc("2024-03-12")) and not near_dst_switch(utc("2024-06-12"))


def test_d1_bars_are_cut_at_the_broker_midnight_five_a_week():
    """A GMT+2/+3 broker shows five D1 bars a week; cut at UTC midnight, the Sunday evening
    hours of the forex week make a sixth."""
    hours = generate_bars("EURUSD", "H1", 24 * 7 * 4, start="2024-02-26")
    zone = parse_zone("NY+7")
    daily = resample_bars(hours, "D1", zone)
    opens = daily["time"].iloc[1:-1]  # whole days only
    broker_days = zone.local_times(opens)
    assert (broker_days.dt.hour == 0).all() and (broker_days.dt.day_of_week < 5).all()
    before = opens[opens < "2024-03-10"].dt.hour.unique()
    after = opens[opens > "2024-03-11"].dt.hour.unique()
    assert list(before) == [22] and list(after) == [21]
    assert len(resample_bars(hours, "D1")) > len(daily)  # UTC midnight: Sunday stubs


def test_weekly_bars_open_at_the_broker_sunday_midnight():
    hours = generate_bars("EURUSD", "H1", 24 * 7 * 3, start="2024-01-08")
    zone = parse_zone("NY+7")
    weekly = resample_bars(hours, "W1", zone)
    local = zone.local_times(weekly["time"])
    assert (local.dt.day_of_week == 6).all() and (local.dt.hour == 0).all()


def test_utc_resampling_is_unchanged():
    hours = generate_bars("EURUSD", "H1", 24 * 20, start="2024-01-08")
    daily = resample_bars(hours, "D1")
    assert (daily["time"].dt.hour == 0).all()


def test_broker_time_column_is_the_server_wall_clock():
    bars = generate_bars("EURUSD", "H1", 48, start="2024-07-01")
    shown = with_broker_time(bars, parse_zone("NY+7"))
    assert (shown["broker_time"] - shown["time"].dt.tz_localize(None) == pd.Timedelta("3h")).all()
    assert shown["time"].equals(bars["time"])


def test_an_mt5_export_in_server_time_reads_as_utc(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("time,open,high,low,close\n2024-07-01 03:00,1,1.1,0.9,1\n")
    bars = load_csv(path, tz="NY+7")
    assert bars["time"].iloc[0] == pd.Timestamp("2024-07-01 00:00", tz="UTC")


def test_cli_cuts_daily_bars_on_the_broker_clock(tmp_path, capsys):
    hours = generate_bars("EURUSD", "H1", 24 * 60, start="2024-02-05")
    data = tmp_path / "EURUSD_H1.csv"
    save_csv(hours, data)
    strategy = "backtest/strategies/sma_cross.py"
    out = tmp_path / "run.json"
    args = ["run", "--strategy", strategy, "--data", str(data), "--timeframe", "D1"]
    assert main([*args, "--broker-tz", "NY+7", "--param", "fast=3", "--param", "slow=8",
                 "--json", str(out)]) == 0  # fmt: skip
    document = pd.read_json(out, typ="series")
    assert document["config"]["rules"]["broker_tz"] == "NY+7"
    entries = pd.to_datetime([t["entry_time"] for t in document["trades"]], utc=True)
    assert len(entries) and set(entries.hour) <= {21, 22}
    assert main([*args, "--broker-tz", "Mars/Olympus"]) == 2
    assert "--broker-tz" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name", ["Europe/Prague", "NY+7", "Australia/Lord_Howe", "America/Santiago", "Asia/Tehran"]
)
def test_many_sorted_moments_get_the_exact_offset_of_each_second(name):
    """Bar times (sorted, many) take the fast path: the zone's switches found to the second
    and the runs between them filled. Every minute of six years, and random seconds, agree
    with pandas' own conversion, switch hours included (Lord Howe moves 30 minutes)."""
    zone = parse_zone(name, "BROKER_TZ")
    minutes = np.arange(1_546_300_800, 1_735_689_600, 60, dtype=np.int64)
    scattered = np.sort(np.random.default_rng(2).integers(0, 4_000_000_000, 50_000))
    for moments in (minutes, scattered, scattered + 0.75):
        whole = np.floor(moments).astype(np.int64)
        assert (zone.offsets(moments) == zone._pandas_offsets(whole)).all()


def test_sorted_moments_beyond_the_zone_rules_take_the_offset_at_the_edge():
    """Sorted moments running past 2200 (a query's "until forever") or before 1900 are
    clipped to the known years on the fast path as on the general one."""
    zone = parse_zone("Europe/Prague", "BROKER_TZ")
    moments = np.concatenate(
        ([-4_000_000_000], np.arange(1_546_300_800, 1_546_300_800 + 3_000 * 3600, 3600),
         [7_300_000_000, 9_000_000_000])
    )  # fmt: skip
    fast = zone.offsets(moments)
    general = zone.offsets(moments[::-1])[::-1]  # not sorted: one look per day
    assert (fast == general).all()
    assert fast[-1] == 3600 and fast[0] == zone.offsets(np.array([-2_208_988_800] * 5))[0]
