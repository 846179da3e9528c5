"""Tests for the shipped strategies: valid signals, no look-ahead, parameters, loading from file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.indicators import sma
from backtest.strategies.donchian_breakout import DonchianBreakout
from backtest.strategies.rsi_reversion import RsiReversion
from backtest.strategies.sma_cross import SmaCross
from backtest.strategy import (
    SIGNAL_COLUMNS,
    Strategy,
    StrategyError,
    compute_signals,
    get_strategy_from_file,
    parse_param_overrides,
)

STRATEGY_DIR = Path(__file__).resolve().parents[2] / "backtest" / "strategies"

# Default parameters plus short periods, so that signals start early and trade often.
STRATEGIES = [
    SmaCross(),
    SmaCross(fast=3, slow=7),
    RsiReversion(),
    RsiReversion(period=5, atr_period=3, oversold=35.0, overbought=65.0, tp_atr=0.0),
    DonchianBreakout(),
    DonchianBreakout(channel=5, exit_channel=3, atr_period=4, atr_stop=0.0),
]

# Bars at which the no-look-ahead test cuts the data: warm-up edges of the strategies above
# (7, 14, 20, 30, 155 bars ...), then regularly to the end.
CHECKPOINTS = sorted(
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 19, 20, 21, 29, 30, 31, 32, 154, 155, 156}
    | set(range(40, 600, 23))
    | {599}
)


def _ids(strategies: list[Strategy]) -> list[str]:
    return [s.label() for s in strategies]


def _first_possible_signal(strategy: Strategy) -> int:
    """Earliest bar on which the strategy can hold a position (its indicators need history)."""
    if isinstance(strategy, SmaCross):
        return strategy.slow  # the slow SMA starts at slow-1; a cross needs the bar after
    if isinstance(strategy, RsiReversion):
        return max(strategy.period + 1, strategy.atr_period)  # RSI on t-1 and t; ATR at t
    assert isinstance(strategy, DonchianBreakout)
    return max(strategy.channel, strategy.atr_period)  # previous channel bars; ATR at t


# ---------------------------------------------------------------- valid signals


@pytest.mark.parametrize("strategy", STRATEGIES, ids=_ids(STRATEGIES))
def test_signals_are_valid_and_trade_both_sides(strategy, random_bars):
    bars = random_bars(3000, seed=11)
    signals = compute_signals(strategy, bars)
    position = signals.position
    assert len(signals) == len(bars)
    assert set(np.unique(position)) == {-1, 0, 1}
    assert (position[: _first_possible_signal(strategy)] == 0).all()
    assert signals.actions().sum() >= 10, "too few trades for the test to mean anything"


@pytest.mark.parametrize("strategy", STRATEGIES[2:], ids=_ids(STRATEGIES[2:]))
def test_stop_and_target_distances_are_atr_multiples_on_every_entry(strategy, random_bars):
    bars = random_bars(3000, seed=12)
    signals = compute_signals(strategy, bars)
    entries = signals.actions() & (signals.position != 0)
    sl_multiple = getattr(strategy, "sl_atr", getattr(strategy, "atr_stop", 0.0))
    tp_multiple = getattr(strategy, "tp_atr", 0.0)
    pairs = [(sl_multiple, signals.sl_distance), (tp_multiple, signals.tp_distance)]
    for multiple, distance in pairs:
        if multiple == 0:
            assert np.isnan(distance).all()
        else:
            assert (distance[entries] > 0).all()
    if sl_multiple and tp_multiple:
        np.testing.assert_allclose(
            signals.tp_distance[entries], signals.sl_distance[entries] * tp_multiple / sl_multiple
        )
    assert np.isnan(signals.sl).all() and np.isnan(signals.tp).all()


# ---------------------------------------------------------------- no look-ahead


@pytest.mark.parametrize("strategy", STRATEGIES, ids=_ids(STRATEGIES))
def test_no_look_ahead_prefix_signals_equal_full_signals(strategy, random_bars):
    bars = random_bars(600, seed=5)
    full = compute_signals(strategy, bars)
    assert full.actions().sum() > 0
    for t in CHECKPOINTS:
        prefix = compute_signals(strategy, bars.iloc[: t + 1])
        for column in SIGNAL_COLUMNS:
            np.testing.assert_array_equal(
                getattr(prefix, column),
                getattr(full, column)[: t + 1],
                err_msg=f"{strategy.label()} {column} differs when the data ends at bar {t}",
            )


# ---------------------------------------------------------------- strategy-specific rules


def _canonical_sma_cross(close: np.ndarray, fast: int, slow: int) -> list[int]:
    """backtesting.py's SmaCross.next, bar by bar: close and buy/sell on each cross."""
    fast_sma, slow_sma = sma(close, fast), sma(close, slow)
    position, out = 0, [0]
    for t in range(1, len(close)):
        if fast_sma[t - 1] < slow_sma[t - 1] and fast_sma[t] > slow_sma[t]:
            position = 1
        elif slow_sma[t - 1] < fast_sma[t - 1] and slow_sma[t] > fast_sma[t]:
            position = -1
        out.append(position)
    return out


