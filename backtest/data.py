"""The canonical bars frame and what every source of bars shares: its columns and timeframes,
`load_csv` (the parsers are `backtest.csv_bars` and `backtest.csv_arrow`, loaded only when a
file is parsed), validation, saving, resampling, and the conversion to and from MT5 rates
arrays. History fetched from a terminal is `backtest.terminal_history`.

Every loader returns the canonical bars frame: a RangeIndex and the columns BAR_COLUMNS, with
`time` the bar's open time as datetime64[ns, UTC], prices float64, and tick_volume, spread
(points) and real_volume int64 (0 when the source has none).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtest.atomic import atomic_file
from backtest.broker_clock import UTC_ZONE, BrokerZone, parse_zone
from backtest.errors import BacktestError

if TYPE_CHECKING:
    from backtest.bar_cache import BarCache

logger = logging.getLogger(__name__)

BAR_COLUMNS = ("time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
INT_COLUMNS = ("tick_volume", "spread", "real_volume")

TIMEFRAMES: dict[str, int] = {
    **{f"M{m}": 60 * m for m in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)},
    **{f"H{h}": 3600 * h for h in (1, 2, 3, 4, 6, 8, 12)},
    "D1": 86_400,
    "W1": 7 * 86_400,
}

RATES_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)


class DataError(BacktestError, ValueError):
    """Bad bar data; the message names the file and line (header = line 1) where it can."""


def timeframe_seconds(name: str) -> int:
    """Seconds in one bar of `name` (M1..W1)."""
    seconds = TIMEFRAMES.get(str(name).upper())
    if seconds is None:
        close = difflib.get_close_matches(str(name).upper(), TIMEFRAMES, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise DataError(f"unknown timeframe {name!r}{hint} (known: {', '.join(TIMEFRAMES)})")
    return seconds


# ---------------------------------------------------------------- loading


def load_csv(
    path: str | Path, *, tz: str = "UTC", validate: bool = True, cache: BarCache | None = None
) -> pd.DataFrame:
    """Load bars from a generic CSV or an MT5 terminal export (detected from the header).

    Naive times are read in timezone `tz` (MT5 exports use the broker's server time) and
    converted to UTC. Raises DataError naming the file and line on any problem. With a
    `cache` (backtest.bar_cache), a file parsed and validated before is mapped, not parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    cached = cache.get(path, tz) if cache is not None else None
    if cached is not None:
        return cached
    from backtest.csv_bars import parse_csv  # the parsers load only when a file is parsed

    frame = parse_csv(path, tz, validate)
    if cache is not None and validate:
        cache.put(path, tz, frame)
    return frame


# pandas holds times as nanoseconds since 1970 in an int64: 2262-04-11 is the last day
LAST_SECOND = 9_223_372_035
RANGE_HINT = " (outside 1677-09-22 .. 2262-04-11, the times pandas can hold)"


def more_rows(count: int) -> str:
    """How many more rows a message about one stands for."""
    return f" ({count - 1} more such rows)" if count > 1 else ""


def localize_times(times: pd.Series, tz: str) -> pd.Series:
    """Naive times read on the clock `tz`: an IANA name, or a broker zone such as UTC+2 or
    NY+7 (an MT5 export is stamped in its server's time)."""
    if times.dt.tz is not None or tz == "UTC":
        return times if times.dt.tz is not None else times.dt.tz_localize("UTC")
    zone = parse_zone(tz, "tz")
    if zone.base == tz:  # a plain IANA zone
        return times.dt.tz_localize(tz, ambiguous="infer", nonexistent="shift_forward")
    wall = times.to_numpy(dtype="datetime64[s]").astype(np.int64)
    utc = pd.to_datetime(zone.to_utc(wall), unit="s", utc=True)
    return pd.Series(utc, index=times.index, name=times.name).dt.as_unit("ns")


# ---------------------------------------------------------------- validation


def validate_bars(
    df: pd.DataFrame,
    source: str = "<frame>",
    first_line: int = 2,
    line_of: Callable[[int], int] | None = None,
) -> None:
    """Raise DataError at the first bad bar: missing values, non-finite or non-positive
    prices, high/low outside open/close, negative counts (spread, volumes), unsorted or
    duplicate times. Vectorised.

    Rows are reported as lines `row + first_line`, or `line_of(row)` when given (a file's
    physical lines, blank ones included).
    """
    line = line_of or (lambda row: row + first_line)

    def fail(row: int, what: str, count: int) -> DataError:
        return DataError(f"{source} line {line(row)}: {what}" + more_rows(count))

    for column in ("time", *PRICE_COLUMNS):
        missing = df[column].isna().to_numpy()
        if missing.any():
            row = int(np.argmax(missing))
            raise fail(row, f"missing value in column {column}", int(missing.sum()))
    prices = [df[col].to_numpy(dtype=float) for col in PRICE_COLUMNS]
    _check_finite(prices, fail)
    o, h, lo, c = prices
    checks = (
        (
            (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            lambda r: f"non-positive price (open {o[r]}, high {h[r]}, low {lo[r]}, close {c[r]})",
        ),
        (h < np.maximum(o, c), lambda r: f"high {h[r]} < max(open, close) {max(o[r], c[r])}"),
        (lo > np.minimum(o, c), lambda r: f"low {lo[r]} > min(open, close) {min(o[r], c[r])}"),
    )
    for bad, describe in checks:
        if bad.any():
            row = int(np.argmax(bad))
            raise fail(row, describe(row), int(bad.sum()))
    for column in (c for c in INT_COLUMNS if c in df):  # a negative spread would pay the buyer
        values = df[column].to_numpy()
        negative = values < 0
        if negative.any():
            row = int(np.argmax(negative))
            raise fail(row, f"negative {column} {values[row]}", int(negative.sum()))
    seconds = epoch_seconds(df["time"])
    step = np.diff(seconds)
    for bad, what in (
        (step < 0, "earlier than the bar before (unsorted)"),
        (step == 0, "duplicate of the bar before"),
    ):
        if bad.any():
            row = int(np.argmax(bad)) + 1
            raise fail(row, f"time {df['time'].iloc[row]} is {what}", int(bad.sum()))


def _check_finite(prices: list[np.ndarray], fail: Callable[[int, str, int], DataError]) -> None:
    """inf (or -inf) parses as a number but is no price."""
    bad = ~np.isfinite(prices[0] + prices[1] + prices[2] + prices[3])
    if bad.any():
        row = int(np.argmax(bad))
        shown = ", ".join(
            f"{name} {values[row]}" for name, values in zip(PRICE_COLUMNS, prices, strict=True)
        )
        raise fail(row, f"non-finite price ({shown})", int(bad.sum()))


def epoch_seconds(times: pd.Series) -> np.ndarray:
    """Tz-aware times as integer epoch seconds."""
    return pd.DatetimeIndex(times).as_unit("s").asi8


# ---------------------------------------------------------------- saving


def save_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write bars as a generic CSV (UTC times `YYYY-MM-DD HH:MM:SS`), atomically."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # naive UTC seconds print as "YYYY-MM-DD HH:MM:SS"; floats print in shortest round-trip form
    times = pd.DatetimeIndex(df["time"]).tz_convert("UTC").tz_localize(None).as_unit("s")
    arrays = [pa.array(times.to_numpy(), type=pa.timestamp("s"))]
    for column in BAR_COLUMNS[1:]:
        values = df[column].to_numpy() if column in df else np.zeros(len(df), dtype=np.int64)
        arrays.append(pa.array(values))
    table = pa.Table.from_arrays(arrays, names=list(BAR_COLUMNS))
    with atomic_file(path, "wb") as handle:
        handle.write((",".join(BAR_COLUMNS) + "\n").encode())
        pacsv.write_csv(
            table,
            handle,
            write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
        )


# ---------------------------------------------------------------- timeframes


def infer_timeframe(df: pd.DataFrame) -> str | None:
    """The TIMEFRAMES name of the most common spacing between bars, or None."""
    return timeframe_of(common_step(df))


def timeframe_of(step: int | None) -> str | None:
    """The TIMEFRAMES name of a bar spacing in seconds, or None."""
    return next((name for name, seconds in TIMEFRAMES.items() if seconds == step), None)


def _check_resample(df: pd.DataFrame, timeframe: str, width: int) -> None:
    """Refuse a target that is finer than the bars or not a whole number of them (H4 to H6
    would put one 4-hour bar into some 6-hour bins and two into others)."""
    step = common_step(df)
    if step is None:
        return
    current = timeframe_of(step) or f"{step}-second"
    if step > width:
        raise DataError(f"cannot resample {current} bars to the finer timeframe {timeframe}")
    if width % step:
        raise DataError(
            f"cannot resample {current} bars to {timeframe}: {timeframe} is not a "
            f"whole number of {current} bars, so its bins would mix bars"
        )


def common_step(df: pd.DataFrame) -> int | None:
    """The most common spacing between bars in seconds (None for fewer than 2 bars)."""
    if len(df) < 2:
        return None
    steps = np.diff(epoch_seconds(df["time"]))
    values, counts = np.unique(steps[steps > 0], return_counts=True)
    return int(values[np.argmax(counts)]) if len(values) else None


def resample_bars(df: pd.DataFrame, timeframe: str, zone: BrokerZone = UTC_ZONE) -> pd.DataFrame:
    """Aggregate bars into a coarser timeframe, cut on the broker's clock `zone` as MT5 cuts
    them: D1 at the server's midnight, W1 at its Sunday 00:00 (times stay UTC).

    open first, high max, low min, close last, volumes summed; spread is the minimum in the
    bin, as an MT5 bar's spread is the lowest spread seen during the bar. Empty bins vanish.
    """
    width = timeframe_seconds(timeframe)
    _check_resample(df, timeframe, width)
    bins, opens = zone.bin_opens(epoch_seconds(df["time"]), width)
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    ends = np.append(starts[1:], len(df)) - 1

    def column(name: str) -> np.ndarray:
        if name not in df and name in INT_COLUMNS:  # optional in a hand-made frame
            return np.zeros(len(df), dtype=np.int64)
        return df[name].to_numpy()

    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(opens[starts], unit="s", utc=True).as_unit("ns"),
            "open": column("open")[starts],
            "high": np.maximum.reduceat(column("high"), starts),
            "low": np.minimum.reduceat(column("low"), starts),
            "close": column("close")[ends],
            "tick_volume": np.add.reduceat(column("tick_volume").astype(np.int64), starts),
            "spread": np.minimum.reduceat(column("spread").astype(np.int64), starts),
            "real_volume": np.add.reduceat(column("real_volume").astype(np.int64), starts),
        }
    )
    return frame


