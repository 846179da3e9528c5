"""Vectorised technical indicators and signal helpers shared by all strategies.

Every indicator takes numpy arrays or pandas Series and returns numpy float64 arrays of the
input's length, NaN during its warm-up. Value at index t uses inputs up to and including t
only, so a strategy built from these functions never looks ahead. Periods are in bars.

Recursive indicators (EMA, RSI, ATR) are seeded with a simple average of their first n inputs
and then smoothed with `pandas.ewm(adjust=False)`, which runs the recursion in compiled code.
Leading NaNs in an input (e.g. an indicator of an indicator) are skipped before seeding; the
data are expected to be finite after that.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
import pandas as pd

from backtest.errors import BacktestError

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | pd.Series

try:  # the kernel behind Series.rolling(n).mean(), without pandas' per-call set-up (~2x faster)
    from pandas._libs.window.aggregations import roll_mean as _roll_mean
except ImportError:  # pragma: no cover - a pandas without it falls back to the public API
    _roll_mean = None

# Steps of Wilder smoothing after the seed so that the seed's weight, (1 - 1/n)**(k*n), is
# below e**-k. See `wilder_warmup`.
_SETTLE_PERIODS = 10


class IndicatorError(BacktestError, ValueError):
    """An indicator was called with a bad period or mismatched inputs. The message says which."""


def sma(values: ArrayLike, n: int) -> np.ndarray:
    """Simple moving average of the last n values (current included).

    sma[t] = (x[t-n+1] + ... + x[t]) / n; NaN for t < n-1. Computed by pandas rolling, so it is
    bit-identical to `pd.Series(values).rolling(n).mean()` (backtesting.py's SMA).
    """
    _check_period(n, "sma")
    x = _as_float(values, "sma")
    if _roll_mean is not None:
        end = np.arange(1, len(x) + 1, dtype=np.int64)
        try:
            return np.asarray(_roll_mean(np.ascontiguousarray(x), np.maximum(end - n, 0), end, n))
        except (TypeError, ValueError):  # another pandas build: use the public route
            pass
    return pd.Series(x).rolling(n).mean().to_numpy()


def ema(values: ArrayLike, n: int) -> np.ndarray:
    """Exponential moving average with alpha = 2/(n+1), seeded with an SMA.

    ema[n-1] = mean(x[0..n-1]); ema[t] = alpha*x[t] + (1-alpha)*ema[t-1] for t >= n.
    NaN for t < n-1 (counted from the first non-NaN input).
    """
    _check_period(n, "ema")
    return _seeded_smoothing(_as_float(values, "ema"), n, 2.0 / (n + 1))


def rsi(close: ArrayLike, n: int = 14) -> np.ndarray:
    """Relative Strength Index (Wilder), 0..100.

    change[t] = close[t] - close[t-1]; gain = max(change, 0); loss = max(-change, 0).
    avg_gain[n] = mean(gain[1..n]), then avg_gain[t] = (avg_gain[t-1]*(n-1) + gain[t]) / n
    (Wilder smoothing, alpha = 1/n); avg_loss likewise.
    rsi = 100 - 100/(1 + avg_gain/avg_loss) = 100*avg_gain/(avg_gain + avg_loss):
    100 when avg_loss is 0, and 50 (neutral) when both averages are 0 (no movement at all).
    First value at index n; NaN before.
    """
    _check_period(n, "rsi")
    change = np.diff(_as_float(close, "rsi"), prepend=np.nan)
    avg_gain = _seeded_smoothing(np.clip(change, 0.0, None), n, 1.0 / n)
    avg_loss = _seeded_smoothing(np.clip(-change, 0.0, None), n, 1.0 / n)
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 100.0 * avg_gain / total
    out[total == 0.0] = 50.0
    return out


def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> np.ndarray:
    """True range in price units: max(high-low, |high-prev_close|, |low-prev_close|).

    NaN at index 0, which has no previous close.
    """
    h, lo, c = _same_length("true_range", high=high, low=low, close=close)
    prev_close = np.concatenate(([np.nan], c[:-1]))
    # np.maximum propagates NaN, so index 0 (no previous close) comes out NaN.
    return np.maximum(h - lo, np.maximum(np.abs(h - prev_close), np.abs(lo - prev_close)))


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> np.ndarray:
    """Average true range (Wilder) in price units.

    atr[n] = mean(tr[1..n]); atr[t] = (atr[t-1]*(n-1) + tr[t]) / n. First value at index n.
    """
    _check_period(n, "atr")
    return _seeded_smoothing(true_range(high, low, close), n, 1.0 / n)


def bollinger(
    values: ArrayLike, n: int = 20, k: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands: (middle, upper, lower).

    middle = sma(values, n); upper/lower = middle ± k * std, where std is the population
    standard deviation (ddof=0) of the same n values. NaN for t < n-1.
    """
    _check_period(n, "bollinger")
    series = pd.Series(_as_float(values, "bollinger"))
    middle = series.rolling(n).mean().to_numpy()
    width = k * series.rolling(n).std(ddof=0).to_numpy()
    return middle, middle + width, middle - width


def donchian(high: ArrayLike, low: ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Donchian channel over the last n bars INCLUDING bar t: (upper, lower, middle).

    upper = max(high[t-n+1..t]); lower = min(low[t-n+1..t]); middle = (upper+lower)/2.
    NaN for t < n-1. For a breakout against the previous n bars use `shift(upper)`.
    """
    _check_period(n, "donchian")
    h, lo = _same_length("donchian", high=high, low=low)
    upper = pd.Series(h).rolling(n).max().to_numpy()
    lower = pd.Series(lo).rolling(n).min().to_numpy()
    return upper, lower, (upper + lower) / 2.0


def shift(values: ArrayLike, k: int = 1) -> np.ndarray:
    """Values k bars ago: out[t] = x[t-k], NaN for t < k. Negative k (the future) is refused."""
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 0:
        raise IndicatorError(f"shift: k must be an integer >= 0 (bars back), got {k!r}")
    x = _as_float(values, "shift")
    out = np.full(len(x), np.nan)
    out[k:] = x[: len(x) - k]
    return out


def crossover(a: ArrayLike | float, b: ArrayLike | float) -> np.ndarray:
    """Boolean array: True at t when a[t-1] < b[t-1] and a[t] > b[t].

    Both comparisons are strict (backtesting.py's `crossover`): an exact tie on either bar is
    not a cross, so touching b and then moving through it is never reported; NaN never
    crosses; index 0 is False. Either argument may be a scalar level.
    """
    x, y = _pair(a, b, "crossover")
    out = np.zeros(len(x), dtype=bool)
    out[1:] = (x[:-1] < y[:-1]) & (x[1:] > y[1:])
    return out


def crossunder(a: ArrayLike | float, b: ArrayLike | float) -> np.ndarray:
    """Boolean array: True at t when a crosses below b, i.e. `crossover(b, a)`."""
    return crossover(b, a)


def hold_signals(
    long_entry: ArrayLike,
    short_entry: ArrayLike,
    exit_long: ArrayLike | None = None,
    exit_short: ArrayLike | None = None,
) -> np.ndarray:
    """Turn boolean event arrays into a held position per bar (int8: +1, 0, -1).

    The position starts flat. On each bar, in order of precedence:
      1. long_entry and short_entry together: flat (contradictory signals; stand aside);
      2. long_entry: +1; short_entry: -1 (an entry beats any exit on the same bar, so an
         exit-long together with a short entry reverses to short);
      3. exit_long while long, or exit_short while short: 0 (an exit for the other side
         is ignored);
      4. otherwise the previous bar's position is kept.
    Vectorised with two forward fills instead of a loop over bars.
    """
    n = len(long_entry)
    go_long = _as_bool(long_entry, "long_entry", n)
    go_short = _as_bool(short_entry, "short_entry", n)
    out_long = _as_bool(exit_long, "exit_long", n)
    out_short = _as_bool(exit_short, "exit_short", n)

    entry = go_long | go_short
    # +1 long, -1 short; both at once cancel to 0 (flat), as rule 1 says
    side = go_long.view(np.int8) - go_short.view(np.int8)
    if not (out_long.any() or out_short.any()):
        return _forward_fill(side, entry)
    # Side of the latest entry at or before t: an exit matters only if it matches that side.
    last_side = _forward_fill(side, entry)
    applied_exit = ~entry & (((last_side > 0) & out_long) | ((last_side < 0) & out_short))
    side[applied_exit] = 0
    return _forward_fill(side, entry | applied_exit)


def _forward_fill(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """int8 values where `present`, else the last present value before (0 before the first)."""
    index = np.arange(len(values), dtype=np.int64)
    index[~present] = -1
    np.maximum.accumulate(index, out=index)
    filled = np.append(values, np.int8(0))[index]  # index -1 picks the appended 0
    return filled.astype(np.int8, copy=False)


def wilder_warmup(n: int) -> int:
    """Bars after which a Wilder-smoothed indicator (RSI, ATR) of period n has forgotten its seed.

    n+1 bars produce the seed, then 10n smoothing steps shrink the seed's weight to
    (1-1/n)**(10n) < e**-10 ≈ 4.5e-5, so the value computed on only the last
    `wilder_warmup(n)` bars matches the full-history value to that relative precision.
    """
    _check_period(n, "wilder_warmup")
    return (_SETTLE_PERIODS + 1) * n + 1


def _seeded_smoothing(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """out[s] = mean of the first n valid inputs, then out[t] = alpha*x[t] + (1-alpha)*out[t-1]."""
    out = np.full(len(x), np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if len(valid) == 0 or valid[0] + n > len(x):
        return out
    seed_at = valid[0] + n - 1
    tail = x[seed_at:].copy()
    tail[0] = x[valid[0] : seed_at + 1].mean()
    out[seed_at:] = pd.Series(tail).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


def _check_period(n: object, who: str) -> None:
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise IndicatorError(f"{who}: period n must be an integer >= 1 (bars), got {n!r}")


def _as_float(values: ArrayLike, who: str) -> np.ndarray:
    if isinstance(values, pd.Series):
        # a float64 Series converts without a copy; nullable dtypes need their NA as NaN
        arr = (
            values.to_numpy()
            if values.dtype == np.float64
            else values.to_numpy(dtype=np.float64, na_value=np.nan)
        )
    else:
        arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise IndicatorError(f"{who}: expected a 1-D array or Series, got shape {arr.shape}")
    return arr


def _same_length(who: str, **named: ArrayLike) -> list[np.ndarray]:
    arrays = {key: _as_float(value, who) for key, value in named.items()}
    lengths = {key: len(arr) for key, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise IndicatorError(f"{who}: inputs must have the same length, got {lengths}")
    return list(arrays.values())


def _pair(a: ArrayLike | float, b: ArrayLike | float, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Two float arrays of one length; a scalar is broadcast to the other argument's length."""
    a_scalar, b_scalar = isinstance(a, numbers.Real), isinstance(b, numbers.Real)
    if a_scalar and b_scalar:
        raise IndicatorError(f"{who}: at least one argument must be an array, got {a!r}, {b!r}")
    if a_scalar:
        y = _as_float(b, who)
        return np.full(len(y), float(a)), y
    x = _as_float(a, who)
    if b_scalar:
        return x, np.full(len(x), float(b))
    x, y = _same_length(who, a=x, b=b)
    return x, y


def _as_bool(values: ArrayLike | None, name: str, n: int) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=bool)
    if isinstance(values, pd.Series) and pd.api.types.is_bool_dtype(values.dtype):
        arr = values.to_numpy(dtype=bool, na_value=False)
    else:
        arr = np.asarray(values)
    if arr.dtype != np.bool_ or arr.ndim != 1:
        raise IndicatorError(
            f"hold_signals: {name} must be a 1-D boolean array, got {arr.dtype} {arr.shape}"
        )
    if len(arr) != n:
        raise IndicatorError(f"hold_signals: {name} has {len(arr)} values, long_entry has {n}")
    return arr