@pytest.mark.parametrize(("fast", "slow", "seed"), [(10, 30, 1), (3, 7, 2), (1, 2, 3)])
def test_sma_cross_matches_the_canonical_loop(fast, slow, seed, random_bars):
    # digits=3 makes equal averages (ties, which are not crosses) happen
    close = random_bars(5000, seed=seed, digits=3)["close"].to_numpy()
    bars = pd.DataFrame({"close": close})
    expected = _canonical_sma_cross(close, fast, slow)
    np.testing.assert_array_equal(
        SmaCross(fast=fast, slow=slow).signals(bars)["position"], expected
    )


def test_sma_cross_through_a_tie_is_not_a_cross():
    # fast=1 (the close), slow=2 (mean of two closes)
    close = [3, 2, 1, 2, 2, 1, 1, 2, 3, 2]
    # slow:      nan 2.5 1.5 1.5 2   1.5 1   1.5 2.5 2.5
    # fast-slow: nan -.5 -.5 +.5 0   -.5 0   +.5 +.5 -.5
    # t=3 crosses over -> long; t=5 passes below only via the tie at t=4 -> no cross, still long;
    # t=9 crosses under -> short
    position = SmaCross(fast=1, slow=2).signals(pd.DataFrame({"close": close}))["position"]
    np.testing.assert_array_equal(position, [0, 0, 0, 1, 1, 1, 1, 1, 1, -1])


def test_rsi_reversion_enters_on_the_turn_and_exits_at_the_midline():
    close = [49.0, 46, 45, 47, 48, 46, 48, 46, 44, 46, 45, 47, 50, 52, 54, 51, 51, 53]
    # RSI(3), rounded (exact values are checked in test_indicators):
    #   t:   3     4     5     6     7     8     9     10    11    12    13    14    15    16    17
    #   33.33 46.67 29.17 54.67 35.50 23.26 49.42 39.36 62.35 79.68 86.09 90.55 52.58 52.58 70.89
    # t=6  29.17 -> 54.67 crosses 30 but is already past 50: entry skipped, stays flat
    # t=9  23.26 -> 49.42 crosses 30 below 50: long; t=10 39.36 < 50: hold
    # t=11 62.35 >= 50: exit long
    # t=15 90.55 -> 52.58 crosses 70 above 50: short; t=16, t=17 > 50: hold
    bars = pd.DataFrame({"close": close, "high": close, "low": close})
    strategy = RsiReversion(period=3, atr_period=1, sl_atr=2.0, tp_atr=3.0)
    frame = strategy.signals(bars)
    expected = [0] * 9 + [1, 1, 0, 0, 0, 0, -1, -1, -1]
    np.testing.assert_array_equal(frame["position"], expected)
    # ATR(1) on flat bars is |close change|: at t=9 that is 2, so SL 4 and TP 6 from the fill
    assert (frame["sl_distance"][9], frame["tp_distance"][9]) == (4.0, 6.0)


def test_donchian_breakout_uses_previous_bars_channel():
    close = [5.0, 5, 5, 6, 7, 6.5, 6.2, 6.4, 5.8, 5, 4, 4.5, 5.5]
    # channel 3, exit channel 2; flat bars (high == low == close) keep the arithmetic plain
    # t=3  6   > max(5, 5, 5) = 5         long
    # t=4  7   > max(5, 5, 6) = 6         long again: no change
    # t=5  6.5 >= min(6, 7) = 6           hold
    # t=6  6.2 < min(7, 6.5) = 6.5        exit long (not < min(6, 7, 6.5) = 6: no short)
    # t=8  5.8 < min(6.5, 6.2, 6.4) = 6.2 short
    # t=11 4.5 <= max(5, 4) = 5           hold short
    # t=12 5.5 > max(5, 4, 4.5) = 5       long (the entry beats the exit-short on the same bar)
    bars = pd.DataFrame({"close": close, "high": close, "low": close})
    strategy = DonchianBreakout(channel=3, exit_channel=2, atr_period=1, atr_stop=2.0)
    frame = strategy.signals(bars)
    np.testing.assert_array_equal(frame["position"], [0, 0, 0, 1, 1, 1, 0, 0, -1, -1, -1, -1, 1])
    # ATR(1) is the bar's true range, here |close - previous close|; the stop is 2x that
    np.testing.assert_allclose(frame["sl_distance"][1:], 2.0 * np.abs(np.diff(close)))