# ---------------------------------------------------------------- MT5 rates arrays


def rates_to_frame(rates: np.ndarray) -> pd.DataFrame:
    """An MT5 rates structured array (time in epoch seconds, UTC) as the canonical frame."""
    rates = np.asarray(rates)
    if rates.dtype.names is None or "time" not in rates.dtype.names:
        raise DataError(f"not an MT5 rates array (dtype {rates.dtype})")
    frame = pd.DataFrame(
        {"time": pd.to_datetime(rates["time"].astype(np.int64), unit="s", utc=True).as_unit("ns")}
    )
    for name in PRICE_COLUMNS:
        frame[name] = rates[name].astype(np.float64)
    for name in INT_COLUMNS:
        frame[name] = rates[name].astype(np.int64) if name in rates.dtype.names else 0
    return frame


def frame_to_rates(df: pd.DataFrame) -> np.ndarray:
    """The canonical frame as an MT5 rates structured array (packed, itemsize 60)."""
    rates = np.empty(len(df), dtype=RATES_DTYPE)
    rates["time"] = epoch_seconds(df["time"])
    for name in PRICE_COLUMNS:
        rates[name] = df[name].to_numpy(dtype=np.float64)
    for name in INT_COLUMNS:
        rates[name] = df[name].to_numpy() if name in df else 0
    return rates
