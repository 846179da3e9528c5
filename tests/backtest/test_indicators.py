"""Tests for backtest.indicators: hand-computed values, warm-up, crossover and hold rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtest import indicators as ind
from backtest.indicators import IndicatorError

nan = np.nan


def _random_walk(n: int, seed: int = 0) -> np.ndarray:
    return 100.0 + np.cumsum(np.random.default_rng(seed).normal(size=n))


def _ohlc(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    close = _random_walk(n, seed)
    wicks = np.abs(np.random.default_rng(seed + 1).normal(size=(2, n)))
    return close + wicks[0], close - wicks[1], close


# ---------------------------------------------------------------- hand-computed values


def test_sma_hand_computed():
    # (1+2+3)/3 = 2, (2+3+4)/3 = 3, (3+4+5)/3 = 4
    np.testing.assert_array_equal(ind.sma([1, 2, 3, 4, 5], 3), [nan, nan, 2.0, 3.0, 4.0])


def test_ema_is_seeded_with_sma_then_smoothed():
    # n=3, alpha = 2/(3+1) = 0.5
    # t=2 seed: (2+4+6)/3 = 4
    # t=3: 0.5*8  + 0.5*4 = 6
    # t=4: 0.5*4  + 0.5*6 = 5
    # t=5: 0.5*10 + 0.5*5 = 7.5
    np.testing.assert_allclose(
        ind.ema([2, 4, 6, 8, 4, 10], 3), [nan, nan, 4.0, 6.0, 5.0, 7.5], rtol=1e-15
    )


def test_rsi_hand_computed_on_twenty_closes():
    closes = [10, 11, 10, 12, 13, 12, 12, 14, 13, 11, 12, 15, 15, 14, 16, 17, 16, 15, 15, 18]
    # n = 4. G = average gain, L = average loss; seed at t=4 with the plain mean of changes
    # 1..4, then Wilder: G[t] = (3*G[t-1] + gain[t]) / 4, L likewise. RSI = 100*G/(G+L).
    #  t close chg gain loss  G                         L                          RSI
    #  4  13   +1   1   0    (1+0+2+1)/4 = 1           (0+1+0+0)/4 = 0.25          100*1/1.25 = 80
    #  5  12   -1   0   1    (3*1+0)/4 = 0.75          (3*0.25+1)/4 = 0.4375       63.157894737
    #  6  12    0   0   0    (3*0.75+0)/4 = 0.5625     (3*0.4375+0)/4 = 0.328125   63.157894737
    #  7  14   +2   2   0    (3*0.5625+2)/4 = 0.921875 (3*0.328125)/4 = 0.24609375 78.929765886
    #  8  13   -1   0   1    0.69140625                0.4345703125                61.405030356
    #  9  11   -2   0   2    0.5185546875              0.825927734375              38.569093881
    # 10  12   +1   1   0    0.638916015625            0.61944580078125            50.773633409
    # 11  15   +3   3   0    1.22918701171875          0.4645843505859375          72.571011594
    # 12  15    0   0   0    0.92189025878906          0.34843826293945            72.571011594
    # 13  14   -1   0   1    0.69141769409180          0.51132869720459            57.486573986
    # 14  16   +2   2   0    1.01856327056885          0.38349652290344            72.647634239
    # 15  17   +1   1   0    1.01392245292664          0.28762239217758            77.901461232
    # 16  16   -1   0   1    0.76044183969498          0.46571679413319            62.018226575
    # 17  15   -1   0   1    0.57033137977123          0.59928759559989            48.762151759
    # 18  15    0   0   0    0.42774853482842          0.44946569669992            48.762151759
    # 19  18   +3   3   0    1.07081140112132          0.33709927252494            76.056771297
    expected = [nan] * 4 + [
        80.0,
        63.157894737,
        63.157894737,
        78.929765886,
        61.405030356,
        38.569093881,
        50.773633409,
        72.571011594,
        72.571011594,
        57.486573986,
        72.647634239,
        77.901461232,
        62.018226575,
        48.762151759,
        48.762151759,
        76.056771297,
    ]
    np.testing.assert_allclose(ind.rsi(closes, 4), expected, rtol=1e-10)


@pytest.mark.parametrize(
    ("closes", "expected"),
    [
        # only gains: average loss 0 -> RSI 100
        ([1, 2, 3, 4, 5], [nan, nan, nan, 100.0, 100.0]),
        # only losses: average gain 0 -> RSI 0
        ([5, 4, 3, 2, 1], [nan, nan, nan, 0.0, 0.0]),
        # no movement: both averages 0 -> RSI 50 (neutral)
        ([2, 2, 2, 2, 2], [nan, nan, nan, 50.0, 50.0]),
    ],
)
def test_rsi_degenerate_averages(closes, expected):
    np.testing.assert_array_equal(ind.rsi(closes, 3), expected)


def test_true_range_and_atr_hand_computed():
    high = [10, 11, 12, 11, 13, 12]
    low = [9, 10, 10, 9, 11, 10]
    close = [9.5, 10.5, 11.5, 10, 12.5, 11]
    # TR[t] = max(high-low, |high-prev close|, |low-prev close|)
    # t=1: max(1, |11-9.5|=1.5, |10-9.5|=0.5)  = 1.5
    # t=2: max(2, |12-10.5|=1.5, |10-10.5|=0.5) = 2
    # t=3: max(2, |11-11.5|=0.5, |9-11.5|=2.5)  = 2.5
    # t=4: max(2, |13-10|=3, |11-10|=1)         = 3
    # t=5: max(2, |12-12.5|=0.5, |10-12.5|=2.5) = 2.5
    np.testing.assert_array_equal(ind.true_range(high, low, close), [nan, 1.5, 2, 2.5, 3, 2.5])
    # ATR n=3: seed at t=3 = (1.5+2+2.5)/3 = 2; t=4: (2*2+3)/3 = 7/3; t=5: (2*7/3+2.5)/3 = 43/18
    np.testing.assert_allclose(
        ind.atr(high, low, close, 3), [nan, nan, nan, 2.0, 7 / 3, 43 / 18], rtol=1e-14
    )


def test_bollinger_uses_population_std():
    middle, upper, lower = ind.bollinger([1, 2, 3, 4, 5], n=3, k=2.0)
    # population std of any 3 consecutive integers: sqrt(((-1)^2 + 0^2 + 1^2)/3) = sqrt(2/3)
    width = 2.0 * math.sqrt(2 / 3)
    np.testing.assert_allclose(middle, [nan, nan, 2, 3, 4])
    np.testing.assert_allclose(upper, [nan, nan, 2 + width, 3 + width, 4 + width])
    np.testing.assert_allclose(lower, [nan, nan, 2 - width, 3 - width, 4 - width])


def test_donchian_includes_current_bar():
    high = [3, 5, 4, 2, 6]
    low = [1, 2, 0, 1, 3]
    upper, lower, middle = ind.donchian(high, low, 3)
    # t=2: max(3,5,4)=5, min(1,2,0)=0; t=3: max(5,4,2)=5, min(2,0,1)=0; t=4: max(4,2,6)=6, 0
    np.testing.assert_array_equal(upper, [nan, nan, 5, 5, 6])
    np.testing.assert_array_equal(lower, [nan, nan, 0, 0, 0])
    np.testing.assert_array_equal(middle, [nan, nan, 2.5, 2.5, 3])


@pytest.mark.parametrize(
    ("k", "expected"),
    [(0, [1, 2, 3]), (1, [nan, 1, 2]), (2, [nan, nan, 1]), (3, [nan, nan, nan]), (5, [nan] * 3)],
)
def test_shift_pads_with_nan(k, expected):
    np.testing.assert_array_equal(ind.shift(np.array([1, 2, 3]), k), expected)


@pytest.mark.parametrize("k", [-1, 1.5, True])
def test_shift_refuses_future_and_non_integer(k):
    with pytest.raises(IndicatorError, match="shift: k must be an integer >= 0"):
        ind.shift([1.0, 2.0], k)


# ---------------------------------------------------------------- warm-up and input handling


def _first_values(n: int) -> dict:
    """Indicator name -> (function of (high, low, close), index of the first non-NaN value)."""
    return {
        "sma": (lambda h, lo, c: ind.sma(c, n), n - 1),
        "ema": (lambda h, lo, c: ind.ema(c, n), n - 1),
        "rsi": (lambda h, lo, c: ind.rsi(c, n), n),
        "true_range": (lambda h, lo, c: ind.true_range(h, lo, c), 1),
        "atr": (lambda h, lo, c: ind.atr(h, lo, c, n), n),
        "bollinger_upper": (lambda h, lo, c: ind.bollinger(c, n)[1], n - 1),
        "donchian_lower": (lambda h, lo, c: ind.donchian(h, lo, n)[1], n - 1),
        "shift": (lambda h, lo, c: ind.shift(c, n), n),
    }


@pytest.mark.parametrize("n", [1, 2, 7, 20])
@pytest.mark.parametrize("name", list(_first_values(1)))
def test_nan_warmup_length(name, n):
    func, first = _first_values(n)[name]
    out = func(*_ohlc(60))
    assert out.dtype == np.float64 and len(out) == 60
    assert np.isnan(out[:first]).all(), f"{name}(n={n}) has values before index {first}"
    assert np.isfinite(out[first:]).all(), f"{name}(n={n}) has NaN from index {first} on"


@pytest.mark.parametrize("length", [0, 1, 5])
@pytest.mark.parametrize("name", list(_first_values(1)))
def test_inputs_shorter_than_warmup_give_all_nan(name, length):
    func, first = _first_values(10)[name]
    out = func(*(a[:length] for a in _ohlc(20)))
    assert len(out) == length
    assert np.isnan(out).all() == (length <= first)  # true_range's warm-up is 1 bar


def test_sma_is_bit_identical_to_pandas_rolling():
    values = np.random.default_rng(7).normal(1.1, 0.01, 10_000)
    for n in (1, 2, 10, 30, 200):
        expected = pd.Series(values).rolling(n).mean().to_numpy()
        np.testing.assert_array_equal(ind.sma(values, n), expected)
        np.testing.assert_array_equal(ind.sma(pd.Series(values, index=values), n), expected)


def test_ema_skips_leading_nan_of_a_chained_input():
    values = np.array([nan, nan, 2, 4, 6, 8])
    # seed at the third valid value: (2+4+6)/3 = 4; then 0.5*8 + 0.5*4 = 6
    np.testing.assert_array_equal(ind.ema(values, 3), [nan, nan, nan, nan, 4.0, 6.0])


@pytest.mark.parametrize("n", [0, -3, 2.0, True, None])
def test_bad_period_is_refused_naming_the_value(n):
    with pytest.raises(IndicatorError, match=rf"sma: period n must be .* got {n!r}"):
        ind.sma([1.0, 2.0, 3.0], n)


def test_mismatched_lengths_are_refused():
    with pytest.raises(IndicatorError, match="same length"):
        ind.atr([1.0, 2.0], [0.5, 1.5], [1.0], 1)


@pytest.mark.parametrize("n", [2, 14, 30])
@pytest.mark.parametrize("name", ["rsi", "atr"])
def test_wilder_warmup_window_matches_full_history(name, n):
    high, low, close = _ohlc(3000, seed=n)
    window = ind.wilder_warmup(n)
    assert window == 11 * n + 1

    def compute(rows: slice) -> np.ndarray:
        if name == "rsi":
            return ind.rsi(close[rows], n)
        return ind.atr(high[rows], low[rows], close[rows], n)

    full = compute(slice(None))
    for t in range(window, 3000, 97):
        recent = compute(slice(t + 1 - window, t + 1))[-1]
        # relative error bounded by the seed's remaining weight e**-10 ≈ 4.5e-5 (with margin)
        assert recent == pytest.approx(full[t], rel=2e-4), f"{name} at t={t}"


# ---------------------------------------------------------------- crossover


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1, 3], [2, 2], [False, True]),  # below, then above: a cross
        ([3, 1], [2, 2], [False, False]),  # above, then below: not a cross *over*
        ([2, 3], [2, 2], [False, False]),  # equal, then above: no cross (strict on t-1)
        ([1, 2], [2, 2], [False, False]),  # below, then equal: no cross (strict on t)
        ([1, 2, 3], 2, [False, False, False]),  # touching, then moving through: never a cross
        ([1, 3, 1, 3], 2, [False, True, False, True]),  # every upward pass counts
        ([nan, 3], [2, 2], [False, False]),  # NaN never crosses
        ([1, 3], [nan, 2], [False, False]),
        (2.0, [3, 1], [False, True]),  # scalar on the left: 2 < 3, then 2 > 1
        ([], 2, []),
    ],
)
def test_crossover_semantics(a, b, expected):
    result = ind.crossover(a, b)
    assert result.dtype == np.bool_
    np.testing.assert_array_equal(result, expected)


def test_crossunder_is_crossover_with_arguments_swapped():
    a = _random_walk(500, seed=3)
    b = ind.sma(a, 5)
    np.testing.assert_array_equal(ind.crossunder(a, b), ind.crossover(b, a))
    np.testing.assert_array_equal(ind.crossunder([3, 1], 2), [False, True])


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [(1.0, 2.0, "at least one argument must be an array"), ([1, 2], [1, 2, 3], "same length")],
)
def test_crossover_rejects_bad_arguments(a, b, message):
    with pytest.raises(IndicatorError, match=message):
        ind.crossover(a, b)


# ---------------------------------------------------------------- hold_signals


def _events(n: int, *bars: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(bars)] = True
    return out


@pytest.mark.parametrize(
    ("long_entry", "short_entry", "exit_long", "exit_short", "expected"),
    [
        # entries set the side and it is held until the next event
        ((1,), (3,), (), (), [0, 1, 1, -1, -1]),
        # an exit for the current side goes flat until the next entry
        ((0, 3), (), (2,), (), [1, 1, 0, 1]),
        ((), (0,), (), (1,), [-1, 0, 0]),
        # an exit for the other side (or before any entry) is ignored
        ((1,), (), (), (0, 2), [0, 1, 1]),
        # both entries on one bar contradict each other: flat
        ((0, 2), (2,), (), (), [1, 1, 0, 0]),
        # an entry beats an exit on the same bar: reverse on exit-long + short entry ...
        ((0,), (2,), (2,), (), [1, 1, -1, -1]),
        # ... and stay long on exit-long + long entry
        ((0, 2), (), (2,), (), [1, 1, 1, 1]),
        # a repeated entry for the held side changes nothing
        ((0, 1, 2), (), (), (), [1, 1, 1]),
    ],
)
def test_hold_signals_precedence(long_entry, short_entry, exit_long, exit_short, expected):
    n = len(expected)
    result = ind.hold_signals(
        _events(n, *long_entry),
        _events(n, *short_entry),
        _events(n, *exit_long),
        _events(n, *exit_short),
    )
    assert result.dtype == np.int8
    np.testing.assert_array_equal(result, expected)


def _hold_loop(long_entry, short_entry, exit_long, exit_short) -> list[int]:
    """The documented precedence, written as the obvious loop."""
    position, out = 0, []
    for go_long, go_short, out_long, out_short in zip(
        long_entry, short_entry, exit_long, exit_short, strict=True
    ):
        if go_long and go_short:
            position = 0
        elif go_long or go_short:
            position = 1 if go_long else -1
        elif (position == 1 and out_long) or (position == -1 and out_short):
            position = 0
        out.append(position)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_hold_signals_matches_a_bar_by_bar_loop(seed):
    events = np.random.default_rng(seed).random((4, 2000)) < [[0.03], [0.03], [0.1], [0.1]]
    np.testing.assert_array_equal(ind.hold_signals(*events), _hold_loop(*events))


def test_hold_signals_accepts_boolean_series_and_missing_exits():
    long_entry = pd.Series([False, True, False], index=[10, 11, 12])
    short_entry = pd.Series([False, False, False])
    np.testing.assert_array_equal(ind.hold_signals(long_entry, short_entry), [0, 1, 1])


@pytest.mark.parametrize(
    ("long_entry", "short_entry", "message"),
    [
        ([0.0, 1.0, nan], [False] * 3, "long_entry must be a 1-D boolean array, got float64"),
        ([True, False, True], [False] * 2, "short_entry has 2 values, long_entry has 3"),
    ],
)
def test_hold_signals_rejects_non_boolean_or_misaligned_events(long_entry, short_entry, message):
    with pytest.raises(IndicatorError, match=message):
        ind.hold_signals(np.array(long_entry), np.array(short_entry))
