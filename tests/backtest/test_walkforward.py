"""Walk-forward windows, out-of-sample trading and stitching."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.engine import BacktestConfig, trade_exposure_bars
from backtest.optimize import GridError
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from backtest.walkforward import Window, run_walkforward, windows

ROOT = Path(__file__).resolve().parents[2]
SmaCross = get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")
RsiReversion = get_strategy_from_file(ROOT / "backtest" / "strategies" / "rsi_reversion.py")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "rolling",
            [Window(0, 100, 100, 130), Window(30, 130, 130, 160), Window(60, 160, 160, 190)],
        ),
        (
            "anchored",
            [Window(0, 100, 100, 130), Window(0, 130, 130, 160), Window(0, 160, 160, 190)],
        ),
    ],
)
def test_window_boundaries(mode, expected):
    assert windows(200, 100, 30, mode) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((100, 0, 10, "rolling"), "must be positive"),
        ((100, 80, 30, "rolling"), "at least train \\+ test = 110 bars"),
        ((100, 50, 10, "sideways"), "rolling or anchored"),
    ],
)
def test_bad_windows(args, message):
    with pytest.raises(GridError, match=message):
        windows(*args)


@pytest.fixture(scope="module")
def result():
    bars = generate_bars("EURUSD", "H1", 4000, seed=31)
    return bars, run_walkforward(
        bars,
        SmaCross,
        {"fast": [5, 10, 20], "slow": [30, 60]},
        spec=get_symbol_spec("EURUSD"),
        config=BacktestConfig(spread_points=0),
        metric="sharpe",
        train=2000,
        test=500,
        mode="rolling",
        workers=1,
        progress=False,
    )


def test_out_of_sample_trades_lie_inside_the_test_windows(result):
    bars, wf = result
    assert len(wf.windows) == 4
    first_test = bars["time"].iloc[2000]
    assert (wf.oos_trades["entry_time"] >= first_test).all()
    for _, row in wf.windows.iterrows():
        inside = wf.oos_trades[
            (wf.oos_trades["entry_time"] >= row["test_start"])
            & (wf.oos_trades["entry_time"] <= row["test_end"])
        ]
        assert len(inside) == row["OOS trades"]


def test_stitched_equity_is_continuous_and_compounds(result):
    bars, wf = result
    equity = wf.oos_equity
    assert equity.index.is_monotonic_increasing and equity.index.is_unique
    assert equity.index[0] == bars["time"].iloc[2000]
    assert len(equity) == 2000
    assert wf.oos_stats["total_return_pct"] == pytest.approx(100 * (equity.iloc[-1] / 10_000 - 1))
    jumps = np.abs(np.diff(equity.to_numpy()))
    assert jumps.max() < 500  # no reset to the starting cash between windows


def test_summary_and_json(result):
    _, wf = result
    text = wf.summary()
    assert "in-sample" in text and "out-of-sample" in text and "Sharpe" in text
    document = wf.to_json_dict()
    assert len(document["windows"]) == 4
    assert document["windows"][0]["test_start"].endswith("+00:00")
    assert set(document) >= {"in_sample", "out_of_sample", "metric"}


def held_bars(trades, equity_index) -> int:
    """Bars with a position, counted from the trades' times on the stitched curve's bars: an
    exit at a bar's open (signal) leaves that bar flat; a stop, target or end fills inside."""
    entry = equity_index.get_indexer(pd.DatetimeIndex(trades["entry_time"]))
    exit_ = equity_index.get_indexer(pd.DatetimeIndex(trades["exit_time"]))
    assert (entry >= 0).all() and (exit_ >= 0).all()
    return int((exit_ - entry + (trades["exit_reason"] != "signal").to_numpy()).sum())


@pytest.fixture(scope="module")
def with_stops():
    bars = generate_bars("EURUSD", "H1", 3000, seed=17)
    return run_walkforward(
        bars,
        RsiReversion,
        {"period": [7, 14], "sl_atr": [1.0, 2.0]},
        spec=get_symbol_spec("EURUSD"),
        config=BacktestConfig(),
        metric="total_return_pct",
        train=1000,
        test=500,
        mode="anchored",
        workers=1,
        progress=False,
    )


def test_out_of_sample_exposure_comes_from_the_out_of_sample_trades(result, with_stops):
    for wf in (result[1], with_stops):
        trades, equity = wf.oos_trades, wf.oos_equity
        held = held_bars(trades, equity.index)
        assert held == trade_exposure_bars(trades) > 0
        assert wf.oos_stats["exposure_pct"] == pytest.approx(100 * held / len(equity))
    reasons = set(with_stops.oos_trades["exit_reason"])
    assert {"sl", "signal"} <= reasons  # both kinds of exit are counted


def test_json_carries_the_stitched_equity_from_the_starting_cash(with_stops):
    document = json.loads(with_stops.json_text())
    assert document == with_stops.to_json_dict()
    equity = document["oos_equity"]
    assert len(equity) == 4 * 500 == len(with_stops.oos_equity)
    assert equity[0] == {"time": with_stops.oos_equity.index[0].isoformat(), "equity": 10_000.0}
    times = pd.DatetimeIndex([point["time"] for point in equity])
    assert times.equals(with_stops.oos_equity.index)
    values = [point["equity"] for point in equity]
    assert values == [round(v, 2) for v in with_stops.oos_equity]
    assert values[-1] == document["out_of_sample"]["equity_final"]
    for k in range(1, 4):  # continuous: each window starts with the equity the last ended on
        assert values[500 * k] == values[500 * k - 1]
    assert document["oos_trades"] == len(with_stops.oos_trades)
    written = json.loads(with_stops.json_text(), parse_float=Decimal)
    metrics = [
        row[key]
        for row in written["windows"]
        for key in row
        if key.startswith(("IS ", "OOS ")) and isinstance(row[key], Decimal)
    ]
    assert len(metrics) == 8 and max(-m.as_tuple().exponent for m in metrics) <= 6
