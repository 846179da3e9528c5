"""The simulated server's clock and market hours: API times in server time (a NY+7 broker
across the March 2024 US switch), bars cut at the server's midnight, milliseconds, sessions
(weekend, holidays, the daily break) and the rollover spread. Clocks are set explicitly."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.broker_clock import parse_zone
from backtest.data import save_csv
from backtest.synthetic import generate_bars
from live.sim_terminal import SimConfig, SimTerminal
from live.sim_terminal.__main__ import read_holidays
from tests.live.conftest import ROOT

NY7 = parse_zone("NY+7")
H1, DAY = 3600, 86_400


def utc(text: str) -> float:
    """A UTC moment (what sim_set_time takes)."""
    return pd.Timestamp(text, tz="UTC").timestamp()


def server(text: str) -> int:
    """A server wall-clock time as the API takes and gives it (read as if it were UTC)."""
    return int(pd.Timestamp(text, tz="UTC").timestamp())


def stamp(epoch: float) -> str:
    return pd.Timestamp(int(epoch), unit="s").strftime("%a %Y-%m-%d %H:%M:%S")


@pytest.fixture(scope="module")
def ny7_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six weeks of H1 bars around the 2024-03-10 US switch as a NY+7 broker has them."""
    path = tmp_path_factory.mktemp("ny7") / "eurusd_h1.csv"
    save_csv(generate_bars("EURUSD", "H1", 24 * 5 * 6, start="2024-02-25", seed=4, zone=NY7), path)
    return path


def ny7_sim(csv: Path, at: str, **overrides: object) -> SimTerminal:
    options = {"data": str(csv), "server_tz": "NY+7", "n_bars": 100, "history_bars": 50}
    sim = SimTerminal(SimConfig(start=utc(at), **{**options, **overrides}))
    assert sim.initialize(), sim.last_error()
    return sim


def market(sim: SimTerminal, side: str = "buy", **fields: object) -> dict:
    tick = sim.symbol_info_tick("EURUSD")
    buying = side == "buy"
    return {
        "action": sim.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": sim.ORDER_TYPE_BUY if buying else sim.ORDER_TYPE_SELL,
        "price": tick.ask if buying else tick.bid,
        "deviation": 20,
        "type_filling": sim.ORDER_FILLING_FOK,
        **fields,
    }


def buy_limit(sim: SimTerminal, **fields: object) -> dict:
    price = round(sim.symbol_info_tick("EURUSD").ask - 0.0100, 5)
    request = market(sim, action=sim.TRADE_ACTION_PENDING, type=sim.ORDER_TYPE_BUY_LIMIT)
    return {**request, "price": price, **fields}


# ---------------------------------------------------------------- bars on the server's clock


def test_daily_bars_open_at_server_midnight_across_the_us_switch(ny7_csv):
    sim = ny7_sim(ny7_csv, "2024-03-22 12:00")
    days = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_D1, 0, 100)
    assert (days["time"] % DAY == 0).all()  # server midnight
    opened = {stamp(t): stamp(NY7.to_utc(float(t))) for t in days["time"]}
    assert opened["Mon 2024-03-04 00:00:00"] == "Sun 2024-03-03 22:00:00"  # UTC+2
    assert opened["Mon 2024-03-11 00:00:00"] == "Sun 2024-03-10 21:00:00"  # UTC+3
    names = pd.to_datetime(days["time"], unit="s")
    per_week = pd.Series(names.day_name()).groupby(names.to_period("W").to_numpy()).agg(list)
    for week in per_week.iloc[:-1]:  # the last is this week, still forming
        assert week == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def test_daily_bars_hold_the_server_days_hours_and_weeks_open_on_its_sunday(ny7_csv):
    sim = ny7_sim(ny7_csv, "2024-03-22 12:00")
    hours = pd.DataFrame(sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 10**6))
    days = pd.DataFrame(sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_D1, 0, 100))
    grouped = hours.groupby(hours["time"] // DAY * DAY)
    np.testing.assert_array_equal(days["time"], grouped["time"].first().index)
    np.testing.assert_array_equal(days["high"], grouped["high"].max())
    np.testing.assert_array_equal(days["open"], grouped["open"].first())
    weeks = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_W1, 0, 10)
    assert [stamp(t) for t in weeks["time"]][1:4] == [
        "Sun 2024-03-03 00:00:00",
        "Sun 2024-03-10 00:00:00",  # the switch's Sunday: 21:00 UTC on Saturday
        "Sun 2024-03-17 00:00:00",
    ]
    months = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_MN1, 0, 10)
    assert [stamp(t) for t in months["time"]] == [
        "Thu 2024-02-01 00:00:00",
        "Fri 2024-03-01 00:00:00",
    ]


def test_the_simulators_own_bars_make_five_daily_bars_a_week_on_a_ny7_server(make_sim):
    """Generated bars follow the forex week in New York time: at a NY+7 server that is
    Monday to Friday, through the 2020-03-08 switch; a UTC server gets Sunday stubs."""
    for zone, expected in (("NY+7", 5), ("UTC", 6)):
        sim = make_sim(server_tz=zone, history_bars=1500)
        days = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_D1, 0, 10**4)
        names = pd.to_datetime(days["time"], unit="s")
        counts = pd.Series(1, index=names).groupby(names.to_period("W-SAT")).sum()
        assert set(counts.iloc[1:-1]) == {expected}, zone
        assert ("Sunday" in set(names.day_name())) == (zone == "UTC")


def test_the_generator_cuts_bars_on_the_zones_clock_and_follows_new_york_summer_time():
    hours = generate_bars("EURUSD", "H1", 24 * 5 * 3, start="2024-03-01", zone=NY7)
    sundays = hours.loc[hours["time"].dt.day_name() == "Sunday", "time"].dt.strftime("%d %H")
    assert sundays.tolist()[:3] == ["03 22", "03 23", "10 21"]  # the week opens an hour earlier
    days = generate_bars("EURUSD", "D1", 10, start="2024-03-04", zone=NY7)
    assert days["time"].dt.strftime("%a %H").tolist()[3:7] == [
        "Wed 22",
        "Thu 22",
        "Sun 21",
        "Mon 21",
    ]
    holiday = generate_bars(
        "EURUSD", "H1", 200, start="2024-03-04", zone=NY7, holidays=["2024-03-06"]
    )
    served = holiday["time"] + pd.to_timedelta(
        NY7.offsets(holiday["time"].astype("int64") // 10**9), "s"
    )
    assert "2024-03-06" not in set(served.dt.strftime("%Y-%m-%d"))


# ---------------------------------------------------------------- ticks, deals, history


@pytest.mark.parametrize(
    ("at", "offset"), [("2024-03-06 12:00", 2 * H1), ("2024-03-13 12:00", 3 * H1)]
)
def test_ticks_are_stamped_at_the_server_offset_with_milliseconds(ny7_csv, at, offset):
    sim = ny7_sim(ny7_csv, at)
    sim.sim_advance(0.25)
    tick = sim.symbol_info_tick("EURUSD")
    assert sim.sim_server_offset() == offset
    assert (tick.time, tick.time_msc) == (server(at) + offset, (server(at) + offset) * 1000 + 250)
    assert sim.symbol_info("EURUSD").time == tick.time
    sim.sim_advance(2 * H1)
    ticks = sim.copy_ticks_range("EURUSD", tick.time, tick.time + 2 * H1, sim.COPY_TICKS_ALL)
    assert len(ticks) and (ticks["time"] == ticks["time_msc"] // 1000).all()
    assert ticks["time"][0] >= tick.time and ticks["time"][-1] <= tick.time + 2 * H1


def test_history_deals_get_reads_its_dates_in_server_time(ny7_csv):
    sim = ny7_sim(ny7_csv, "2024-03-13 12:00:00.250")
    done = sim.order_send(market(sim))
    sim.sim_advance(60)
    now = server("2024-03-13 15:01:00")  # UTC+3: 12:01 UTC
    (deal,) = sim.history_deals_get(now - 120, now)
    assert (deal.ticket, deal.time, deal.time_msc) == (done.deal, now - 60, (now - 60) * 1000 + 250)
    as_dates = [datetime.fromtimestamp(t, UTC) for t in (now - 120, now)]
    assert [d.ticket for d in sim.history_deals_get(*as_dates)] == [done.deal]
    assert sim.history_deals_get(now - 120 - 3 * H1, now - 3 * H1) == ()  # UTC dates: nothing
    assert sim.history_orders_total(now - 120, now) == 1
    assert [d.ticket for d in sim.history_deals_get(0, 2**40)] == [done.deal]  # "everything"
    (position,) = sim.positions_get()
    assert (position.time, position.time_msc % 1000) == (now - 60, 250)


def test_copy_ranges_read_their_dates_in_server_time(ny7_csv):
    sim = ny7_sim(ny7_csv, "2024-03-13 12:00")
    bars = sim.copy_rates_range(
        "EURUSD", sim.TIMEFRAME_H1, server("2024-03-13 10:00"), server("2024-03-13 15:00")
    )
    assert [stamp(t)[-8:] for t in bars["time"]] == [
        "10:00:00",
        "11:00:00",
        "12:00:00",
        "13:00:00",
        "14:00:00",
        "15:00:00",
    ]
    last = sim.copy_rates_from("EURUSD", sim.TIMEFRAME_H1, server("2024-03-13 13:00"), 2)
    assert [stamp(t)[-8:] for t in last["time"]] == ["12:00:00", "13:00:00"]


# ---------------------------------------------------------------- expiration


def test_a_specified_expiration_is_server_time(ny7_csv):
    sim = ny7_sim(ny7_csv, "2024-03-13 12:00")
    expiration = server("2024-03-13 16:00")  # in an hour: the server's clock runs UTC+3
    placed = sim.order_send(
        buy_limit(sim, type_time=sim.ORDER_TIME_SPECIFIED, expiration=expiration)
    )
    assert placed.retcode == sim.TRADE_RETCODE_PLACED
    assert sim.orders_get()[0].time_expiration == expiration
    written_in_utc = buy_limit(
        sim, type_time=sim.ORDER_TIME_SPECIFIED, expiration=server("2024-03-13 13:00")
    )
    assert sim.order_send(written_in_utc).retcode == sim.TRADE_RETCODE_INVALID_EXPIRATION  # past
    sim.sim_set_time(utc("2024-03-13 12:59:59"))
    assert len(sim.orders_get()) == 1
    sim.sim_set_time(utc("2024-03-13 13:00:01"))
    (expired,) = sim.history_orders_get(ticket=placed.order)
    assert (expired.state, expired.time_done) == (sim.ORDER_STATE_EXPIRED, expiration)


def test_a_day_order_expires_at_the_servers_midnight(ny7_csv):
    sim = ny7_sim(ny7_csv, "2024-03-13 12:00")
    placed = sim.order_send(buy_limit(sim, type_time=sim.ORDER_TIME_DAY))
    sim.sim_set_time(utc("2024-03-13 20:59:59"))  # 23:59:59 on the server
    assert [o.ticket for o in sim.orders_get()] == [placed.order]
    sim.sim_set_time(utc("2024-03-13 21:00:01"))  # long before UTC's midnight
    (expired,) = sim.history_orders_get(ticket=placed.order)
    assert (expired.state, stamp(expired.time_done)) == (
        sim.ORDER_STATE_EXPIRED,
        "Thu 2024-03-14 00:00:00",
    )


# ---------------------------------------------------------------- sessions


def test_the_weekend_has_no_ticks_and_refuses_orders(ny7_csv):
    sim = ny7_sim(ny7_csv, "2024-03-15 20:00")
    ticket = sim.order_send(buy_limit(sim)).order
    sim.sim_set_time(utc("2024-03-16 12:00"))
    tick = sim.symbol_info_tick("EURUSD")
    assert stamp(tick.time) == "Fri 2024-03-15 23:59:59"  # the last tick before the close
    sim.sim_advance(DAY)
    assert sim.symbol_info_tick("EURUSD") == tick
    for request in (market(sim), buy_limit(sim)):
        assert (sim.order_send(request).retcode, sim.order_check(request).retcode) == (10018, 10018)
    remove = {"action": sim.TRADE_ACTION_REMOVE, "order": ticket}
    assert sim.order_send(remove).comment == "Market closed"
    weekend = sim.copy_ticks_range(
        "EURUSD", server("2024-03-16 00:00"), server("2024-03-17 23:59"), sim.COPY_TICKS_ALL
    )
    assert len(weekend) == 0


def scripted(
    path: Path, start: str, rows: dict[str, tuple[float, float, float, float]], n: int
) -> Path:
    """Flat H1 bars at 1.1000 from `start` (no spread), with `rows` (time -> OHLC) set."""
    times = pd.date_range(start, periods=n, freq="h", tz="UTC")
    ohlc = [rows.get(t.strftime("%Y-%m-%d %H:%M"), (1.1, 1.1002, 1.0998, 1.1)) for t in times]
    frame = pd.DataFrame(ohlc, columns=["open", "high", "low", "close"])
    frame.insert(0, "time", times)
    save_csv(frame.assign(tick_volume=100, spread=0, real_volume=0), path)
    return path


def test_replayed_weekend_bars_do_not_trade_and_a_take_profit_fills_at_the_reopening(tmp_path):
    """A file with Saturday bars: the session still rules; the take-profit the price passed
    while closed fills at the first price after the reopening (a gap), not at its level."""
    saturday = {f"2024-01-06 {h:02d}:00": (1.11, 1.1102, 1.1098, 1.11) for h in range(24)}
    sunday = {f"2024-01-07 {h:02d}:00": (1.105, 1.1052, 1.1048, 1.105) for h in range(24)}
    csv = scripted(tmp_path / "weekend.csv", "2024-01-05 12:00", saturday | sunday, 60)
    sim = SimTerminal(SimConfig(data=str(csv), n_bars=100, history_bars=5))  # Fri 17:00 UTC
    assert sim.initialize()
    sim.order_send(market(sim, tp=1.103))
    sim.sim_set_time(utc("2024-01-06 12:00"))  # the bars say 1.1100
    assert sim.positions_total() == 1 and sim.symbol_info_tick("EURUSD").bid == 1.1
    sim.sim_set_time(utc("2024-01-07 22:30"))  # the forex week opens at 22:00 UTC in winter
    closing = sim.history_deals_get(0, 2**40)[-1]
    assert (closing.reason, closing.price, stamp(closing.time)) == (
        sim.DEAL_REASON_TP,
        1.105,
        "Sun 2024-01-07 22:00:00",
    )


def test_a_holiday_is_closed_all_day(ny7_csv, make_sim):
    sim = ny7_sim(ny7_csv, "2024-03-13 12:00", holidays=("2024-03-13",))
    assert sim.order_send(market(sim)).retcode == 10018
    assert stamp(sim.symbol_info_tick("EURUSD").time) == "Tue 2024-03-12 23:59:59"
    assert (
        len(
            sim.copy_ticks_range(
                "EURUSD", server("2024-03-13 00:00"), server("2024-03-13 15:00"), -1
            )
        )
        == 0
    )
    sim.sim_set_time(utc("2024-03-13 21:00:01"))  # 00:00:01 on Thursday, server time
    assert sim.order_send(market(sim)).retcode == sim.TRADE_RETCODE_DONE
    generated = make_sim(server_tz="NY+7", holidays=("2020-02-12",), history_bars=1000)
    days = generated.copy_rates_from_pos("EURUSD", generated.TIMEFRAME_D1, 0, 10**4)
    assert "2020-02-12" not in {
        pd.Timestamp(t, unit="s").strftime("%Y-%m-%d") for t in days["time"]
    }


@pytest.mark.parametrize(
    ("server_tz", "sessions", "shift"),
    [("UTC", "forex", 0), ("NY+7", "*=Mon 00:00-Sat 00:00 break 23:55-00:00", 2 * H1)],
)
def test_the_daily_break_refuses_orders_and_stops_ticks(make_sim, server_tz, sessions, shift):
    """The forex default's break (16:55-17:00 New York, 21:55 UTC in winter), enforced."""
    sim = make_sim(server_tz=server_tz, sessions=sessions)
    sim.sim_set_time(utc("2020-01-22 21:57"))
    assert sim.order_send(market(sim)).retcode == sim.TRADE_RETCODE_MARKET_CLOSED
    assert sim.symbol_info_tick("EURUSD").time == server("2020-01-22 21:54:59") + shift
    sim.sim_set_time(utc("2020-01-22 22:00"))
    assert sim.order_send(market(sim)).retcode == sim.TRADE_RETCODE_DONE


def test_by_default_the_break_is_not_enforced(make_sim):
    """The backtest fills through the break, so the default simulator does too (parity)."""
    sim = make_sim()
    sim.sim_set_time(utc("2020-01-22 21:57"))
    assert sim.order_send(market(sim)).retcode == sim.TRADE_RETCODE_DONE


def test_a_level_passed_during_a_break_fills_at_the_reopening_price(tmp_path):
    """A bar straddling the break still exists; its path goes on during the break, and the
    take-profit it crossed fills at the price the market reopens at (21:35)."""
    csv = scripted(
        tmp_path / "break.csv",
        "2024-01-10 12:00",
        {"2024-01-10 21:00": (1.1, 1.104, 1.0995, 1.1035)},
        20,
    )
    deals = {}
    for sessions in ("", "*=Sun 22:00-Fri 22:00 break 21:25-21:35"):
        sim = SimTerminal(SimConfig(data=str(csv), n_bars=100, history_bars=8, sessions=sessions))
        assert sim.initialize()
        sim.order_send(market(sim, tp=1.1025))
        sim.sim_set_time(utc("2024-01-10 23:00"))
        closing = sim.history_deals_get(0, 2**40)[-1]
        deals[sessions or "default"] = (closing.price, stamp(closing.time))
    assert deals["default"] == (1.1025, "Wed 2024-01-10 21:33:20")  # at its level on the path
    assert deals["*=Sun 22:00-Fri 22:00 break 21:25-21:35"] == (1.10288, "Wed 2024-01-10 21:35:00")


# ---------------------------------------------------------------- the rollover spread


def test_spreads_widen_around_the_rollover(make_sim):
    plain = make_sim()
    wide = make_sim(rollover_spread_factor=3.0, rollover_minutes=30)
    spreads = {}
    for at in ("2020-01-22 21:00", "2020-01-22 21:40", "2020-01-22 22:20", "2020-01-22 22:40"):
        for sim in (plain, wide):
            sim.sim_set_time(utc(at))
        a, b = plain.symbol_info_tick("EURUSD"), wide.symbol_info_tick("EURUSD")
        spreads[at[-5:]] = round((b.ask - b.bid) / (a.ask - a.bid), 2)
    # the closure 21:55-22:00 UTC (16:55-17:00 New York), widened by 30 minutes each side
    assert spreads == {"21:00": 1.0, "21:40": 3.0, "22:20": 3.0, "22:40": 1.0}
    wide.sim_set_time(utc("2020-01-22 21:40"))
    tick = wide.symbol_info_tick("EURUSD")
    assert wide.order_send(market(wide)).price == tick.ask  # fills pay the wide spread
    ticks = wide.copy_ticks_range(
        "EURUSD", server("2020-01-22 21:00"), server("2020-01-22 21:40"), -1
    )
    plain_ticks = plain.copy_ticks_range(
        "EURUSD", server("2020-01-22 21:00"), server("2020-01-22 21:40"), -1
    )
    np.testing.assert_allclose(
        (ticks["ask"] - ticks["bid"]) / (plain_ticks["ask"] - plain_ticks["bid"]), [1, 1, 3]
    )


# ---------------------------------------------------------------- settings


def test_a_utc_server_stamps_utc(sim):
    sim.sim_advance(0.5)
    tick = sim.symbol_info_tick("EURUSD")
    assert sim.sim_server_offset() == 0
    assert (tick.time, tick.time_msc) == (int(sim.sim_time()), round(sim.sim_time() * 1000))
    rates = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 5)
    np.testing.assert_array_equal(rates["time"], sim.server.feeds["EURUSD"].times[196:201])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"server_tz": "Mars/Olympus"}, "server_tz: unknown time zone"),
        ({"server_tz": "auto"}, "server_tz: 'auto' is the trader's"),
        ({"sessions": "EURUSD=Mon 00:00"}, r"sessions \(EURUSD\)"),
        ({"holidays": ("2024-13-01",)}, "holidays: '2024-13-01' is not a date"),
        ({"rollover_spread_factor": 0.5}, "rollover_spread_factor must be a number >= 1"),
        ({"rollover_minutes": -5}, "rollover_minutes must be a whole number"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(setting, message):
    with pytest.raises(ValueError, match=message):
        SimConfig(**setting)


def test_the_command_line_names_the_bad_option_and_reads_holidays_from_a_file(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "live.sim_terminal",
            "serve",
            "--port",
            "0",
            "--server-tz",
            "Mars/Olympus",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--server-tz" in result.stderr
    listed = tmp_path / "holidays.txt"
    listed.write_text("# broker calendar\n2024-12-25\n2025-01-01, 2024-12-26\n")
    assert read_holidays(str(listed)) == ("2024-12-25", "2025-01-01", "2024-12-26")
    assert read_holidays("2024-12-25,2025-01-01") == ("2024-12-25", "2025-01-01")
    with pytest.raises(ValueError, match="--holidays: no such file"):
        read_holidays(str(tmp_path / "missing.txt"))
