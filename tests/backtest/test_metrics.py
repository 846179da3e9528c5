"""Statistics computed from hand-made equity curves and trade lists."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest.metrics import compute_stats, drawdown_series, drawdown_stats, trade_stats


def daily_times(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")


def test_drawdown_depth_and_duration():
    equity = np.array([100, 110, 99, 105, 110, 120, 90, 95.0])
    seconds = daily_times(len(equity)).as_unit("s").asi8
    stats = drawdown_stats(equity, seconds)
    assert stats["max_drawdown_pct"] == pytest.approx(100 * (90 / 120 - 1))  # -25 %
    # under water from the peak on day 5 to the end (day 7): 2 days; 110 -> 110 took 3 days
    assert stats["max_drawdown_days"] == pytest.approx(3.0)
    np.testing.assert_allclose(drawdown_series(equity)[:3], [0, 0, 100 * (99 / 110 - 1)])


def test_trade_stats_by_hand():
    pnl = np.array([100.0, -50.0, 30.0, -20.0, 0.0])
    stats = trade_stats(pnl)
    assert stats["n_trades"] == 5
    assert stats["win_rate_pct"] == pytest.approx(40.0)
    assert stats["profit_factor"] == pytest.approx(130 / 70)
    assert stats["avg_win"] == pytest.approx(65.0)
    assert stats["avg_loss"] == pytest.approx(-35.0)
    assert stats["expectancy"] == pytest.approx(0.4 * 65 + 0.6 * -35)
    assert stats["avg_trade"] == pytest.approx(12.0)
    assert (stats["best_trade"], stats["worst_trade"]) == (100.0, -50.0)


def test_profit_factor_is_none_without_losses_and_stats_are_none_without_trades():
    assert trade_stats(np.array([5.0, 7.0]))["profit_factor"] is None
    empty = trade_stats(np.array([]))
    assert empty["n_trades"] == 0 and empty["win_rate_pct"] is None and empty["avg_trade"] is None


def test_returns_cagr_sharpe_sortino():
    rng = np.random.default_rng(3)
    returns = rng.normal(0.001, 0.01, 365)
    equity = 10_000 * np.cumprod(1 + np.concatenate(([0.0], returns)))
    times = daily_times(len(equity))
    stats = compute_stats(equity=equity, times=times, trade_pnl=np.array([1.0]), cash=10_000)
    assert stats["total_return_pct"] == pytest.approx(100 * (equity[-1] / 10_000 - 1))
    years = 365 / 365.25
    assert stats["cagr_pct"] == pytest.approx(100 * ((equity[-1] / 10_000) ** (1 / years) - 1))
    daily = np.diff(equity) / equity[:-1]
    per_year = len(daily) / 365 * 365.25  # returns per year observed
    expected_sharpe = daily.mean() / daily.std(ddof=1) * math.sqrt(per_year)
    assert stats["sharpe"] == pytest.approx(expected_sharpe)
    downside = math.sqrt(np.mean(np.minimum(daily, 0) ** 2))
    assert stats["sortino"] == pytest.approx(daily.mean() / downside * math.sqrt(per_year))


def test_intraday_bars_are_sampled_once_per_day_for_ratios():
    hourly = pd.date_range("2024-01-01", periods=24 * 30, freq="h", tz="UTC")
    equity = np.linspace(10_000, 11_000, len(hourly))
    equity[::7] -= 5  # wiggle so daily returns are not constant
    stats = compute_stats(equity=equity, times=hourly, trade_pnl=np.array([]), cash=10_000)
    last_of_day = equity[23::24]
    daily = np.diff(last_of_day) / last_of_day[:-1]
    scale = math.sqrt(len(daily) / ((hourly[-1] - hourly[0]).total_seconds() / 86_400) * 365.25)
    assert stats["sharpe"] == pytest.approx(daily.mean() / daily.std(ddof=1) * scale)


def test_flat_equity_has_no_sharpe_and_no_drawdown():
    times = daily_times(10)
    stats = compute_stats(equity=np.full(10, 500.0), times=times, trade_pnl=np.array([]), cash=500)
    assert stats["sharpe"] is None and stats["sortino"] is None
    assert stats["max_drawdown_pct"] == 0.0 and stats["max_drawdown_days"] == 0.0
    assert stats["total_return_pct"] == 0.0


def test_average_drawdown_sqn_kelly_and_calmar_by_hand():
    """Two drawdowns of 10% and 5% average 7.5%; trades +10, -5, +20, -5: SQN is
    2 x 5 / sqrt(150), Kelly 50% less 50% over a 3:1 win/loss; Calmar is CAGR over the
    deepest drawdown."""
    seconds = np.arange(6) * 86_400
    equity = np.array([100.0, 110.0, 99.0, 120.0, 114.0, 126.0])
    assert drawdown_stats(equity, seconds)["avg_drawdown_pct"] == pytest.approx(-7.5)
    assert drawdown_stats(np.array([1.0, 2.0, 3.0]), seconds[:3])["avg_drawdown_pct"] == 0.0
    pnl = np.array([10.0, -5.0, 20.0, -5.0])
    stats = trade_stats(pnl)
    assert stats["sqn"] == pytest.approx(2 * 5 / math.sqrt(150))
    assert stats["kelly_pct"] == pytest.approx(100 * (0.5 - 0.5 / 3))
    assert trade_stats(np.array([1.0, 2.0]))["kelly_pct"] is None  # no loss: undefined
    times = pd.to_datetime(seconds, unit="s", utc=True)
    full = compute_stats(equity=equity, times=times, trade_pnl=pnl, cash=100.0)
    assert full["calmar"] == pytest.approx(full["cagr_pct"] / 10.0)
