"""MT5Connector against the simulator: typed errors, reconnects, filling modes, backends,
conversion of results, and the cached history loader."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from backtest.data import load_csv, load_from_terminal, save_csv
from live.broker_types import RETRYABLE_RETCODES, SUCCESS_RETCODES
from live.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigError,
    OrderRejected,
    OutcomeUnknown,
    RetryableOrderError,
)
from live.mt5_connector import (
    ConnectionState,
    MT5Connector,
    decode_filling,
    error_for_last_error,
    error_for_retcode,
)
from live.sim_terminal import FaultConfig

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
    connector._filling["GBPUSD"] = 0  # pretend a stale cache said FOK
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
    good.initialize()
    good.login()
    wrong = MT5Connector(
        live_config(
            mt5_login=login, mt5_password="not it", mt5_server=terminal.account_info().server
        ),
        api=terminal,
    )
    with pytest.raises(ConfigError, match="authorization failed"):
        wrong.initialize()


def test_orders_go_out_as_keyword_arguments_and_a_misspelt_field_is_an_error(live_config, sim):
    connector = MT5Connector(live_config(), api=sim)
    connector.connect()
    request = market_request(connector, sim)
    with pytest.raises(TypeError):
        connector.send_order(request)  # positional: refused
    with pytest.raises(TypeError, match="volumne"):
        connector.send_order(**{**request, "volumne": 0.1})  # MT5 would ignore it silently
    assert sim.positions_total() == 0
