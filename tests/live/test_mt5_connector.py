"""MT5Connector against the simulator: typed errors, reconnects, filling modes, backends,
conversion of results (times to UTC from a server in another zone, and back), and the cached
history loader."""

from __future__ import annotations

import itertools
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from backtest.data import load_csv, save_csv
from backtest.terminal_history import load_from_terminal
from live.broker_types import RETRYABLE_RETCODES, SUCCESS_RETCODES
from live.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigError,
    OrderRejected,
    OutcomeUnknown,
    RetryableOrderError,
)
from live.mt5_connector import ConnectionState, MT5Connector
from live.mt5_errors import error_for_last_error, error_for_retcode
from live.mt5_symbols import decode_filling
from live.order_requests import PrecheckFailed, simulate_precheck
from live.sim_terminal import FaultConfig
from tests.live.test_broker_time import ServerClockTerminal

REFERENCE = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "mt5_api.json").read_text(encoding="utf-8")
)


@pytest.fixture
def connect(live_config, make_sim):
    """Factory: (connector, simulator) with the simulator injected as the API."""

    def factory(config_overrides=None, **sim_options):
        terminal = make_sim(**sim_options)
        connector = MT5Connector(live_config(**(config_overrides or {})), api=terminal)
        connector.connect()
        return connector, terminal

    return factory


def market_request(connector, sim, side="buy", symbol="EURUSD", **fields):
    tick = connector.tick(symbol)
    request = {
        "action": 1,
        "symbol": symbol,
        "volume": 0.1,
        "type": 0 if side == "buy" else 1,
        "price": tick.ask if side == "buy" else tick.bid,
        "deviation": 20,
        "magic": connector.config.magic_number,
        "comment": "LTTEST",
        "type_filling": connector.filling_mode(symbol),
    }
    request.update(fields)
    return request


@pytest.mark.parametrize("code", [int(c) for c in REFERENCE["retcodes"]])
def test_every_trade_return_code_maps_to_one_outcome(code):
    outcome = error_for_retcode(code)
    if code in (10008, 10009, 10010):
        assert outcome is None
    elif code in (10004, 10012, 10020, 10021, 10024, 10028, 10031):
        assert outcome is RetryableOrderError
    else:
        assert outcome is OrderRejected
    assert {int(c) for c in REFERENCE["retcodes"]} >= SUCCESS_RETCODES | RETRYABLE_RETCODES


@pytest.mark.parametrize(
    ("code", "sending", "expected"),
    [
        (-10004, False, BrokerUnavailable),
        (-10005, False, BrokerUnavailable),
        (-10004, True, BrokerUnavailable),  # not connected: the request never left
        (-10005, True, OutcomeUnknown),
        (-10002, True, OutcomeUnknown),
        (-10000, True, OutcomeUnknown),
        (-10001, True, BrokerUnavailable),
        (-2, True, OrderRejected),
        (-8, True, OrderRejected),
        (-4, False, BrokerError),
    ],
)
def test_last_error_codes_map_to_what_the_caller_must_do(code, sending, expected):
    assert error_for_last_error(code, sending=sending) is expected


@pytest.mark.parametrize(("flags", "mode"), [(1, 0), (2, 1), (3, 0), (0, 2), (4, 2), (6, 1)])
def test_filling_flags_are_decoded_not_passed_through(flags, mode):
    assert decode_filling(flags) == mode


def test_results_are_plain_records(connect):
    connector, _ = connect()
    account = connector.account()
    assert type(account).__name__ == "AccountInfo" and account.balance == 10_000.0
    spec = connector.symbol_spec("EURUSD")
    assert (spec.digits, spec.contract_size, spec.stops_level) == (5, 100_000.0, 10)
    bars = connector.rates("EURUSD", "H1", 50)
    assert len(bars) == 50 and str(bars["time"].dtype) == "datetime64[ns, UTC]"
    forming = connector.rates("EURUSD", "H1", 1, start_pos=0)
    assert forming["time"].iloc[0] > bars["time"].iloc[-1]  # start_pos=1 skips the forming bar


def test_send_order_success_and_positions_filtered_by_magic(connect):
    connector, sim = connect()
    result = connector.send_order(**market_request(connector, sim))
    assert result.retcode == 10009
    foreign = market_request(connector, sim, magic=1)
    connector.send_order(**foreign)
    assert [p.comment for p in connector.positions()] == ["LTTEST"]
    assert len(connector.all_positions()) == 2
    assert len(connector.deals_since(pd.Timestamp("2000-01-01", tz="UTC"))) == 1


