"""Fill model, stops, sizing and equity of the backtest engine, on hand-built bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import BacktestConfig, run_backtest, trade_exposure_bars
from backtest.sizing import Sizing, SizingError
from backtest.strategy import Strategy, normalize_signals
from backtest.symbols import get_symbol_spec

EURUSD = get_symbol_spec("EURUSD")
USDJPY = get_symbol_spec("USDJPY")


class Unused(Strategy):
    """Placeholder: these tests hand the engine ready-made signals."""


def make_bars(rows: list[tuple[float, float, float, float]], spread: int = 0) -> pd.DataFrame:
    """Bars from (open, high, low, close) tuples, hourly from 2024-01-01 00:00 UTC."""
    o, h, lo, c = (np.array(col, dtype=float) for col in zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "time": pd.date_range("2024-01-01", periods=len(rows), freq="h", tz="UTC"),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "tick_volume": 100,
            "spread": spread,
            "real_volume": 0,
        }
    )


def flat_bars(n: int, price: float = 1.1) -> list[tuple[float, float, float, float]]:
    return [(price, price + 0.001, price - 0.001, price)] * n


def backtest(bars, position, config=None, spec=EURUSD, **columns):
    frame = pd.DataFrame({"position": position, **columns})
    signals = normalize_signals(frame, len(bars))
    return run_backtest(
        bars, Unused(), spec=spec, config=config or BacktestConfig(spread_points=0), signals=signals
    )


def test_decision_fills_at_next_open_and_exits_on_change():
    rows = [
        (1.10, 1.101, 1.099, 1.10),
        (1.10, 1.101, 1.099, 1.10),
        (1.10, 1.101, 1.099, 1.100),
        (1.1010, 1.103, 1.100, 1.102),
        (1.1020, 1.104, 1.101, 1.103),
        (1.1030, 1.105, 1.102, 1.104),
        (1.1050, 1.106, 1.104, 1.105),
    ]
    result = backtest(make_bars(rows), [0, 0, 1, 1, 1, 0, 0])
    trade = result.trades.iloc[0]
    assert len(result.trades) == 1
    assert trade.entry_time == pd.Timestamp("2024-01-01 03:00", tz="UTC")
    assert trade.exit_time == pd.Timestamp("2024-01-01 06:00", tz="UTC")
    assert (trade.entry_price, trade.exit_price) == (1.1010, 1.1050)
    assert trade.exit_reason == "signal"
    assert trade.pnl == pytest.approx((1.1050 - 1.1010) * 0.1 * 100_000)  # 40.00 USD
    assert trade["size"] == pytest.approx(10_000)


def test_reversal_closes_and_opens_at_the_same_open():
    rows = [
        (1.10 + i / 1000, 1.10 + i / 1000 + 0.002, 1.10 + i / 1000 - 0.002, 1.10 + i / 1000)
        for i in range(8)
    ]
    result = backtest(make_bars(rows), [0, 1, 1, -1, -1, -1, -1, -1])
    first, second = result.trades.iloc[0], result.trades.iloc[1]
    assert (first.direction, second.direction) == ("long", "short")
    assert first.exit_time == second.entry_time == pd.Timestamp("2024-01-01 04:00", tz="UTC")
    assert first.exit_price == second.entry_price == 1.104
    assert second.exit_reason == "end"
    assert second.exit_price == rows[-1][3]


def test_decision_on_the_last_bar_is_not_filled():
    result = backtest(make_bars(flat_bars(5)), [0, 0, 0, 0, 1])
    assert result.trades.empty
    assert result.stats["n_trades"] == 0


def test_open_trade_is_left_out_when_close_at_end_is_false():
    config = BacktestConfig(spread_points=0, close_at_end=False)
    rows = [(1.1, 1.101, 1.099, 1.1)] * 3 + [(1.1, 1.111, 1.099, 1.11)]
    result = backtest(make_bars(rows), [1, 1, 1, 1], config=config)
    assert result.trades.empty
    assert result.equity.iloc[-1] == pytest.approx(10_000 + (1.11 - 1.1) * 10_000)


@pytest.mark.parametrize(
    ("mode", "entry", "exit_"),
    [
        ("half", 1.10000 + 0.00010, 1.10500 - 0.00010),  # 20 points: half on each side
        ("bid", 1.10000 + 0.00020, 1.10500),  # bars are bid: buys pay the whole spread
    ],
)
def test_spread_is_paid_on_the_right_side(mode, entry, exit_):
    rows = [
        (1.1, 1.101, 1.099, 1.1),
        (1.1, 1.101, 1.099, 1.1),
        (1.105, 1.106, 1.104, 1.105),
        (1.105, 1.106, 1.104, 1.105),
    ]
    config = BacktestConfig(spread_points=20, spread_mode=mode)
    trade = backtest(make_bars(rows), [1, 0, 0, 0], config=config).trades.iloc[0]
    assert trade.entry_price == pytest.approx(entry, abs=1e-12)
    assert trade.exit_price == pytest.approx(exit_, abs=1e-12)


def test_spread_comes_from_the_data_column_by_default():
    rows = [(1.1, 1.101, 1.099, 1.1)] * 4
    config = BacktestConfig()  # spread_points None: use bars["spread"]
    trade = backtest(make_bars(rows, spread=12), [-1, 0, 0, 0], config=config).trades.iloc[0]
    assert trade.entry_price == pytest.approx(1.1 - 0.00006)
    assert trade.exit_price == pytest.approx(1.1 + 0.00006)
    assert trade.pnl == pytest.approx(-0.00012 * 10_000)


def test_commission_is_charged_per_lot_per_side():
    rows = [(1.1, 1.101, 1.099, 1.1)] * 4
    config = BacktestConfig(spread_points=0, commission_per_lot=3.5, sizing=Sizing.fixed(2.0))
    trade = backtest(make_bars(rows), [1, 0, 0, 0], config=config).trades.iloc[0]
    assert trade.commission == pytest.approx(2 * 2 * 3.5)
    assert trade.pnl == pytest.approx(-14.0)


def test_stop_loss_inside_a_bar_exits_at_the_stop():
    rows = [
        (1.1, 1.101, 1.099, 1.1),
        (1.1, 1.101, 1.0995, 1.1),
        (1.1, 1.1005, 1.0970, 1.098),
        (1.098, 1.099, 1.097, 1.098),
    ]
    result = backtest(make_bars(rows), [1, 1, 1, 1], sl_distance=[0.002] * 4)
    trade = result.trades.iloc[0]
    assert trade.exit_reason == "sl"
    assert trade.sl == pytest.approx(1.098)
    assert trade.exit_price == pytest.approx(1.098)
    assert trade.exit_time == pd.Timestamp("2024-01-01 02:00", tz="UTC")


def test_gap_through_the_stop_fills_at_the_open():
    rows = [
        (1.1, 1.101, 1.099, 1.1),
        (1.1, 1.101, 1.0995, 1.1),
        (1.095, 1.096, 1.094, 1.095),
        (1.095, 1.096, 1.094, 1.095),
    ]
    trade = backtest(make_bars(rows), [1, 1, 1, 1], sl=[1.098] * 4).trades.iloc[0]
    assert (trade.exit_reason, trade.exit_price) == ("sl", 1.095)


@pytest.mark.parametrize(
    ("bar", "direction", "expected"),
    [
        ((1.1, 1.105, 1.095, 1.1), 1, ("sl", 1.097)),  # a tie goes to the low first
        ((1.1, 1.104, 1.095, 1.1), 1, ("tp", 1.103)),  # the high is nearer the open
        ((1.1, 1.105, 1.096, 1.1), 1, ("sl", 1.097)),  # the low is nearer
        ((1.1, 1.105, 1.096, 1.1), -1, ("tp", 1.097)),  # a short's target is below
        ((1.1, 1.104, 1.095, 1.1), -1, ("sl", 1.103)),
    ],
)
def test_sl_and_tp_in_one_bar_fill_in_the_order_the_path_meets_them(bar, direction, expected):
    rows = [(1.1, 1.101, 1.099, 1.1), (1.1, 1.101, 1.0995, 1.1), bar, (1.1, 1.101, 1.099, 1.1)]
    trade = backtest(
        make_bars(rows), [direction] * 4, sl_distance=[0.003] * 4, tp_distance=[0.003] * 4
    ).trades.iloc[0]
    assert (trade.exit_reason, trade.exit_price) == (expected[0], pytest.approx(expected[1]))


def test_take_profit_for_a_short():
    rows = [
        (1.1, 1.101, 1.099, 1.1),
        (1.1, 1.101, 1.0995, 1.1),
        (1.1, 1.1005, 1.0965, 1.097),
        (1.097, 1.098, 1.096, 1.097),
    ]
    trade = backtest(
        make_bars(rows), [-1, -1, -1, -1], sl_distance=[0.005] * 4, tp_distance=[0.003] * 4
    ).trades.iloc[0]
    assert trade.tp == pytest.approx(1.097)
    assert (trade.exit_reason, trade.exit_price) == ("tp", pytest.approx(1.097))
    assert trade.pnl == pytest.approx(0.003 * 10_000)


def test_absolute_levels_win_over_distances():
    rows = [(1.1, 1.101, 1.099, 1.1)] * 2 + [(1.1, 1.1, 1.0975, 1.098)] * 2
    trade = backtest(
        make_bars(rows), [1, 1, 1, 1], sl=[1.0980] * 4, sl_distance=[0.0100] * 4
    ).trades.iloc[0]
    assert trade.sl == pytest.approx(1.098)
    assert trade.exit_reason == "sl"


def test_stopped_trade_is_not_reentered_until_the_decision_changes():
    rows = [(1.1, 1.101, 1.099, 1.1), (1.1, 1.101, 1.0995, 1.1), (1.1, 1.1, 1.090, 1.091)]
    rows += [(1.091, 1.092, 1.090, 1.091)] * 4 + [(1.091, 1.092, 1.090, 1.092)] * 3
    position = [1, 1, 1, 1, 1, 0, -1, -1, -1, -1]
    result = backtest(make_bars(rows), position, sl_distance=[0.005] * 10)
    assert list(result.trades.exit_reason) == ["sl", "end"]
    assert result.trades.iloc[1].direction == "short"
    assert result.trades.iloc[1].entry_time == pd.Timestamp("2024-01-01 07:00", tz="UTC")


def test_stop_can_trigger_on_the_entry_bar():
    rows = [(1.1, 1.101, 1.099, 1.1), (1.1, 1.1005, 1.090, 1.095), (1.095, 1.096, 1.094, 1.095)]
    trade = backtest(make_bars(rows), [1, 1, 1], sl_distance=[0.002] * 3).trades.iloc[0]
    assert trade.entry_time == trade.exit_time
    assert trade.exit_reason == "sl"


def test_risk_sizing_uses_the_balance_before_each_entry():
    rows = [
        (1.1, 1.101, 1.099, 1.1),
        (1.1, 1.101, 1.0995, 1.1),
        (1.1, 1.1, 1.0975, 1.098),
        (1.098, 1.099, 1.097, 1.098),
        (1.098, 1.099, 1.097, 1.098),
        (1.098, 1.098, 1.0955, 1.096),
        (1.096, 1.097, 1.095, 1.096),
    ]
    config = BacktestConfig(spread_points=0, sizing=Sizing.risk(1.0))
    result = backtest(
        make_bars(rows), [1, 1, 0, 1, 1, 1, 1], config=config, sl_distance=[0.002] * 7
    )
    first, second = result.trades.iloc[0], result.trades.iloc[1]
    assert first.volume == pytest.approx(0.5)  # 100 USD risk / (0.002 × 100,000) per lot
    assert first.pnl == pytest.approx(-100.0)
    assert second.volume == pytest.approx(0.49)  # 99 USD / 200 per lot = 0.495 -> floored to step
    assert result.equity.iloc[-1] == pytest.approx(10_000 - 100 - 0.49 * 200)


def test_risk_sizing_without_a_stop_is_a_clear_error():
    config = BacktestConfig(spread_points=0, sizing=Sizing.risk(1.0))
    with pytest.raises(SizingError, match="stop-loss"):
        backtest(make_bars(flat_bars(4)), [1, 1, 0, 0], config=config)


def test_profit_of_a_usd_base_pair_is_converted_at_the_exit_price():
    rows = [(150.0, 150.1, 149.9, 150.0)] * 2 + [(151.0, 151.1, 150.9, 151.0)] * 2
    trade = backtest(make_bars(rows), [1, 0, 0, 0], spec=USDJPY).trades.iloc[0]
    assert trade.pnl == pytest.approx(round(1.0 * 10_000 / 151.0, 2))


def test_equity_is_marked_to_market_on_every_held_bar():
    rows = [
        (1.1, 1.101, 1.099, 1.1),
        (1.1, 1.102, 1.099, 1.101),
        (1.101, 1.104, 1.1, 1.103),
        (1.103, 1.104, 1.102, 1.102),
        (1.102, 1.103, 1.101, 1.102),
    ]
    result = backtest(make_bars(rows), [1, 1, 1, 0, 0])
    # held from the open of bar 1 to the open of bar 4 (decision change on bar 3)
    expected = [10_000, 10_000 + 10, 10_000 + 30, 10_000 + 20, 10_000 + 20]
    np.testing.assert_allclose(result.equity.to_numpy(), expected)
    assert result.stats["exposure_pct"] == pytest.approx(60.0)


def test_trades_records_are_json_ready():
    result = backtest(make_bars(flat_bars(4)), [1, 0, 0, 0])
    record = result.trades_records()[0]
    assert record["entry_time"] == "2024-01-01T01:00:00+00:00"
    assert record["size"] == pytest.approx(10_000.0)
    assert set(record) >= {
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "direction",
        "size",
        "pnl",
        "exit_reason",
    }
    assert all(not isinstance(v, np.generic) for v in record.values())


@pytest.mark.parametrize(
    "bad",
    [
        {"cash": 0},
        {"cash": float("nan")},
        {"commission_per_lot": -1},
        {"spread_points": -2},
        {"spread_mode": "mid"},
    ],
)
def test_bad_config_is_rejected_with_the_value(bad):
    key, value = next(iter(bad.items()))
    with pytest.raises(ValueError, match=str(value) if key != "cash" else "cash"):
        BacktestConfig(**bad)


def test_entry_event_in_the_held_direction_closes_and_reopens():
    rows = [
        (1.10 + i / 1000, 1.10 + i / 1000 + 0.002, 1.10 + i / 1000 - 0.002, 1.10 + i / 1000)
        for i in range(6)
    ]
    entry = [False, True, False, True, False, False]
    result = backtest(make_bars(rows), [0, 1, 1, 1, 1, 1], entry=entry)
    first, second = result.trades.iloc[0], result.trades.iloc[1]
    assert (first.direction, second.direction) == ("long", "long")
    assert first.exit_time == second.entry_time == pd.Timestamp("2024-01-01 04:00", tz="UTC")
    assert first.exit_reason == "signal"


def test_entry_event_reopens_after_a_stop_out():
    rows = [(1.1, 1.101, 1.099, 1.1), (1.1, 1.101, 1.0995, 1.1), (1.1, 1.1, 1.090, 1.091)]
    rows += [(1.091, 1.092, 1.090, 1.091)] * 4
    entry = [True, False, False, False, True, False, False]
    result = backtest(make_bars(rows), [1] * 7, sl_distance=[0.005] * 7, entry=entry)
    assert list(result.trades.exit_reason) == ["sl", "end"]
    assert result.trades.iloc[1].entry_time == pd.Timestamp("2024-01-01 05:00", tz="UTC")


def test_entry_event_while_flat_does_nothing():
    result = backtest(make_bars(flat_bars(5)), [0, 0, 0, 0, 0], entry=[True] * 5)
    assert result.trades.empty


# bar 1 opens a long with its stop at 1.098, hit inside bar 2; bar 5 opens a short
EXPOSURE_ROWS = [
    (1.1, 1.101, 1.099, 1.1),
    (1.1, 1.101, 1.0995, 1.1),
    (1.1, 1.1005, 1.097, 1.098),
] + [(1.098, 1.099, 1.097, 1.098)] * 5
NAN = float("nan")


@pytest.mark.parametrize(
    ("position", "reasons", "held"),
    [
        # the stop fills inside bar 2: bars 1-2 held; the signal exit fills at bar 7's open,
        # so bar 7 is not held: bars 5-6
        ([1, 1, 1, 0, -1, -1, 0, 0], ["sl", "signal"], 2 + 2),
        # the short still open on the last bar closes at its close: bars 5-7 held
        ([1, 1, 1, 0, -1, -1, -1, -1], ["sl", "end"], 2 + 3),
        # a reversal at bar 5's open: the long 4-5 ends at that open, the short holds 5-7
        ([0, 0, 0, 1, -1, -1, -1, -1], ["signal", "end"], 1 + 3),
    ],
)
def test_exposure_counts_a_bar_held_until_a_stop_inside_it(position, reasons, held):
    bars = make_bars(EXPOSURE_ROWS)
    sl_distance = [0.002, NAN, NAN, NAN, NAN, NAN, NAN, NAN]
    result = backtest(bars, position, sl_distance=sl_distance)
    assert list(result.trades["exit_reason"]) == reasons
    assert result.stats["exposure_pct"] == pytest.approx(100 * held / len(bars))
    assert trade_exposure_bars(result.trades) == held


def test_a_stop_on_the_entry_bar_is_one_bar_held():
    rows = [
        (1.1, 1.101, 1.099, 1.1),
        (1.1, 1.1005, 1.090, 1.095),
        (1.095, 1.096, 1.094, 1.095),
        (1.095, 1.096, 1.094, 1.095),
    ]
    result = backtest(make_bars(rows), [1, 1, 1, 1], sl_distance=[0.002] * 4)
    assert list(result.trades["exit_reason"]) == ["sl"]
    assert trade_exposure_bars(result.trades) == 1
    assert result.stats["exposure_pct"] == pytest.approx(25.0)
