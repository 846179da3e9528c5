"""The broker's clock: resolving `auto` from ticks, checking a named BROKER_TZ, and converting
MT5 records and arrays between the server's clock and UTC. Also home of ServerClockTerminal, a
simulator that stamps like a server in another zone, used by the connector and doctor tests."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from backtest.broker_clock import BrokerZone, parse_zone
from live.broker_time import (
    FRESH_SECONDS,
    RETRY_SECONDS,
    BrokerClock,
    epoch_to_utc,
    moment_to_server,
    request_to_server,
    results_to_utc,
)
from live.config import LiveConfig
from live.errors import ConfigError
from live.mt5_records import TICKS_DTYPE, OrderSendResult, Tick, TradeOrder, TradeRequest

HOUR = 3600


def epoch(text: str) -> int:
    """UTC epoch seconds of 'YYYY-MM-DD HH:MM'."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


# What a server stamps in its clock (written out here rather than taken from live.mt5_records,
# so a field the connector forgets to convert shows up as a wrong time in a test).
SERVER_EPOCHS = {
    "SymbolInfo": ("time", "start_time", "expiration_time"),
    "Tick": ("time", "time_msc"),
    "TradeOrder": (
        "time_setup",
        "time_setup_msc",
        "time_done",
        "time_done_msc",
        "time_expiration",
    ),
    "TradePosition": ("time", "time_msc", "time_update", "time_update_msc"),
    "TradeDeal": ("time", "time_msc"),
    "TradeRequest": ("expiration",),
}
SERVER_MOMENTS = {
    "copy_rates_from": (2,),
    "copy_rates_range": (2, 3),
    "copy_ticks_from": (1,),
    "copy_ticks_range": (1, 2),
    "history_orders_get": (0, 1),
    "history_orders_total": (0, 1),
    "history_deals_get": (0, 1),
    "history_deals_total": (0, 1),
}