@pytest.mark.parametrize(
    ("faults", "error", "code"),
    [
        (FaultConfig(requote_rate=1.0), RetryableOrderError, 10004),
        (FaultConfig(reject_rate=1.0), OrderRejected, 10006),
        (FaultConfig(timeout_rate=1.0), OutcomeUnknown, -10005),
        (FaultConfig(reply_lost_rate=1.0), OutcomeUnknown, -10005),
    ],
)
def test_send_order_failures_are_typed(connect, faults, error, code):
    connector, sim = connect(faults=faults)
    with pytest.raises(error) as info:
        connector.send_order(**market_request(connector, sim))
    assert info.value.code == code


def test_rejections_carry_the_server_result_and_a_hint(connect):
    connector, sim = connect()
    with pytest.raises(OrderRejected) as info:
        connector.send_order(**market_request(connector, sim, volume=0.015))
    assert info.value.code == 10014 and info.value.result.retcode == 10014
    assert "volume_min + k" in str(info.value)


def test_unknown_symbol_is_named(connect):
    connector, _ = connect()
    with pytest.raises(BrokerError, match="unknown symbol 'NOPE'"):
        connector.symbol_info("NOPE")


def test_hidden_symbol_is_selected_automatically(connect):
    connector, sim = connect()
    assert sim.symbol_info("USDCHF").visible is False
    assert connector.symbol_info("USDCHF").visible is True
    assert connector.tick("USDCHF").bid > 0


def test_filling_mode_falls_back_and_is_cached(connect, caplog):
    connector, sim = connect()
    request = market_request(connector, sim, symbol="GBPUSD", type_filling=0)
    assert connector.filling_mode("GBPUSD") == 1  # decoded: the symbol allows IOC only
    connector.market_watch._filling["GBPUSD"] = 0  # pretend a stale cache said FOK
    with caplog.at_level(logging.WARNING):
        assert connector.confirm_filling(request) == 1
    assert "filling mode FOK refused, using IOC" in caplog.text
    assert connector.filling_mode("GBPUSD") == 1


def test_reconnects_with_bounded_backoff_under_drops(connect, caplog):
    clock = [0.0]
    connector, sim = connect(config_overrides={"reconnect_max_seconds": 4.0})
    connector._monotonic = lambda: clock[0]
    sim.sim_drop_connection(calls=3)  # the probe and two reconnect attempts fail
    states = []
    with caplog.at_level(logging.INFO):
        for _ in range(12):
            states.append(connector.ensure_connected())
            clock[0] += 1.0
    assert states[0] is ConnectionState.DOWN
    assert ConnectionState.RECONNECTED in states
    assert states[-1] is ConnectionState.CONNECTED
    assert "reconnect attempt" in caplog.text and "reconnected" in caplog.text
    assert connector.account() is not None


def test_backoff_is_bounded(connect):
    clock = [0.0]
    connector, sim = connect(config_overrides={"reconnect_max_seconds": 4.0})
    connector._monotonic = lambda: clock[0]
    sim.sim_drop_connection(calls=10**6)
    attempts = []
    for second in range(60):
        clock[0] = float(second)
        before = connector._attempts
        connector.ensure_connected()
        if connector._attempts != before:
            attempts.append(second)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[:3] == [1, 2, 4] and max(gaps) == 4


def test_calls_while_disconnected_raise_broker_unavailable(connect):
    connector, sim = connect()
    sim.sim_drop_connection(calls=5)
    with pytest.raises(BrokerUnavailable) as info:
        connector.account()
    assert info.value.code == -10004


def test_backend_mt5_without_the_package_is_a_config_error(live_config):
    connector = MT5Connector(live_config(backend="mt5"))
    with pytest.raises(ConfigError, match="only for Windows"):
        connector.connect()


def test_auto_falls_back_to_the_simulator_only_in_dry_run(live_config, caplog):
    with pytest.raises(ConfigError, match="allowed only with --dry-run"):
        MT5Connector(live_config(backend="auto", dry_run=False)).connect()
    connector = MT5Connector(live_config(backend="auto", dry_run=True))
    with caplog.at_level(logging.WARNING):
        connector.connect()
    assert connector.backend == "sim" and connector.is_simulator
    assert "DRY RUN ON THE BUILT-IN SIMULATOR" in caplog.text


def test_mt5linux_backend_unreachable_says_what_to_do(live_config):
    connector = MT5Connector(live_config(backend="mt5linux", mt5linux_port=1))
    with pytest.raises(BrokerUnavailable, match="cannot reach the mt5linux server"):
        connector.connect()


