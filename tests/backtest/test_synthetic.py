"""The seeded synthetic bar generator: deterministic, FX hours, consistent OHLC, sane spreads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.data import infer_timeframe, validate_bars
from backtest.synthetic import generate_bars, is_fx_open


def test_same_seed_same_bars_other_seed_other_bars():
    a = generate_bars("EURUSD", "H1", 2000, seed=5)
    pd.testing.assert_frame_equal(a, generate_bars("EURUSD", "H1", 2000, seed=5))
    assert not a["close"].equals(generate_bars("EURUSD", "H1", 2000, seed=6)["close"])
    assert not a["close"].equals(generate_bars("GBPUSD", "H1", 2000, seed=5)["close"])


@pytest.mark.parametrize("timeframe", ["M1", "M15", "H1", "H4", "D1"])
def test_bars_are_valid_and_on_the_grid(timeframe):
    bars = generate_bars("EURUSD", timeframe, 3000, seed=1)
    validate_bars(bars, f"synthetic {timeframe}")
    assert infer_timeframe(bars) == timeframe
    assert len(bars) == 3000


def test_no_bars_in_the_weekend_gap():
    bars = generate_bars("EURUSD", "H1", 24 * 30, seed=3)
    seconds = pd.DatetimeIndex(bars["time"]).as_unit("s").asi8
    assert is_fx_open(seconds).all()
    days = bars["time"].dt.day_name()
    assert "Saturday" not in set(days)
    sunday_hours = set(bars.loc[days == "Sunday", "time"].dt.hour)
    assert sunday_hours == {22, 23}
    friday_hours = set(bars.loc[days == "Friday", "time"].dt.hour)
    assert max(friday_hours) == 21
    daily = generate_bars("EURUSD", "D1", 30, seed=3)
    assert set(daily["time"].dt.day_name()) == {
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
    }


@pytest.mark.parametrize(
    ("symbol", "digits", "low", "high", "spread_range"),
    [
        ("EURUSD", 5, 0.8, 1.5, (4, 20)),
        ("USDJPY", 3, 100, 200, (4, 20)),
        ("XAUUSD", 2, 1500, 2600, (15, 45)),
    ],
)
def test_prices_digits_and_spreads_per_symbol(symbol, digits, low, high, spread_range):
    bars = generate_bars(symbol, "H1", 2000, seed=2)
    prices = bars[["open", "high", "low", "close"]].to_numpy()
    assert np.allclose(prices, np.round(prices, digits), rtol=0, atol=1e-12)
    assert low < bars["close"].median() < high
    median_spread = bars["spread"].median()
    assert spread_range[0] <= median_spread <= spread_range[1]


def test_spreads_widen_at_rollover_and_volume_follows_activity():
    bars = generate_bars("EURUSD", "H1", 24 * 200, seed=8)
    hour = bars["time"].dt.hour
    assert (
        bars.loc[hour.isin([21, 22]), "spread"].mean()
        > 1.8 * bars.loc[hour.between(8, 16), "spread"].mean()
    )
    assert (
        bars.loc[hour.between(12, 15), "tick_volume"].mean()
        > 1.5 * bars.loc[hour.between(0, 3), "tick_volume"].mean()
    )


def test_hourly_volatility_is_fx_like():
    bars = generate_bars("EURUSD", "H1", 20_000, seed=9)
    returns = np.diff(np.log(bars["close"].to_numpy()))
    assert 0.0005 < returns.std() < 0.002  # EURUSD moves roughly 5-20 pips an hour


def test_bad_size_is_refused():
    with pytest.raises(ValueError, match="n_bars"):
        generate_bars("EURUSD", "H1", 0)