# ---------------------------------------------------------------- parameters and loading


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (SmaCross(), 31),
        (SmaCross(fast=5, slow=50), 51),
        (RsiReversion(), 155),  # 11*14 + 1
        (RsiReversion(period=3, atr_period=20), 221),
        (DonchianBreakout(), 155),  # ATR settling dominates the 21 channel bars
        (DonchianBreakout(channel=300, atr_period=5), 301),
    ],
    ids=lambda v: v.label() if isinstance(v, Strategy) else str(v),
)
def test_warmup(strategy, expected):
    assert strategy.warmup == expected


@pytest.mark.parametrize(
    ("cls", "params", "fragments"),
    [
        (SmaCross, {"fast": 30, "slow": 10}, ["fast=30", "slow=10"]),
        (SmaCross, {"fast": 20, "slow": 20}, ["fast=20", "slow=20"]),
        (SmaCross, {"fast": 0, "slow": 5}, ["fast=0", "slow=5"]),
        (RsiReversion, {"oversold": 60.0}, ["oversold=60.0", "exit_level=50.0"]),
        (RsiReversion, {"overbought": 101.0}, ["overbought=101.0"]),
        (RsiReversion, {"period": 0}, ["period=0"]),
        (RsiReversion, {"sl_atr": -1.0}, ["sl_atr", "-1.0"]),
        (RsiReversion, {"tp_atr": float("nan")}, ["tp_atr", "nan"]),
        (DonchianBreakout, {"exit_channel": 0}, ["exit_channel=0"]),
        (DonchianBreakout, {"atr_stop": -0.5}, ["atr_stop", "-0.5"]),
    ],
)
def test_invalid_parameters_are_refused_naming_the_values(cls, params, fragments):
    with pytest.raises(StrategyError) as caught:
        cls(**params)
    message = str(caught.value)
    assert message.startswith(cls.__name__)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("file", "cls"),
    [
        ("sma_cross.py", SmaCross),
        ("rsi_reversion.py", RsiReversion),
        ("donchian_breakout.py", DonchianBreakout),
    ],
)
def test_get_strategy_from_file_returns_the_shipped_class(file, cls):
    loaded = get_strategy_from_file(STRATEGY_DIR / file)
    assert loaded.__name__ == cls.__name__
    assert loaded.parameters() == cls.parameters()
    # a file loaded by path is a separate module, but computes the same signals
    bars = pd.DataFrame({"close": np.linspace(1.0, 2.0, 50) ** 2, "high": 5.0, "low": 0.5})
    np.testing.assert_array_equal(loaded().signals(bars), cls().signals(bars))


@pytest.mark.parametrize(
    ("cls", "pairs", "expected"),
    [
        (SmaCross, ["fast=5", "slow=20"], {"fast": 5, "slow": 20}),
        (SmaCross, [" slow = 40.0 "], {"slow": 40}),
        (
            RsiReversion,
            ["oversold=25", "period=7", "tp_atr=0"],
            {"oversold": 25.0, "period": 7, "tp_atr": 0.0},
        ),
        (DonchianBreakout, ["atr_stop=1.5", "channel=55"], {"atr_stop": 1.5, "channel": 55}),
        (SmaCross, [], {}),
    ],
)
def test_parse_param_overrides_converts_to_declared_types(cls, pairs, expected):
    parsed = parse_param_overrides(cls, pairs)
    assert parsed == expected
    for key, value in parsed.items():
        assert type(value) is cls.parameters()[key].type, key
    cls(**parsed)  # the parsed values are accepted by the constructor


@pytest.mark.parametrize(
    ("cls", "pairs", "message"),
    [
        (SmaCross, ["fast=abc"], "parameter 'fast' expects int, got 'abc'"),
        (SmaCross, ["fast=1.5"], "parameter 'fast' expects int, got '1.5'"),
        (SmaCross, ["fats=3"], "did you mean 'fast'"),
        (RsiReversion, ["oversold"], "must look like name=value"),
        (DonchianBreakout, ["atr_stop=two"], "parameter 'atr_stop' expects float, got 'two'"),
    ],
)
def test_parse_param_overrides_rejects_bad_entries(cls, pairs, message):
    with pytest.raises(StrategyError, match=message):
        parse_param_overrides(cls, pairs)
