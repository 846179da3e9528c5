"""Stop management helpers (backtest/management.py) and the shipped strategies that use the
management columns, plus the refusal of bad management columns at the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backtest.data import save_csv
from backtest.engine import run_backtest
from backtest.management import (
    break_even_stop,
    chandelier_stop,
    holdings,
    tightest,
    trailing_stop,
)
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ROOT / "backtest" / "strategies"
NAN = np.nan


def arrays(*rows):
    return [np.array(column, dtype=float) for column in zip(*rows, strict=True)]


def test_holdings_start_on_changes_and_fresh_entries():
    position = [0, 1, 1, -1, -1, 0, 1, 1]
    entry = [0, 0, 0, 0, 0, 0, 0, 1]
    assert holdings(position, entry).tolist() == [-1, 0, 0, 1, 1, -1, 2, 3]


def test_trailing_stop_follows_the_best_price_and_never_loosens():
    #             high   low    close
    high, low, close = arrays(
        (1.10, 1.09, 1.10),
        (1.12, 1.10, 1.11),
        (1.11, 1.09, 1.10),
        (1.15, 1.12, 1.14),
        (1.13, 1.125, 1.128),
    )
    level = trailing_stop([1, 1, 1, 1, 1], high, low, close, 0.02)
    # NaN where the close is at or below the level: no stop a server would take
    np.testing.assert_allclose(level, [1.08, 1.10, NAN, 1.13, NAN])
    short = trailing_stop([-1] * 5, high, low, close, 0.02)
    np.testing.assert_allclose(short, [1.11, NAN, 1.11, NAN, NAN])


def test_trailing_stop_waits_for_its_activation():
    high, low, close = arrays((1.10, 1.09, 1.10), (1.105, 1.10, 1.10), (1.12, 1.10, 1.115))
    level = trailing_stop([1, 1, 1], high, low, close, 0.01, activation=0.015)
    np.testing.assert_allclose(level, [NAN, NAN, 1.11])


def test_break_even_moves_the_stop_to_the_entry_after_r_multiples():
    high, low, close = arrays(
        (1.10, 1.099, 1.10), (1.105, 1.10, 1.104), (1.111, 1.10, 1.108), (1.109, 1.104, 1.105)
    )
    initial = [1.09, NAN, NAN, NAN]
    level = break_even_stop([1, 1, 1, 1], high, low, close, initial, after_r=1.0, offset=0.001)
    np.testing.assert_allclose(level, [1.09, 1.09, 1.101, 1.101])


def test_chandelier_hangs_atr_multiples_below_the_highest_high():
    bars = generate_bars("EURUSD", "H1", 400, seed=2)
    high, low, close = (bars[c].to_numpy() for c in ("high", "low", "close"))
    level = chandelier_stop(np.ones(400), high, low, close, period=22, multiple=3.0)
    defined = np.isfinite(level)
    assert defined[100:].mean() > 0.1
    assert (level[defined] < close[defined]).all()
    running = np.fmax.accumulate(np.where(defined, level, -np.inf))
    assert (level[defined] == running[defined]).all()  # only ever rises


def test_tightest_takes_the_nearest_stop_per_side():
    assert tightest([1, -1, 0], [1.0, 1.3, 1.0], [1.1, NAN, 1.1]).tolist()[:2] == [1.1, 1.3]
    assert np.isnan(tightest([1, -1, 0], [1.0, 1.3, 1.0], [1.1, NAN, 1.1])[2])


# ---------------------------------------------------------------- the shipped examples


@pytest.fixture(scope="module")
def long_bars():
    return generate_bars("EURUSD", "H1", 12_000, seed=11)


def backtest_file(name, bars):
    strategy = get_strategy_from_file(STRATEGIES / name)()
    return run_backtest(bars, strategy, spec=get_symbol_spec("EURUSD"))


def test_donchian_chandelier_moves_its_stop_and_is_stopped_out(long_bars):
    result = backtest_file("donchian_chandelier.py", long_bars)
    trades = result.trades
    assert len(trades) > 30
    assert (trades["exit_reason"] == "sl").mean() > 0.5
    # the stop at the exit is tighter than the initial one for some trades: it trailed
    profit_stops = trades[(trades["exit_reason"] == "sl") & (trades["pnl"] > 0)]
    assert len(profit_stops) > 5


def test_break_even_partial_takes_partials_and_time_exits(long_bars):
    trades = backtest_file("breakeven_partial.py", long_bars).trades
    reasons = set(trades["exit_reason"])
    assert {"partial", "sl"} <= reasons
    partial = trades[trades["exit_reason"] == "partial"]
    rest = trades[
        trades["position"].isin(partial["position"]) & (trades["exit_reason"] != "partial")
    ]
    assert len(rest) == len(partial)  # every partial has the rest of its position after it
    assert partial["volume"].tolist() == pytest.approx([0.05] * len(partial))
    assert (rest["exit_bar"].to_numpy() >= partial["exit_bar"].to_numpy()).all()


def test_pending_breakout_fills_at_its_order_prices(long_bars):
    trades = backtest_file("pending_breakout.py", long_bars).trades
    assert len(trades) > 20
    opens = long_bars["open"].to_numpy()[trades["entry_bar"].to_numpy()]
    at_level = ~np.isclose(trades["entry_price"].to_numpy(), opens, atol=1e-5)
    assert at_level.mean() > 0.5  # most fill inside their bar, at the stop price


# ---------------------------------------------------------------- bad input: exit 2


BAD = {
    "sl above a long's close": ("{'position': 1, 'sl': bars['close'] + 0.01}", "sl", "row 0"),
    "size above 1": ("{'position': 1, 'size': 1.5}", "size 1.5", "row 0"),
    "unknown entry type": (
        "{'position': 1, 'entry_type': 'market_if_touched', 'entry_price': 1.0}",
        "entry_type",
        "row 0",
    ),
    "negative expiry": (
        "{'position': 1, 'entry_type': 'limit', 'entry_price': bars['close'] - 0.01,"
        " 'expiry_bars': -1.0}",
        "expiry_bars -1.0",
        "row 0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_management_columns_exit_2_naming_column_and_row(case, tmp_path):
    columns, *fragments = BAD[case]
    strategy = tmp_path / "bad.py"
    strategy.write_text(
        "import pandas as pd\nfrom backtest.strategy import Strategy\n\n"
        "class Bad(Strategy):\n"
        "    def signals(self, bars):\n"
        f"        return pd.DataFrame({columns}, index=bars.index)\n"
    )
    data = tmp_path / "EURUSD_H1.csv"
    save_csv(generate_bars("EURUSD", "H1", 300, seed=1), data)
    result = subprocess.run(
        [sys.executable, "-m", "backtest", "run", "--strategy", str(strategy), "--data", str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr
