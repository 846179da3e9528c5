"""Position management in the backtest engine: moving stops, partial exits and scale-ins,
limit and stop entries with expiry, time exits, on hand-built bars; and the plain path's
results unchanged when the managed path runs without management."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import BacktestConfig, run_backtest
from backtest.indicators import sma
from backtest.strategy import Strategy, normalize_signals
from backtest.symbols import get_symbol_spec
from tests.backtest.conftest import make_random_bars
from tests.backtest.test_engine import flat_bars, make_bars

EURUSD = get_symbol_spec("EURUSD")
NAN = np.nan


class Fixed(Strategy):
    """Signals handed over ready-made; stops read on the entry bar only."""


class Moving(Strategy):
    moving_stops = True


def run(rows, config=None, strategy=Moving, **columns):
    bars = make_bars(rows)
    n = len(bars)
    frame = pd.DataFrame({name: _column(value, n) for name, value in columns.items()})
    signals = normalize_signals(frame, n)
    return run_backtest(
        bars,
        strategy(),
        spec=EURUSD,
        config=config or BacktestConfig(spread_points=0),
        signals=signals,
    )


def _column(value, n):
    return value if isinstance(value, list) else [value] * n


def summary(result):
    return [
        (
            int(t.entry_bar),
            int(t.exit_bar),
            round(t.entry_price, 5),
            round(t.exit_price, 5),
            round(t.volume, 2),
            t.exit_reason,
            int(t.position),
        )
        for t in result.trades.itertuples()
    ]


# ---------------------------------------------------------------- moving stops


def test_a_stop_set_on_bar_t_applies_from_bar_t_plus_one():
    rows = flat_bars(6)
    rows[3] = (1.1, 1.101, 1.0985, 1.1)  # reaches 1.0987; the flat bars' lows do not
    # the level 1.0987 decided on bar 2 is in force on bar 3: hit there
    early = run(rows, position=1, sl=[1.097, 1.097, 1.0987, NAN, NAN, NAN])
    assert summary(early) == [(1, 3, 1.1, 1.0987, 0.1, "sl", 1)]
    # decided on bar 3 it applies from bar 4: bar 3's dip passes under the old stop
    late = run(rows, position=1, sl=[1.097, 1.097, NAN, 1.0987, NAN, NAN])
    assert summary(late) == [(1, 5, 1.1, 1.1, 0.1, "end", 1)]


def test_without_moving_stops_later_levels_are_ignored():
    rows = flat_bars(6)
    rows[3] = (1.1, 1.101, 1.0985, 1.1)
    fixed = run(rows, strategy=Fixed, position=1, sl=[1.097, 1.097, 1.0987, NAN, NAN, NAN])
    assert summary(fixed) == [(1, 5, 1.1, 1.1, 0.1, "end", 1)]


def test_a_moved_stop_the_open_has_passed_is_refused_and_the_old_one_stays():
    rows = flat_bars(6)
    rows[3] = (1.0995, 1.1, 1.0975, 1.099)  # opens below the new level 1.0998
    result = run(rows, position=1, sl=[1.098, 1.098, 1.0998, NAN, NAN, NAN])
    assert summary(result) == [(1, 3, 1.1, 1.098, 0.1, "sl", 1)]


def test_a_gap_through_a_moved_stop_fills_at_the_open():
    rows = flat_bars(6)
    rows[4] = (1.0985, 1.099, 1.098, 1.0985)
    result = run(rows, position=1, sl=[1.097, 1.097, 1.0989, NAN, NAN, NAN])
    assert summary(result) == [(1, 4, 1.1, 1.0985, 0.1, "sl", 1)]


def test_a_moving_take_profit():
    rows = flat_bars(6)
    rows[4] = (1.1, 1.1025, 1.0995, 1.1)
    result = run(rows, position=1, tp=[1.105, 1.105, 1.105, 1.102, NAN, NAN])
    assert summary(result) == [(1, 4, 1.1, 1.102, 0.1, "tp", 1)]


# ---------------------------------------------------------------- size


def test_a_partial_exit_is_a_row_of_its_own_and_the_position_sums_up():
    rows = flat_bars(6)
    rows[3] = (1.102, 1.103, 1.101, 1.102)
    result = run(rows, position=1, size=[1, 1, 0.4, NAN, NAN, NAN])
    assert summary(result) == [
        (1, 3, 1.1, 1.102, 0.06, "partial", 1),
        (1, 5, 1.1, 1.1, 0.04, "end", 1),
    ]
    assert result.trades["pnl"].tolist() == [12.0, 0.0]
    assert result.stats["n_trades"] == 1  # one position
    # the partial profit realised, the rest marked at the close
    assert result.equity.iloc[3] == pytest.approx(10_000 + 12.0 + 8.0)


def test_scaling_in_averages_the_entry_price():
    rows = flat_bars(6)
    rows[3] = (1.102, 1.103, 1.101, 1.102)
    result = run(rows, position=1, size=[0.5, 0.5, 1.0, NAN, NAN, NAN])
    (trade,) = summary(result)
    assert trade == (1, 5, 1.101, 1.1, 0.1, "end", 1)


def test_size_zero_closes_and_a_remainder_below_volume_min_closes_too():
    rows = flat_bars(6)
    zero = run(rows, position=1, size=[1, 1, 0, NAN, NAN, NAN])
    assert summary(zero) == [(1, 3, 1.1, 1.1, 0.1, "partial", 1)]
    tiny = run(
        rows,
        BacktestConfig(spread_points=0, sizing=_lots(0.01)),
        position=1,
        size=[1, 1, 0.5, NAN, NAN, NAN],
    )
    assert summary(tiny) == [(1, 3, 1.1, 1.1, 0.01, "partial", 1)]


def test_volumes_snap_to_the_step():
    rows = flat_bars(6)
    result = run(
        rows,
        BacktestConfig(spread_points=0, sizing=_lots(0.07)),
        position=1,
        size=[1, 1, 0.5, NAN, NAN, NAN],
    )
    assert [t[4] for t in summary(result)] == [0.04, 0.03]  # 0.035 kept -> 0.03


def _lots(lots):
    from backtest.sizing import Sizing

    return Sizing(mode="fixed", lots=lots)


# ---------------------------------------------------------------- pending entries


def test_a_buy_limit_fills_at_its_price_when_the_path_reaches_it():
    rows = flat_bars(7)
    rows[3] = (1.1, 1.1005, 1.0975, 1.099)
    result = run(
        rows,
        position=[1, 1, 1, 1, 1, 1, 1],
        entry_type="limit",
        entry_price=1.098,
        sl_distance=0.002,
    )
    assert summary(result) == [(3, 6, 1.098, 1.1, 0.1, "end", 1)]
    assert result.trades["sl"].iloc[0] == pytest.approx(1.096)


def test_a_limit_the_open_gaps_through_fills_at_the_open():
    rows = flat_bars(6)
    rows[2] = (1.097, 1.098, 1.0965, 1.0975)
    result = run(rows, position=1, entry_type="limit", entry_price=1.098)
    assert summary(result)[0][:4] == (2, 5, 1.097, 1.1)


def test_a_pending_entry_expires_unfilled():
    rows = flat_bars(7)
    rows[4] = (1.1, 1.1005, 1.0975, 1.099)  # reaches 1.098 on the 4th bar after the decision
    result = run(rows, position=1, entry_type="limit", entry_price=1.098, expiry_bars=3)
    assert result.trades.empty
    kept = run(rows, position=1, entry_type="limit", entry_price=1.098, expiry_bars=4)
    assert summary(kept)[0][:3] == (4, 6, 1.098)


def test_a_pending_entry_is_cancelled_when_the_decision_changes():
    rows = flat_bars(7)
    rows[4] = (1.1, 1.1005, 1.0975, 1.099)
    result = run(rows, position=[1, 1, 0, 0, 0, 0, 0], entry_type="limit", entry_price=1.098)
    assert result.trades.empty


def test_a_sell_stop_then_its_stop_loss_in_the_same_bar_follow_the_path():
    rows = flat_bars(6)
    # open 1.1, the high first (nearer), then the low: the high passes the stop-loss at
    # 1.1015 before the sell stop at 1.0985 fills on the way down, so it is no hit
    rows[2] = (1.1, 1.1018, 1.098, 1.0982)
    result = run(rows, position=-1, entry_type="stop", entry_price=1.0985, sl=1.1015)
    assert summary(result) == [(2, 5, 1.0985, 1.1, 0.1, "end", 1)]
    # the low nearer the open: down through the stop entry first, then up through the SL
    rows[2] = (1.1, 1.1018, 1.0985, 1.1)
    result = run(rows, position=-1, entry_type="stop", entry_price=1.0985, sl=1.1015)
    assert summary(result) == [(2, 2, 1.0985, 1.1015, 0.1, "sl", 1)]


def test_a_time_exit_closes_at_the_open_after_max_bars():
    rows = flat_bars(8)
    rows[4] = (1.101, 1.102, 1.1, 1.101)
    result = run(rows, position=1, max_bars=3)
    assert summary(result) == [(1, 4, 1.1, 1.101, 0.1, "time", 1)]


# ---------------------------------------------------------------- the plain path unchanged


@pytest.mark.parametrize(
    "config",
    [
        BacktestConfig(spread_points=None),
        BacktestConfig(spread_points=None, commission_per_lot=3.5, spread_mode="bid"),
    ],
)
def test_managed_path_without_management_equals_the_plain_engine(config):
    bars = make_random_bars(6000, seed=3)
    fast, slow = sma(bars["close"], 10), sma(bars["close"], 40)
    position = np.where(fast > slow, 1, -1)
    position[:40] = 0
    frame = pd.DataFrame({"position": position, "sl_distance": 0.004, "tp_distance": 0.006})
    plain = run_backtest(
        bars, Fixed(), spec=EURUSD, config=config, signals=normalize_signals(frame, len(bars))
    )
    acting = normalize_signals(frame, len(bars)).actions()
    frame.loc[~acting, ["sl_distance", "tp_distance"]] = np.nan  # nothing moves
    managed = run_backtest(
        bars, Moving(), spec=EURUSD, config=config, signals=normalize_signals(frame, len(bars))
    )
    assert len(plain.trades) > 100
    assert set(plain.trades["exit_reason"]) >= {"sl", "tp", "signal"}
    pd.testing.assert_frame_equal(plain.trades, managed.trades)
    np.testing.assert_allclose(plain.equity.to_numpy(), managed.equity.to_numpy(), atol=1e-6)


def test_a_partial_exit_of_a_short_buys_at_the_ask_and_a_scale_in_sells_at_the_bid():
    bars = make_bars(flat_bars(6), spread=10)  # bid prices, the ask 10 points above
    frame = pd.DataFrame({"position": -1, "size": [0.5, 0.5, 1.0, 1.0, 0.5, NAN]})
    config = BacktestConfig(spread_mode="bid")
    result = run_backtest(
        bars, Moving(), spec=EURUSD, config=config, signals=normalize_signals(frame, 6)
    )
    partial = result.trades.iloc[0]
    assert partial.exit_reason == "partial" and partial.exit_price == pytest.approx(1.1001)
    assert partial.entry_price == pytest.approx(1.1)  # shorts enter at the bid, scale-in too