class ServerClockTerminal:
    """The simulator behind a trade server running on `zone`'s wall clock: every epoch it gives
    back is that clock read as UTC, every moment it is given is read so (MT5_NOTES §2), as a
    real GMT+2/+3 server does. The simulator's own extras (sim_time: UTC) pass through."""

    def __init__(self, terminal: Any, zone: str) -> None:
        self.sim = terminal
        self.zone = parse_zone(zone)
        self.received: list[tuple[str, tuple[int, ...]]] = []  # moments, as the server read them

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.sim, name)
        if name.startswith(("sim_", "_")) or not callable(attr) or isinstance(attr, type):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._out(attr(*self._in(name, args), **kwargs))

        return call

    def server_now(self) -> int:
        """The server's clock now (its wall clock read as UTC)."""
        return int(self.zone.to_server(float(self.sim.sim_time())))

    # ------------------------------------------------------------ what goes in

    def _in(self, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        positions = [i for i in SERVER_MOMENTS.get(name, ()) if i < len(args)]  # not ticket=
        args = tuple(self._moment_in(a) if i in positions else a for i, a in enumerate(args))
        if positions:
            self.received.append((name, tuple(self._wall(args[i]) for i in positions)))
        if name in ("order_send", "order_check") and args and isinstance(args[0], dict):
            request = dict(args[0])
            if request.get("expiration"):
                self.received.append((name, (int(request["expiration"]),)))
                request["expiration"] = int(self.zone.to_utc(int(request["expiration"])))
            args = (request, *args[1:])
        return args

    def _moment_in(self, moment: Any) -> int:
        """A moment read as the server's wall clock, handed to the simulator in UTC."""
        wall = int(moment.timestamp()) if isinstance(moment, datetime) else int(moment)
        return int(self.zone.to_utc(wall))

    def _wall(self, utc_seconds: int) -> int:
        return int(self.zone.to_server(utc_seconds))

    # ------------------------------------------------------------ what comes out

    def _out(self, value: Any) -> Any:
        if isinstance(value, np.ndarray) and value.dtype.names:
            out = value.copy()
            for name in ("time", "time_msc"):
                if name in value.dtype.names:
                    out[name] = [self._shift(name, v) for v in value[name]]
            return out
        fields = SERVER_EPOCHS.get(type(value).__name__)
        if fields is not None or hasattr(value, "_asdict"):
            values = value._asdict()
            for name in fields or ():
                values[name] = self._shift(name, values[name])
            for name, item in values.items():
                if hasattr(item, "_asdict"):
                    values[name] = self._out(item)
            return type(value)(*values.values())
        if isinstance(value, tuple):
            return tuple(self._out(item) for item in value)
        return value

    def _shift(self, name: str, value: int) -> int:
        if not value:
            return value
        if name.endswith("_msc"):
            seconds = int(value) // 1000
            return int(value) + (self._wall(seconds) - seconds) * 1000
        return self._wall(int(value))


# ---------------------------------------------------------------- auto: resolving from ticks


class Clock:
    """UTC now, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def auto_clock(now: str = "2024-03-08 14:00") -> tuple[BrokerClock, Clock]:
    utc = Clock(epoch(now))
    return BrokerClock("auto", utc_now=utc), utc


def test_auto_assumes_utc_until_it_sees_a_tick(caplog):
    clock, _ = auto_clock()
    assert clock.zone.offset_at(0) == 0 and not clock.resolved
    assert clock.source == "auto: no tick seen yet, UTC assumed"
    with caplog.at_level(logging.WARNING):
        clock.observe({})
        clock.observe({})
    assert caplog.text.count("times are taken as UTC") == 1  # said once, not every look


def test_the_first_tick_gives_a_provisional_offset_and_a_newer_one_confirms_it():
    clock, utc = auto_clock()
    clock.observe({"EURUSD": utc.now + 2 * HOUR - 3, "GBPUSD": utc.now + 2 * HOUR - 40})
    assert clock.zone.shift == 2 * HOUR and clock.resolved and not clock.confirmed
    assert clock.source == (
        "auto: EURUSD tick at 2024-03-08 15:59 server = UTC+02:00 (provisional)"
    )
    assert not clock.due()
    utc.now += RETRY_SECONDS  # unconfirmed: looks again soon
    assert clock.due()
    clock.observe({"EURUSD": utc.now + 2 * HOUR - 1})
    assert clock.confirmed and clock.source.endswith("= UTC+02:00")
    utc.now += RETRY_SECONDS
    assert not clock.due()  # settled: next look in an hour
    utc.now += HOUR
    assert clock.due()


def test_a_stale_tick_is_not_taken_for_an_offset(caplog):
    """A closed market's last tick is hours old: it lands anywhere within +-15 minutes of a
    half hour, and it does not move between looks."""
    clock, utc = auto_clock("2024-03-09 10:17")  # Saturday
    friday_close = epoch("2024-03-08 21:59") + 2 * HOUR  # server clock
    with caplog.at_level(logging.WARNING):
        clock.observe({"EURUSD": friday_close})
    assert not clock.resolved and "no recent tick (EURUSD last quoted" in caplog.text
    clock, utc = auto_clock("2024-03-08 14:00")
    clock.observe({"EURUSD": utc.now + 2 * HOUR})
    clock.observe({"EURUSD": utc.now + 2 * HOUR + 1})  # confirmed at UTC+2
    utc.now += 30 * 60  # a quiet half hour: the same tick, now 30 minutes old
    clock.observe({"EURUSD": utc.now + 2 * HOUR + 1 - 30 * 60})
    assert clock.zone.shift == 2 * HOUR


def test_a_confirmed_offset_changes_after_two_live_looks_and_warns_away_from_dst(caplog):
    clock, utc = auto_clock("2024-05-15 12:00")  # no switch within weeks
    clock.observe({"EURUSD": utc.now + 3 * HOUR})
    utc.now += 60
    clock.observe({"EURUSD": utc.now + 3 * HOUR})
    assert clock.confirmed and clock.zone.shift == 3 * HOUR
    utc.now += 2 * HOUR
    with caplog.at_level(logging.WARNING):
        clock.observe({"EURUSD": utc.now + 2 * HOUR})
        assert clock.zone.shift == 3 * HOUR  # seen once: not yet
        assert clock.due() is False and not caplog.text
        utc.now += RETRY_SECONDS
        assert clock.due()
        clock.observe({"EURUSD": utc.now + 2 * HOUR})
    assert clock.zone.shift == 2 * HOUR
    assert "changed from UTC+03:00 to UTC+02:00 away from any daylight-saving switch" in (
        caplog.text
    )


def test_an_offset_change_at_a_daylight_saving_switch_is_expected(caplog):
    clock, utc = auto_clock("2024-11-01 12:00")  # Friday before the US fall-back
    clock.observe({"EURUSD": utc.now + 3 * HOUR})
    utc.now += 60
    clock.observe({"EURUSD": utc.now + 3 * HOUR})
    utc.now = epoch("2024-11-03 22:00")  # Sunday's open, New York on EST
    with caplog.at_level(logging.INFO):
        clock.observe({"EURUSD": utc.now + 2 * HOUR})
        utc.now += RETRY_SECONDS
        clock.observe({"EURUSD": utc.now + 2 * HOUR})
    assert clock.zone.shift == 2 * HOUR
    assert "daylight-saving switch" in caplog.text and "WARNING" not in caplog.text


def test_a_live_tick_replaces_a_wrong_provisional_guess():
    """A weekend start may guess from a stale tick; the first live tick puts it right."""
    clock, utc = auto_clock("2024-03-09 10:00")
    clock.observe({"EURUSD": epoch("2024-03-08 20:59:30") + 2 * HOUR})  # residual 30 s
    assert clock.zone.shift == -11 * HOUR and not clock.confirmed
    utc.now = epoch("2024-03-10 22:05")
    clock.observe({"EURUSD": utc.now + 2 * HOUR - 2})
    assert clock.zone.shift == 2 * HOUR and clock.confirmed


@pytest.mark.parametrize("offset", [15 * HOUR, -15 * HOUR])
def test_an_offset_beyond_14_hours_is_ignored(offset):
    clock, utc = auto_clock()
    clock.observe({"EURUSD": utc.now + offset})
    assert not clock.resolved


# ---------------------------------------------------------------- a named zone: checked


def test_a_named_zone_says_where_it_comes_from():
    clock = BrokerClock("NY+7", utc_now=Clock(epoch("2024-03-08 14:00")))
    assert clock.source == "BROKER_TZ=NY+7"
    assert clock.describe() == "NY+7 (UTC+02:00 now), from BROKER_TZ"
    assert clock.to_server(epoch("2024-07-01 21:00")) == epoch("2024-07-02 00:00")


def test_an_unknown_zone_is_a_config_error():
    with pytest.raises(ConfigError, match="BROKER_TZ: unknown time zone 'Mars/Base'"):
        BrokerClock("Mars/Base")


def test_a_tick_stamped_after_now_says_broker_tz_is_wrong_at_once(caplog):
    utc = Clock(epoch("2024-07-01 12:00"))
    clock = BrokerClock("UTC+2", utc_now=utc)
    with caplog.at_level(logging.WARNING):
        clock.observe({"EURUSD": utc.now + 3 * HOUR})  # a UTC+3 server (summer)
    assert "BROKER_TZ=UTC+2 says UTC+02:00 now" in clock.disagreement
    assert "says UTC+03:00: BROKER_TZ is likely wrong" in caplog.text


def test_an_old_looking_tick_disagrees_only_once_it_moves(caplog):
    """UTC+3 configured, the server is on UTC+2: its ticks look an hour old, which a closed
    market's would too; a tick that moved since the last look settles it."""
    utc = Clock(epoch("2024-03-08 14:00"))
    clock = BrokerClock("UTC+3", utc_now=utc)
    clock.observe({"EURUSD": utc.now + 2 * HOUR})
    assert clock.disagreement is None
    utc.now += RETRY_SECONDS
    assert clock.due()  # a first live look is still wanted
    with caplog.at_level(logging.WARNING):
        clock.observe({"EURUSD": utc.now + 2 * HOUR})
    assert clock.disagreement and "likely wrong" in caplog.text


def test_a_named_zone_that_fits_says_nothing(caplog):
    utc = Clock(epoch("2024-07-01 12:00"))
    clock = BrokerClock("NY+7", utc_now=utc)
    with caplog.at_level(logging.WARNING):
        clock.observe({"EURUSD": utc.now + 3 * HOUR - 5})
        utc.now += RETRY_SECONDS
        clock.observe({"EURUSD": utc.now + 3 * HOUR - 1})
    assert clock.disagreement is None and not caplog.text
    utc.now += RETRY_SECONDS
    assert not clock.due()  # settled: hourly from now on


# ---------------------------------------------------------------- conversion


NY7 = parse_zone("NY+7")


@pytest.mark.parametrize(
    ("server", "utc"),
    [
        ("2024-03-08 00:00", "2024-03-07 22:00"),  # winter: UTC+2
        ("2024-03-12 00:00", "2024-03-11 21:00"),  # summer: UTC+3
        ("2024-11-04 00:00", "2024-11-03 22:00"),  # winter again
    ],
)
def test_epochs_convert_across_a_daylight_saving_switch(server, utc):
    assert epoch_to_utc(epoch(server), NY7) == epoch(utc)
    assert epoch_to_utc(epoch(server) * 1000 + 250, NY7, millis=True) == epoch(utc) * 1000 + 250


def test_records_convert_every_epoch_field_and_keep_zero():
    zone = parse_zone("UTC+3")
    tick = Tick(
        epoch("2024-03-08 17:00"), 1.1, 1.2, 0.0, 0, epoch("2024-03-08 17:00") * 1000 + 5, 6, 0
    )
    setup = epoch("2024-03-08 17:00")
    order = TradeOrder(1, setup, setup * 1000, 0, 0, 0, *[0] * 8, *[0.0] * 7, "EURUSD", "", "")
    request = TradeRequest(
        5, 1, 0, "EURUSD", 0.1, 1.1, 0, 0, 0, 20, 2, 0, 2, epoch("2024-03-08 19:00"), "", 0, 0
    )
    result = OrderSendResult(10009, 0, 7, 0.1, 1.1, 1.1, 1.2, "done", 1, 0, request)
    converted_tick, converted_order, converted_result = results_to_utc((tick, order, result), zone)
    assert converted_tick.time == epoch("2024-03-08 14:00")
    assert converted_tick.time_msc == epoch("2024-03-08 14:00") * 1000 + 5
    assert converted_order.time_setup == epoch("2024-03-08 14:00")
    assert (converted_order.time_done, converted_order.time_expiration) == (0, 0)  # none
    assert converted_result.request.expiration == epoch("2024-03-08 16:00")
    assert type(converted_result.request) is TradeRequest
    assert results_to_utc(tick, parse_zone("UTC")) is tick  # a UTC server: nothing to do


def test_rates_and_ticks_arrays_convert_their_time_columns():
    zone = parse_zone("UTC+2")
    ticks = np.zeros(2, dtype=TICKS_DTYPE)
    ticks["time"] = [epoch("2024-03-08 02:00"), 0]
    ticks["time_msc"] = [epoch("2024-03-08 02:00") * 1000 + 7, 0]
    out = results_to_utc(ticks, zone)
    assert list(out["time"]) == [epoch("2024-03-08 00:00"), 0]
    assert list(out["time_msc"]) == [epoch("2024-03-08 00:00") * 1000 + 7, 0]
    assert ticks["time"][0] == epoch("2024-03-08 02:00")  # the input is left alone


def test_moments_sent_are_the_servers_wall_clock():
    moment = datetime(2024, 7, 1, 21, 0, tzinfo=UTC)
    assert moment_to_server(moment, NY7) == datetime(2024, 7, 2, 0, 0, tzinfo=UTC)
    assert moment_to_server(epoch("2024-01-10 22:00"), NY7) == epoch("2024-01-11 00:00")
    assert request_to_server({"expiration": 0}, NY7) == {"expiration": 0}  # 0 = none
    assert request_to_server({"expiration": epoch("2024-01-10 22:00")}, NY7) == {
        "expiration": epoch("2024-01-11 00:00")
    }
    with pytest.raises(ValueError, match="naive"):
        moment_to_server(datetime(2024, 7, 1), NY7)


def test_the_fall_back_hour_reads_as_its_earlier_instant():
    """Europe/Athens repeats 03:00-04:00 on 2024-10-27: a deal stamped 03:30 is taken as the
    first 03:30 (00:30 UTC), though it may have been the second (01:30 UTC)."""
    athens = BrokerZone("Europe/Athens", "Europe/Athens")
    assert epoch_to_utc(epoch("2024-10-27 03:30"), athens) == epoch("2024-10-27 00:30")


def test_fresh_and_retry_defaults_are_sane():
    assert 0 < FRESH_SECONDS < 15 * 60 and RETRY_SECONDS < HOUR


# ---------------------------------------------------------------- the settings


def load(tmp_path, **environ: str) -> LiveConfig:
    empty = tmp_path / "empty.env"
    empty.touch()
    return LiveConfig.load(env_file=empty, environ=environ)


def test_the_zone_settings_default_to_auto_and_the_brokers_day(tmp_path):
    config = load(tmp_path)
    assert (config.broker_tz, config.trading_day_timezone) == ("auto", "broker")
    config = load(tmp_path, BROKER_TZ="AUTO", TRADING_DAY_TZ="Broker")
    assert (config.broker_tz, config.trading_day_timezone) == ("auto", "broker")


@pytest.mark.parametrize("value", ["NY+7", "Europe/Athens", "UTC+2", "UTC-05:30", "UTC"])
def test_broker_tz_takes_any_zone_the_backtest_reads(tmp_path, value):
    assert load(tmp_path, BROKER_TZ=value).broker_tz == value


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("BROKER_TZ", "Mars/Base", "BROKER_TZ='Mars/Base': unknown time zone 'Mars/Base'"),
        ("BROKER_TZ", "UTC+15", "BROKER_TZ='UTC+15': offset 'UTC+15' is beyond UTC"),
        ("TRADING_DAY_TZ", "brokers", "TRADING_DAY_TZ='brokers': unknown timezone; use broker"),
    ],
)
def test_a_zone_setting_that_cannot_be_read_is_a_config_error(tmp_path, key, value, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **{key: value})
    assert message in str(info.value)
