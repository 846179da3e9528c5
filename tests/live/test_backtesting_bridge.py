"""The bridge between strategies and the broker: decisions on closed bars, requests, prechecks
that refuse exactly what the terminal's order_check refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backtest.strategy import compute_signals
from live.backtesting_bridge import (
    BacktestingBridge,
    Decision,
    PrecheckFailed,
    bars_needed,
    build_order_request,
    generate_signals,
    get_strategy_from_file,
    simulate_precheck,
)
from live.mt5_connector import MT5Connector
from live.order_requests import stop_levels
from tests.live.conftest import SMA_CROSS

SYMBOLS = ("EURUSD", "XAUUSD", "USDTRY", "USDJPY")


@pytest.fixture
def broker(make_sim, live_config):
    connector = MT5Connector(
        live_config(symbols=("EURUSD",)), api=make_sim(symbols=SYMBOLS, history_bars=500)
    )
    connector.connect()
    return connector


def request_for(broker, symbol="EURUSD", *, side="buy", volume=0.1, sl=None, tp=None):
    tick = broker.tick(symbol)
    return build_order_request(
        symbol=symbol,
        side=side,
        volume=volume,
        price=tick.ask if side == "buy" else tick.bid,
        spec=broker.symbol_spec(symbol),
        magic=7,
        comment="LTTEST",
        deviation=20,
        filling=broker.filling_mode(symbol),
        sl=sl,
        tp=tp,
    )


def test_a_decision_is_computed_over_the_history_and_matches_the_full_history(broker):
    strategy = get_strategy_from_file(SMA_CROSS, ["fast=5", "slow=12"])
    assert bars_needed(strategy) == 5000 and bars_needed(strategy, 26) == 26
    assert generate_signals(broker, strategy, "EURUSD", "H1", lookback=26).bars == 26
    decision = generate_signals(broker, strategy, "EURUSD", "H1")
    history = broker.rates("EURUSD", "H1", 5000)
    assert decision.bars == len(history)  # all the simulator has, up to BARS_LOOKBACK
    full = compute_signals(strategy, history)
    assert decision.bar_time == history["time"].iloc[-1].to_pydatetime()
    assert decision.position == int(full.position[-1])
    assert decision.act == bool(full.actions()[-1])


def test_request_rounds_prices_and_volume_with_api_types(broker):
    spec = broker.symbol_spec("EURUSD")
    request = build_order_request(
        symbol="EURUSD",
        side="sell",
        volume=0.129,
        price=1.1234567,
        spec=spec,
        magic=7,
        comment="LTX",
        deviation=20,
        filling=1,
        sl=1.13000049,
        position=42,
    )
    assert request["price"] == 1.12346 and request["sl"] == 1.13 and request["tp"] == 0.0
    assert request["volume"] == 0.12  # floored to the step: never more than asked
    assert request["position"] == 42 and request["type"] == 1
    assert all(type(request[k]) is float for k in ("volume", "price", "sl", "tp"))
    assert all(
        type(request[k]) is int
        for k in ("action", "type", "deviation", "magic", "type_time", "type_filling")
    )
    with pytest.raises(ValueError, match="29 characters"):
        build_order_request(
            symbol="EURUSD",
            side="buy",
            volume=0.1,
            price=1.1,
            spec=spec,
            magic=7,
            comment="x" * 30,
            deviation=20,
            filling=1,
        )


def test_stop_levels_from_distances_and_absolute_prices(broker):
    spec = broker.symbol_spec("EURUSD")
    nan = float("nan")
    base = dict(
        symbol="EURUSD",
        bar_time=datetime.now(UTC),
        act=True,
        entry=True,
        previous_position=0,
        close=1.1,
        bars=30,
    )
    by_distance = Decision(
        position=-1, sl=nan, tp=nan, sl_distance=0.0020, tp_distance=0.00301, **base
    )
    assert stop_levels(by_distance, spec, 1.10000) == (1.102, 1.09699)
    absolute = Decision(position=1, sl=1.0912345, tp=nan, sl_distance=0.5, tp_distance=nan, **base)
    assert stop_levels(absolute, spec, 1.1) == (1.09123, None)


def bad_requests(broker):
    eurusd = broker.tick("EURUSD")
    gold = broker.tick("XAUUSD")
    off_step = {**request_for(broker), "volume": 0.015}  # as a hand-made request could be
    return {
        "volume step": (off_step, 10014),
        "disabled symbol": (request_for(broker, "USDTRY"), 10017),
        "stop too close": (request_for(broker, "XAUUSD", sl=round(gold.bid - 0.2, 2)), 10016),
        "stop on the wrong side": (request_for(broker, sl=round(eurusd.ask + 0.001, 5)), 10016),
        "no money": (request_for(broker, volume=50.0), 10019),
    }


@pytest.mark.parametrize(
    "case",
    ["volume step", "disabled symbol", "stop too close", "stop on the wrong side", "no money"],
)
def test_precheck_refuses_what_order_check_refuses(broker, case):
    request, code = bad_requests(broker)[case]
    symbol = request["symbol"]
    with pytest.raises(PrecheckFailed) as refused:
        simulate_precheck(
            request,
            spec=broker.symbol_spec(symbol),
            symbol_info=broker.symbol_info(symbol),
            tick=broker.tick(symbol),
            account=broker.account(),
        )
    assert refused.value.code == code
    assert symbol in str(refused.value)
    assert broker._api.order_check(request).retcode == code  # the terminal agrees


def test_precheck_passes_a_good_order_that_order_check_accepts(broker):
    tick = broker.tick("XAUUSD")
    request = request_for(
        broker, "XAUUSD", sl=round(tick.bid - 5.0, 2), tp=round(tick.ask + 5.0, 2)
    )
    simulate_precheck(
        request,
        spec=broker.symbol_spec("XAUUSD"),
        symbol_info=broker.symbol_info("XAUUSD"),
        tick=tick,
        account=broker.account(),
    )
    assert broker._api.order_check(request).retcode == 0


def test_stale_quotes_mean_the_market_is_closed(broker):
    tick = broker.tick("EURUSD")
    later = datetime.fromtimestamp(tick.time, tz=UTC) + timedelta(hours=3)
    with pytest.raises(PrecheckFailed, match="market closed") as refused:
        simulate_precheck(
            request_for(broker),
            spec=broker.symbol_spec("EURUSD"),
            symbol_info=broker.symbol_info("EURUSD"),
            tick=tick,
            account=broker.account(),
            now=later,
            max_tick_age_s=3600,
        )
    assert refused.value.code == 10018


def test_bars_needed_covers_the_warmup_and_honours_a_lookback():
    strategy = get_strategy_from_file(SMA_CROSS, ["fast=10", "slow=30"])
    assert bars_needed(strategy) == 5000  # a long history: held states come out as held
    assert bars_needed(strategy, lookback=500) == 500
    slow = get_strategy_from_file(SMA_CROSS, ["fast=10", "slow=3000"])
    assert bars_needed(slow) == 2 * slow.warmup
    assert bars_needed(strategy, lookback=5) == strategy.warmup + 1


def test_the_bridge_object_decides_like_the_functions(broker):
    strategy = get_strategy_from_file(SMA_CROSS, {"fast": 5, "slow": 12})
    bridge = BacktestingBridge(strategy, broker, timeframe="H1")
    decision = bridge.generate_signals("EURUSD")
    same = generate_signals(broker, strategy, "EURUSD", "H1")
    key = ("bar_time", "position", "act", "entry", "close", "bars")
    assert [getattr(decision, k) for k in key] == [getattr(same, k) for k in key]
    bars = bridge.latest_bars("EURUSD")
    assert len(bars) == len(broker.rates("EURUSD", "H1", bars_needed(strategy)))
    assert bridge.decide("EURUSD", bars).bar_time == decision.bar_time
    spec = broker.symbol_spec("EURUSD")
    assert (
        bridge.position_size(
            spec=spec, equity=10_000.0, entry_price=1.1, sl=None, account_currency="USD"
        )
        == 0.1
    )  # Sizing's default lots


def test_the_history_is_extended_bar_by_bar_and_kept_bounded(broker):
    sim = broker._api
    strategy = get_strategy_from_file(SMA_CROSS, {"fast": 5, "slow": 12})
    bridge = BacktestingBridge(strategy, broker, timeframe="H1", lookback=40)
    first = bridge.latest_bars("EURUSD")
    assert len(first) == 40
    fetched = []
    real_rates, real_array = broker.rates, broker.rates_array
    broker.rates_array = lambda *args, **kw: fetched.append(args[2]) or real_array(*args, **kw)
    for _ in range(100):
        sim.sim_step_bar()
        bars = bridge.latest_bars("EURUSD")
        assert bars["time"].iloc[-1] == real_rates("EURUSD", "H1", 1)["time"].iloc[-1]
        assert bars["time"].is_monotonic_increasing and bars["time"].is_unique
        assert 40 <= len(bars) <= 80  # extended, then the oldest half forgotten
    assert max(fetched) < 40  # only the last few bars were fetched again
    assert (
        compute_signals(strategy, bars).position[-1]
        == compute_signals(strategy, real_rates("EURUSD", "H1", len(bars))).position[-1]
    )