@pytest.mark.served
def test_mt5linux_backend_against_the_served_simulator(live_config, served_sim):
    connector = MT5Connector(live_config(backend="mt5linux", mt5linux_port=served_sim.port))
    connector.connect()
    assert connector.account().login == 10_000_001
    result = connector.send_order(**market_request(connector, None))
    assert type(result).__name__ == "OrderSendResult" and result.retcode == 10009
    assert type(result.request).__name__ == "TradeRequest"
    positions = connector.positions("EURUSD")
    assert [(p.ticket, p.comment) for p in positions] == [(result.order, "LTTEST")]
    assert type(positions[0]).__module__ == "live.mt5_records"  # local copies, not proxies
    assert connector.is_simulator is False or connector.backend == "mt5linux"
    moved_from = connector.sim_call("sim_time")
    assert connector.sim_call("sim_step_bar") is True
    assert connector.sim_call("sim_time") > moved_from


class CountingSource:
    """A terminal wrapper that counts how often history is asked for."""

    def __init__(self, connector: MT5Connector) -> None:
        self.connector = connector
        self.calls: list[tuple] = []

    def rates_range(self, symbol, timeframe, date_from, date_to):
        self.calls.append((date_from, date_to))
        return self.connector.rates_range(symbol, timeframe, date_from, date_to)


def test_history_loader_caches_closed_bars(connect, tmp_path):
    connector, sim = connect()
    source = CountingSource(connector)
    now = pd.Timestamp(sim.sim_time(), unit="s", tz="UTC")
    start = now - pd.Timedelta(days=5)
    first = load_from_terminal(source, "EURUSD", "H1", start, now, cache_dir=tmp_path, now=now)
    assert len(source.calls) == 1 and len(first) > 50
    assert first["time"].iloc[-1] + pd.Timedelta(hours=1) <= now  # the forming bar is left out
    again = load_from_terminal(
        source, "EURUSD", "H1", start, now - pd.Timedelta(hours=1), cache_dir=tmp_path, now=now
    )
    assert len(source.calls) == 1  # served from the cache
    pd.testing.assert_frame_equal(again, first)
    wider = load_from_terminal(
        source, "EURUSD", "H1", start - pd.Timedelta(days=3), now, cache_dir=tmp_path, now=now
    )
    assert len(source.calls) == 2 and len(wider) > len(first)
    assert (tmp_path / "EURUSD_H1.csv").is_file()


def test_tick_and_rates_of_a_hidden_symbol_select_it_and_retry(connect):
    connector, sim = connect()
    assert sim.symbol_info("USDCHF").visible is False
    assert connector.tick("USDCHF").bid > 0  # first call: no symbol_info before it
    connector, sim = connect()
    assert len(connector.rates("USDCHF", "H1", 5)) == 5
    assert sim.symbol_info("USDCHF").visible is True
    with pytest.raises(BrokerError) as info:
        connector.tick("NOPE")  # unknown: nothing to select, the first error stands
    assert info.value.code == -4


class TerminalCrashed(Exception):
    """Raised by the terminal side in the middle of a call."""


def test_an_exception_raised_by_the_api_becomes_a_typed_error(connect):
    connector, sim = connect()

    def crash() -> None:
        raise TerminalCrashed("state disk full")

    sim.on_change = crash  # raised after the deal is executed
    with pytest.raises(OutcomeUnknown, match="TerminalCrashed"):
        connector.send_order(**market_request(connector, sim))
    assert sim.positions_total() == 1  # it did go out: OutcomeUnknown is the right answer


@pytest.mark.served
def test_a_remote_exception_over_rpyc_becomes_a_typed_error(live_config, served_sim):
    connector = MT5Connector(live_config(backend="mt5linux", mt5linux_port=served_sim.port))
    connector.connect()
    conn = connector._api._MetaTrader5__conn
    conn.execute("mt5.symbol_info_tick = lambda *args: 1 / 0")  # the terminal side breaks
    with pytest.raises(BrokerError, match="ZeroDivisionError") as info:
        connector.tick("EURUSD")
    assert type(info.value) is BrokerError
    conn.execute("mt5.on_change = lambda: {}['missing']")
    with pytest.raises(OutcomeUnknown, match="KeyError"):
        connector.send_order(
            **{
                "action": 1,
                "symbol": "EURUSD",
                "volume": 0.1,
                "type": 0,
                "price": 1.0,
                "deviation": 20,
                "magic": 1,
                "type_filling": 0,
            }
        )


