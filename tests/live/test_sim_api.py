"""The simulator against the facts of the real MetaTrader5 package: constants, structures,
dtypes, calling conventions and the error slot."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from live.sim_terminal import SimConfig, SimTerminal

REFERENCE = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "mt5_api.json").read_text(encoding="utf-8")
)


def test_every_constant_has_the_real_value():
    terminal = SimTerminal(SimConfig())
    assert len(REFERENCE["constants"]) == 223
    wrong = {
        name: getattr(terminal, name, None)
        for name, value in REFERENCE["constants"].items()
        if getattr(terminal, name, None) != value
    }
    assert wrong == {}


def test_flags_the_package_does_not_export_are_absent():
    terminal = SimTerminal(SimConfig())
    for name in (
        "SYMBOL_FILLING_FOK",
        "SYMBOL_FILLING_IOC",
        "SYMBOL_FILLING_BOC",
        "TRADE_RETCODE_HEDGE_PROHIBITED",
    ):
        assert not hasattr(terminal, name), name


@pytest.mark.parametrize("name", list(REFERENCE["structures"]))
def test_structures_have_the_real_fields_in_order(name):
    struct_type = getattr(SimTerminal, name)
    fields = REFERENCE["structures"][name]
    record = struct_type(*range(len(fields)))
    assert isinstance(record, tuple)
    assert list(record._asdict()) == fields
    assert [getattr(record, f) for f in fields] == list(range(len(fields)))
    assert not hasattr(record, "_fields") and not hasattr(record, "_replace")
    assert pickle.loads(pickle.dumps(record)) == record


def test_every_function_exists():
    terminal = SimTerminal(SimConfig())
    missing = [f for f in REFERENCE["functions"] if not callable(getattr(terminal, f, None))]
    assert missing == []


def test_rates_and_ticks_dtypes(sim):
    rates = sim.copy_rates_from_pos("EURUSD", sim.TIMEFRAME_H1, 0, 5)
    assert [(n, rates.dtype[n].str) for n in rates.dtype.names] == [
        tuple(f) for f in REFERENCE["rates_dtype"]
    ]
    assert rates.dtype.itemsize == 60
    ticks = sim.copy_ticks_from("EURUSD", int(sim.sim_time()) - 7200, 10, sim.COPY_TICKS_ALL)
    assert [(n, ticks.dtype[n].str) for n in ticks.dtype.names] == [
        tuple(f) for f in REFERENCE["ticks_dtype"]
    ]
    assert len(ticks) > 0 and (ticks["ask"] >= ticks["bid"]).all()


def test_calls_before_initialize_fail_with_no_ipc_connection():
    terminal = SimTerminal(SimConfig())
    assert terminal.account_info() is None
    assert terminal.last_error() == (-10004, "No IPC connection")
    assert terminal.positions_total() is None
    assert terminal.symbol_select("EURUSD") is False


def test_every_call_resets_the_error_slot(sim):
    assert sim.symbol_info("NOPE") is None
    assert sim.last_error() == (-4, "Terminal: Not found")
    assert sim.version() is not None
    assert sim.last_error() == (1, "Success")


def test_shutdown_returns_true_and_disconnects(sim):
    assert sim.shutdown() is True
    assert sim.terminal_info() is None and sim.last_error()[0] == -10004


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda t: t.positions_get("EURUSD"), (-2, "Unnamed arguments not allowed")),
        (lambda t: t.orders_get("EURUSD"), (-2, "Unnamed arguments not allowed")),
        (lambda t: t.copy_rates_from_pos("EURUSD", 12345, 0, 10), (-2, "Invalid arguments")),
        (lambda t: t.copy_rates_from_pos("EURUSD", 16385, 0, 0), (-2, "Invalid arguments")),
        (lambda t: t.history_deals_get(1), (-2, "Invalid arguments")),
        (lambda t: t.initialize(123), (-2, "Invalid arguments")),
    ],
)
def test_malformed_arguments(sim, call, error):
    assert call(sim) is None or call(sim) is False
    assert sim.last_error() == error


def request(sim, **fields):
    tick = sim.symbol_info_tick("EURUSD")
    base = {
        "action": sim.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": sim.ORDER_TYPE_BUY,
        "price": tick.ask,
        "deviation": 10,
        "magic": 7,
        "type_filling": sim.ORDER_FILLING_FOK,
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("volume", 1),
        ("price", 1),
        ("sl", 0),
        ("magic", 7.0),
        ("type", np.int64(0)),
        ("comment", "x" * 30),
        ("symbol", 5),
    ],
)
def test_request_field_types_are_checked_like_the_compiled_module(sim, field, value):
    assert sim.order_send(request(sim, **{field: value})) is None
    assert sim.last_error() == (-2, f'Invalid "{field}" argument')
    assert sim.positions_total() == 0


def test_comment_of_29_characters_passes_and_numpy_floats_are_floats(sim):
    result = sim.order_send(request(sim, comment="c" * 29, volume=np.float64(0.1)))
    assert result.retcode == sim.TRADE_RETCODE_DONE
    assert sim.positions_get()[0].comment == "c" * 29


def test_order_send_accepts_keywords_and_returns_a_trade_request(sim):
    result = sim.order_send(**request(sim))
    assert result.retcode == 10009
    assert type(result.request).__name__ == "TradeRequest"
    assert type(result._asdict()["request"]).__name__ == "TradeRequest"  # shallow, as real


def test_dates_as_naive_aware_and_epoch(sim):
    now = int(sim.sim_time())
    aware = datetime.fromtimestamp(now, tz=UTC)
    naive_local = datetime.fromtimestamp(now)  # the package reads naive dates as local time
    for moment in (aware, naive_local, now):
        rates = sim.copy_rates_from("EURUSD", sim.TIMEFRAME_H1, moment, 3)
        assert rates["time"][-1] == now


def test_login_and_authorization(make_sim):
    terminal = make_sim(password="s3cret-pw")
    assert terminal.login(10_000_001, password="s3cret-pw") is True
    assert terminal.login(10_000_001, password="wrong") is False
    assert terminal.last_error() == (-6, "Terminal: Authorization failed")
    fresh = SimTerminal(SimConfig(password="s3cret-pw"))
    assert fresh.initialize(login=10_000_001, password="wrong", server="Sim-Demo") is False
    assert fresh.last_error()[0] == -6


def test_market_book_is_unsupported(sim):
    assert sim.market_book_add("EURUSD") is False
    assert sim.last_error() == (-7, "Terminal: Unsupported function")


def test_symbols_and_group_masks(sim):
    assert sim.symbols_total() == len(sim.symbols_get())
    names = [s.name for s in sim.symbols_get(group="*USD*,!XAU*")]
    assert "EURUSD" in names and "XAUUSD" not in names
    assert [s.name for s in sim.symbols_get("GBP*")] == ["GBPUSD"]


INVALID, COUNT = (-2, "Invalid arguments"), (-2, "Invalid number of arguments")


@pytest.mark.parametrize(
    ("call", "answer", "error"),
    [
        (lambda t: t.order_calc_margin(0, "EURUSD", "x", 1.1), None, INVALID),
        (lambda t: t.order_calc_margin(0, "EURUSD", 1.0, "x"), None, INVALID),
        (lambda t: t.order_calc_profit(0, "EURUSD", 1.0, "a", 1.1), None, INVALID),
        (lambda t: t.order_calc_margin(), None, COUNT),
        (lambda t: t.copy_rates_from("EURUSD", 16385), None, COUNT),
        (lambda t: t.symbol_info(), None, COUNT),
        (lambda t: t.version(1), None, COUNT),
        (lambda t: t.account_info(1), None, COUNT),
        (lambda t: t.positions_total(x=1), None, INVALID),
        (lambda t: t.symbols_get(group=5), None, INVALID),
        (lambda t: t.positions_get(group=5), None, INVALID),
        (lambda t: t.orders_get(ticket="1"), None, INVALID),
        (lambda t: t.history_deals_get(ticket="x"), None, INVALID),
        (lambda t: t.history_orders_get(position=1.5), None, INVALID),
        (lambda t: t.login("abc"), False, INVALID),
        (lambda t: t.login(10_000_001, bogus=1), False, INVALID),
        (lambda t: t.login(), False, COUNT),
        (lambda t: t.initialize(login="abc"), False, INVALID),
        (lambda t: t.symbol_select("EURUSD", "yes"), False, INVALID),
        (lambda t: t.market_book_add(5), None, INVALID),  # None, not False, when malformed
    ],
)
def test_malformed_arguments_fail_softly_as_the_module_does(sim, call, answer, error):
    assert call(sim) is answer
    assert sim.last_error() == error


@pytest.mark.parametrize(
    "call",
    [
        # positional only (MT5_NOTES §3: P)
        lambda t: t.symbol_info(symbol="EURUSD"),
        lambda t: t.symbol_info_tick(symbol="EURUSD"),
        lambda t: t.market_book_get(symbol="EURUSD"),
        lambda t: t.copy_rates_from_pos(symbol="EURUSD", timeframe=16385, start_pos=0, count=2),
        lambda t: t.copy_rates_from("EURUSD", 16385, date_from=0, count=2),
        lambda t: t.copy_rates_range("EURUSD", 16385, 0, date_to=2**31),
        lambda t: t.copy_ticks_from("EURUSD", 0, 10, flags=-1),
        lambda t: t.copy_ticks_range("EURUSD", date_from=0, date_to=2**31, flags=-1),
        lambda t: t.order_calc_margin(action=0, symbol="EURUSD", volume=1.0, price=1.1),
        lambda t: t.order_calc_profit(0, "EURUSD", 1.0, 1.1, price_close=1.2),
        lambda t: t.history_deals_total(date_from=0, date_to=2**31),
        lambda t: t.history_orders_total(0, date_to=2**31),
        lambda t: t.history_deals_get(date_from=0, date_to=2**31),
        # keywords only (K)
        lambda t: t.history_deals_get(0, 2**31, "EUR*"),
    ],
)
def test_calling_conventions_are_enforced_for_every_function(sim, call):
    assert call(sim) is None
    assert sim.last_error()[0] == -2


def test_positional_bool_argument_of_symbol_select_only(sim):
    assert sim.symbol_select("USDCHF", enable=True) is False
    assert sim.last_error() == INVALID
    assert sim.symbol_select("USDCHF", True) is True
    assert sim.symbols_get("EUR*") == sim.symbols_get(group="EUR*")  # P or K, both fine
    assert sim.login(10_000_001) is True and sim.login(login=10_000_001) is True


def test_last_error_takes_no_arguments(sim):
    assert sim.last_error(1) is None
    assert sim.last_error() == COUNT


@pytest.mark.parametrize("name", list(REFERENCE["structures"]))
def test_structures_carry_the_struct_sequence_counts(name):
    struct_type = getattr(SimTerminal, name)
    fields = REFERENCE["structures"][name]
    assert struct_type.n_fields == struct_type.n_sequence_fields == len(fields)
    assert struct_type.n_unnamed_fields == 0
    assert struct_type.__match_args__ == tuple(fields)
    record = struct_type(*range(len(fields)))
    assert record == tuple(range(len(fields))) and "n_fields" not in record._asdict()
    match record:
        case struct_type(first, second):  # __match_args__ lets the fields be matched
            assert (first, second) == (0, 1)