def test_a_simulator_csv_of_another_timeframe_is_a_config_error(live_config, tmp_path):
    path = tmp_path / "daily.csv"
    save_csv(load_csv(Path(__file__).resolve().parents[1] / "data" / "eurusd_d1_mt5.csv"), path)
    connector = MT5Connector(live_config(backend="sim", sim_data=str(path), timeframe="H1"))
    with pytest.raises(ConfigError, match=r"daily\.csv: its bars are D1"):
        connector.connect()


def test_mt5_constants_namespace_matches_the_reference():
    from live.config import MT5Constants

    known = REFERENCE["constants"]
    ours = {k: v for k, v in vars(MT5Constants).items() if k.isupper() and isinstance(v, int)}
    shared = set(ours) & set(known)
    assert len(shared) > 60
    assert {k: ours[k] for k in shared} == {k: known[k] for k in shared}
    retcodes = {k for k in known if k.startswith("TRADE_RETCODE_")}
    assert retcodes <= set(ours)


def test_login_and_the_design_names(connect, live_config, make_sim):
    connector, terminal = connect()
    assert connector.get_account_info().login == connector.account().login
    assert connector.get_symbol_info("EURUSD").name == "EURUSD"
    assert connector.get_positions() == connector.positions() == ()
    assert connector.get_orders() == ()
    with pytest.raises(ConfigError, match="MT5_LOGIN is not set"):
        connector.login()
    terminal = make_sim(password="s3cret")
    login = terminal.account_info().login
    good = MT5Connector(
        live_config(
            mt5_login=login, mt5_password="s3cret", mt5_server=terminal.account_info().server
        ),
        api=terminal,
    )
    assert good.initialize() is True and good.connected
    good.login()
    wrong = MT5Connector(
        live_config(
            mt5_login=login, mt5_password="not it", mt5_server=terminal.account_info().server
        ),
        api=terminal,
    )
    assert wrong.initialize() is False  # MetaTrader5.initialize()'s answer, not an exception
    assert "authorization failed" in wrong.initialize_error
    assert "not it" not in wrong.initialize_error and not wrong.connected
    with pytest.raises(ConfigError, match="authorization failed"):
        wrong.connect()


def test_orders_go_out_as_keyword_arguments_and_a_misspelt_field_is_an_error(live_config, sim):
    connector = MT5Connector(live_config(), api=sim)
    connector.connect()
    request = market_request(connector, sim)
    with pytest.raises(TypeError):
        connector.send_order(request)  # positional: refused
    with pytest.raises(TypeError, match="volumne"):
        connector.send_order(**{**request, "volumne": 0.1})  # MT5 would ignore it silently
    assert sim.positions_total() == 0


# ---------------------------------------------------------------- the server's clock


@pytest.fixture
def connect_shifted(live_config, make_sim):
    """Factory: (connector, server) where the server stamps in `zone` (ServerClockTerminal)."""

    def factory(zone, broker_tz="auto", **sim_options):
        server = ServerClockTerminal(make_sim(**sim_options), zone)
        connector = MT5Connector(live_config(broker_tz=broker_tz), api=server)
        connector.connect()
        return connector, server

    return factory


def utc_of(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize(
    ("zone", "broker_tz"), [("UTC+3", "auto"), ("NY+7", "NY+7"), ("UTC-5", "auto")]
)
def test_a_fresh_tick_at_a_server_in_another_zone_is_seconds_old(connect_shifted, zone, broker_tz):
    """The stale-quote check (MAX tick age) sees UTC ticks: a live quote is not hours old (or
    hours in the future) because the server stamps it in its own clock."""
    connector, server = connect_shifted(zone, broker_tz)
    now = utc_of(server.sim_time())
    tick = connector.tick("EURUSD")
    assert abs(now.timestamp() - tick.time) <= 1
    assert abs(now.timestamp() * 1000 - tick.time_msc) <= 1000
    spec, account = connector.symbol_spec("EURUSD"), connector.account()
    request = market_request(connector, server)
    checks = {"spec": spec, "symbol_info": connector.symbol_info("EURUSD"), "account": account}
    simulate_precheck(request, tick=tick, now=now, max_tick_age_s=60, **checks)
    if server.zone.offset_at(now.timestamp()) < 0:  # unconverted, the quote looked hours old
        with pytest.raises(PrecheckFailed, match="market closed"):
            simulate_precheck(
                request,
                tick=server.symbol_info_tick("EURUSD"),
                now=now,
                max_tick_age_s=60,
                **checks,
            )


def test_times_coming_back_from_a_ny7_server_are_utc(connect_shifted):
    connector, server = connect_shifted("NY+7", "NY+7")
    sim = server.sim
    now = sim.sim_time()
    bars = connector.rates_array("EURUSD", "H1", 30)
    assert list(bars["time"]) == list(
        sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 1, 30)["time"]
    )
    start, end = utc_of(now - 10 * 3600), utc_of(now)
    ranged = connector.rates_range("EURUSD", "H1", start, end)
    assert ranged["time"].iloc[0] == pd.Timestamp(start) and len(ranged) == 11
    assert abs(connector.symbol_info("EURUSD").time - now) <= 1
    result = connector.send_order(**market_request(connector, server))
    position = connector.positions()[0]
    assert abs(position.time - now) <= 1 and abs(position.time_update_msc / 1000 - now) <= 1
    (deal,) = connector.deals_for_position(position.ticket)
    assert deal.time == position.time and deal.order == result.order
    ticks = connector._call("copy_ticks_range", "EURUSD", start, end, sim.COPY_TICKS_ALL)
    plain = sim.copy_ticks_range("EURUSD", start, end, sim.COPY_TICKS_ALL)
    assert len(ticks) == len(plain) > 0
    assert list(ticks["time_msc"]) == list(plain["time_msc"])
    moments = dict(server.received)
    assert moments["copy_rates_range"] == (server._wall(start.timestamp()), server._wall(now))


def test_an_order_expiration_goes_out_in_server_time(connect_shifted):
    """A pending order sent to expire in 2 hours (UTC) expires then, not 3 hours early."""
    connector, server = connect_shifted("UTC+3", "UTC+3")
    now = int(server.sim_time())
    expires = now + 2 * 3600
    tick = connector.tick("EURUSD")
    connector.send_order(
        **market_request(
            connector,
            server,
            action=5,
            type=2,  # buy limit, well below the market
            price=round(tick.bid - 0.01, 5),
            type_filling=2,
            type_time=2,  # ORDER_TIME_SPECIFIED
            expiration=expires,
        )
    )
    assert ("order_send", (expires + 3 * 3600,)) in server.received
    (order,) = connector.orders()
    assert order.time_expiration == expires and abs(order.time_setup - now) <= 1
    server.sim_advance(2 * 3600 - 600)
    assert len(connector.orders()) == 1
    server.sim_advance(1200)
    assert connector.orders() == ()


def test_deals_since_at_a_utc_plus_3_server_is_read_in_utc(connect_shifted):
    """history_deals_get(from, to) reads both as server time: from must not reach 3 hours
    back, to must reach the server's now (3 hours past UTC)."""
    connector, server = connect_shifted("UTC+3")
    filled_at = server.sim_time()
    connector.send_order(**market_request(connector, server))
    server.sim_advance(2 * 3600)
    assert connector.deals_since(utc_of(filled_at + 3600)) == ()
    (deal,) = connector.deals_since(utc_of(filled_at - 60))
    assert abs(deal.time - filled_at) <= 1
    name, (sent_from, sent_to) = server.received[-1]
    assert name == "history_deals_get"
    assert sent_from == int(filled_at - 60) + 3 * 3600
    assert sent_to >= server.server_now()


def test_the_auto_clock_runs_on_the_simulators_time_and_confirms_as_it_moves(connect_shifted):
    connector, server = connect_shifted("UTC+3")
    clock = connector.clock
    assert clock.now() == server.sim_time()  # the market's clock, not the wall's
    assert clock.zone.shift == 3 * 3600 and not clock.confirmed
    assert connector.ensure_connected() is ConnectionState.CONNECTED
    assert not clock.confirmed  # not due yet: the simulated clock has not moved
    server.sim_step_bar()
    connector.ensure_connected()
    assert clock.confirmed and clock.source.startswith("auto: EURUSD tick at ")
    assert clock.source.endswith("server = UTC+03:00")


def test_the_simulators_own_server_zone_is_converted_too(live_config, make_sim):
    """The simulator's SimConfig.server_tz needs no wrapper: it stamps in server time."""
    sim = make_sim(server_tz="UTC+3")
    now = sim.sim_time()
    assert abs(sim.symbol_info_tick("EURUSD").time - (now + 3 * 3600)) <= 1
    connector = MT5Connector(live_config(broker_tz="auto"), api=sim)
    connector.connect()
    assert connector.clock.zone.shift == 3 * 3600
    assert abs(connector.tick("EURUSD").time - now) <= 1
    connector.send_order(**market_request(connector, sim))
    sim.sim_advance(2 * 3600)
    assert connector.deals_since(utc_of(now + 3600)) == ()
    (deal,) = connector.deals_since(utc_of(now - 60))
    assert abs(deal.time - now) <= 1
