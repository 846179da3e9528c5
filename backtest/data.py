"""Bar data: loading CSV files (generic or MetaTrader 5 export), validation, resampling, and the
conversion to and from MT5 rates arrays.

Every loader returns the canonical bars frame: a RangeIndex and the columns BAR_COLUMNS, with
`time` the bar's open time as datetime64[ns, UTC], prices float64, and tick_volume, spread
(points) and real_volume int64 (0 when the source has none).
"""

from __future__ import annotations

import difflib
import io
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtest.atomic import atomic_file, write_atomic
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

_MT5_COLUMNS = {
    "<DATE>": "date",
    "<TIME>": "clock",
    "<OPEN>": "open",
    "<HIGH>": "high",
    "<LOW>": "low",
    "<CLOSE>": "close",
    "<TICKVOL>": "tick_volume",
    "<VOL>": "real_volume",
    "<SPREAD>": "spread",
}
_GENERIC_ALIASES = {
    "datetime": "time",
    "date": "time",
    "timestamp": "time",
    "volume": "tick_volume",
    "tickvol": "tick_volume",
    "vol": "tick_volume",
}


class DataError(BacktestError, ValueError):
    """Bad bar data; the message names the file and line (header = line 1) where it can."""


class _Lines:
    """Maps a data row (0-based, as parsed) to its physical line in the file.

    The parsers skip blank lines, so row + 2 is the line only until the first blank one; the
    file is scanned (once, and only when an error is reported) to count them.
    """

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self.encoding = encoding
        self._data_lines: list[int] | None = None

    def line(self, row: int) -> int:
        if self._data_lines is None:
            text = self.path.read_bytes().decode(self.encoding, errors="replace")
            self._data_lines = [
                number
                for number, line in enumerate(text.split("\n"), 1)
                if number > 1 and line.strip()
            ]
        lines = self._data_lines
        return lines[row] if 0 <= row < len(lines) else row + 2

    def at(self, row: int) -> str:
        """'path line N' for messages."""
        return f"{self.path} line {self.line(row)}"


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
    frame = _parse_csv(path, tz, validate)
    if cache is not None and validate:
        cache.put(path, tz, frame)
    return frame


def _parse_csv(path: Path, tz: str, validate: bool) -> pd.DataFrame:
    with path.open("rb") as handle:
        start = handle.read(65_536)
    text_encoding = _encoding(start)
    header = _first_line(path.read_bytes() if text_encoding == "utf-16" else start, text_encoding)
    if not header.strip():
        raise DataError(f"{path}: the file is empty")
    if "<DATE>" in header.upper():
        frame = _read_mt5(path, path.read_bytes(), text_encoding, header, tz)
    else:
        frame = _read_generic(path, text_encoding, header, tz)
    if frame.empty:
        raise DataError(f"{path}: no bars after the header")
    if validate:
        validate_bars(frame, str(path), line_of=_Lines(path, text_encoding).line)
    return frame


# pandas holds times as nanoseconds since 1970 in an int64: 2262-04-11 is the last day
_LAST_SECOND = 9_223_372_035
_RANGE_HINT = " (outside 1677-09-22 .. 2262-04-11, the times pandas can hold)"


def _encoding(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    return "utf-8"


def _first_line(raw: bytes, encoding: str) -> str:
    text = (
        raw[:4096].decode(encoding, errors="replace")
        if encoding != "utf-16"
        else raw.decode(encoding, errors="replace")[:4096]
    )
    return text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""


def _source(raw: bytes, encoding: str) -> io.BytesIO:
    """The file as UTF-8 bytes (the fast parsers read bytes)."""
    if encoding == "utf-8":
        return io.BytesIO(raw)
    return io.BytesIO(raw.decode(encoding).lstrip("\ufeff").encode("utf-8"))


def _read_generic(path: Path, encoding: str, header: str, tz: str) -> pd.DataFrame:
    bare = [c.strip().strip('"').strip().lower() for c in header.split(",")]
    names = [_GENERIC_ALIASES.get(c, c) for c in bare]
    missing = [c for c in ("time", *PRICE_COLUMNS) if c not in names]
    if missing:
        raise DataError(
            f"{path}: unknown header {header.strip()!r}; expected a generic CSV with columns "
            "time,open,high,low,close[,tick_volume,spread,real_volume] or an MT5 export "
            "with <DATE>\\t<TIME>\\t<OPEN>..."
        )
    wanted = [c for c in BAR_COLUMNS if c in names]
    fast = _read_generic_fast(path, encoding, names, wanted, tz)
    if fast is not None:
        return fast
    raw = path.read_bytes()
    lines = _Lines(path, encoding)
    try:
        # no usecols: with it pandas silently ignores fields beyond the header's
        table = pd.read_csv(
            _source(raw, encoding),
            header=0,
            names=names,
            dtype={"time": str},
            engine="c",
            skip_blank_lines=True,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise _parse_error(path, exc, len(names), "CSV") from None
    _refuse_implicit_index(lines, table, len(names))
    times = _parse_generic_times(lines, table["time"], tz)
    return _assemble(lines, table, times)


def _parse_error(path: Path, exc: Exception, n_columns: int, kind: str) -> DataError:
    """The parser's complaint in our words; a row with too many fields names its line."""
    found = re.search(r"Expected \d+ fields in line (\d+), saw (\d+)", str(exc))
    if found:  # the C parser counts physical lines, header included
        return DataError(
            f"{path} line {found.group(1)}: {found.group(2)} fields, but the "
            f"header has {n_columns} columns"
        )
    return DataError(f"{path}: cannot parse as {kind}: {exc}")


def _refuse_implicit_index(lines: _Lines, table: pd.DataFrame, n_columns: int) -> None:
    """pandas reads a first data row with one field more than the header as "the first
    column is the index" and shifts every value by one column; that is an extra field."""
    if not isinstance(table.index, pd.RangeIndex):
        raise DataError(
            f"{lines.at(0)}: {n_columns + 1} fields, but the header has {n_columns} columns"
        )


def _read_generic_fast(
    path: Path, encoding: str, names: list[str], wanted: list[str], tz: str
) -> pd.DataFrame | None:
    """pyarrow's multithreaded reader for well-formed files; None sends the file down the
    slower path, whose messages name the bad line.

    Declared types first (ISO times to the second, float prices, integer counts), streamed
    batch by batch into the columns: three times faster than letting pyarrow infer the types,
    and the file is never held twice. A file they do not fit is read again whole with
    inference; one that fails that too goes down the slow path.
    """
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    source = path if encoding == "utf-8" else _source(path.read_bytes(), encoding)
    read_options = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=_BLOCK_BYTES)
    try:
        frame = _stream_declared(source, read_options, wanted, tz, _row_capacity(path))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        frame = None
    if frame is not None:
        return frame
    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        table = pacsv.read_csv(
            source,
            read_options=read_options,
            convert_options=pacsv.ConvertOptions(include_columns=wanted),
            memory_pool=pa.system_memory_pool(),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if not _usable(table, wanted):
        return None
    only_reference = [table]  # handed over, so the conversion can free column by column
    del table
    return _arrow_to_frame(only_reference, tz)


_BLOCK_BYTES = 1 << 20  # per batch: pyarrow's default, work enough for its threads


def _row_capacity(path: Path) -> int:
    """An upper estimate of the file's rows from its first block's line length (the columns
    are reserved at this size; pages never written cost no memory)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(min(size, _BLOCK_BYTES))
    lines = max(head.count(b"\n"), 1)
    return int(size / (len(head) / lines) * 1.25) + 1024


def _stream_declared(source: object, read_options: object, wanted: list[str], tz: str,
                     capacity: int) -> pd.DataFrame | None:  # fmt: skip
    """The file read batch by batch with the declared types into numpy columns; None when a
    batch holds an empty field or a time pandas cannot hold (the slow path names the line)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    declared = {c: pa.timestamp("s") if c == "time" else pa.float64() if c in PRICE_COLUMNS
                else pa.int64() for c in wanted}  # fmt: skip
    reader = pacsv.open_csv(
        source,
        read_options=read_options,
        convert_options=pacsv.ConvertOptions(
            include_columns=wanted, column_types=declared, timestamp_parsers=[pacsv.ISO8601]
        ),
        memory_pool=pa.system_memory_pool(),
    )
    columns = {c: np.empty(capacity, dtype=np.int64 if c == "time" else _declared_numpy(c))
               for c in wanted}  # fmt: skip
    n_rows = 0
    for batch in reader:
        if any(batch.column(c).null_count for c in wanted) or not _holdable(batch.column("time")):
            return None
        size = batch.num_rows
        if n_rows + size > len(columns["time"]):
            columns = {c: _grown(values, n_rows, n_rows + size) for c, values in columns.items()}
        for name in wanted:
            values = batch.column(name)
            values = values.cast(pa.int64()) if name == "time" else values
            columns[name][n_rows : n_rows + size] = values.to_numpy()
        n_rows += size
    if n_rows == 0:
        return None
    return _columns_to_frame({c: values[:n_rows] for c, values in columns.items()}, tz)


def _declared_numpy(column: str) -> type:
    return np.float64 if column in PRICE_COLUMNS else np.int64


def _grown(values: np.ndarray, used: int, needed: int) -> np.ndarray:
    """A longer copy of the first `used` values (the estimate fell short: rare)."""
    longer = np.empty(max(needed, int(len(values) * 1.5)), dtype=values.dtype)
    longer[:used] = values[:used]
    return longer


def _usable(table: object, wanted: list[str]) -> bool:
    """Whether an inferred table can be bars as it is: times that pandas can hold, numbers
    everywhere, whole counts, no empty field."""
    import pyarrow as pa

    if not pa.types.is_timestamp(table.schema.field("time").type) or table.num_rows == 0:
        return False
    if not _holdable(table.column("time")):
        return False  # past 2262 or before 1677: the slow path names the line
    if any(table.column(c).null_count for c in wanted):
        return False
    numeric = all(
        pa.types.is_floating(table.schema.field(c).type)
        or pa.types.is_integer(table.schema.field(c).type)
        for c in wanted[1:]
    )
    return numeric and not any(_fractional(table.column(c)) for c in wanted if c in INT_COLUMNS)


def _holdable(times: object) -> bool:
    """Whether every time fits pandas' nanosecond times (1677-09-21 .. 2262-04-11)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    seconds = pc.cast(times, pa.timestamp("s")).cast(pa.int64())
    low, high = pc.min_max(seconds).values()
    return low.as_py() >= -_LAST_SECOND and high.as_py() <= _LAST_SECOND


def _fractional(column: object) -> bool:
    """Whether a column of counts holds a value that is not a whole number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_floating(column.type):
        return False
    return bool(pc.any(pc.not_equal(column, pc.floor(column))).as_py())


def _arrow_to_frame(only_reference: list, tz: str) -> pd.DataFrame:
    """The table in `only_reference` (emptied: nothing else may hold it) as bars, one column
    at a time, each arrow column let go once copied into numpy. (pyarrow's `to_pandas` took
    ten times as long on a million rows.)"""
    table = only_reference.pop()
    columns: dict[str, np.ndarray] = {}
    for name in list(table.column_names):
        chunks = table.column(name).chunks
        table = table.drop_columns([name])
        if name == "time":
            columns[name] = np.concatenate([c.to_numpy() for c in chunks]).astype("datetime64[s]")
        else:
            columns[name] = np.concatenate([c.to_numpy() for c in chunks])
        del chunks  # frees this column's arrow buffers
    return _columns_to_frame(columns, tz)


def _utc_times(times: np.ndarray, tz: str) -> object:
    """UTC nanosecond times from naive ones (int64 seconds or datetime64) on the clock `tz`.
    Seconds on UTC become nanoseconds in place: a 10M-bar file needs no second array."""
    if tz == "UTC" and times.dtype == np.int64:
        times *= 1_000_000_000  # every time was checked to fit (_holdable)
        return pd.DatetimeIndex(times.view("datetime64[ns]"), copy=False).tz_localize("UTC").array
    naive = pd.Series(pd.DatetimeIndex(times.astype("datetime64[s]", copy=False)))
    return _localize(naive, tz).dt.tz_convert("UTC").dt.as_unit("ns").array


def _columns_to_frame(columns: dict[str, np.ndarray], tz: str) -> pd.DataFrame:
    """Bars from numpy columns: naive times (seconds, or datetime64) read on the clock `tz`
    and turned to UTC nanoseconds, float prices, int64 counts (zeros for an absent one)."""
    n_rows = len(columns["time"])
    frame: dict[str, object] = {"time": _utc_times(columns.pop("time"), tz)}
    for name in BAR_COLUMNS[1:]:
        if name not in columns:
            frame[name] = np.zeros(n_rows, dtype=np.int64)
        else:
            frame[name] = columns.pop(name).astype(_declared_numpy(name), copy=False)
    return pd.DataFrame(frame, copy=False)


_MT5_REQUIRED = ("<DATE>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>")


def _read_mt5(path: Path, raw: bytes, encoding: str, header: str, tz: str) -> pd.DataFrame:
    sep = "\t" if "\t" in header else ","
    columns = [c.strip().upper() for c in header.split(sep)]
    unknown = [c for c in columns if c not in _MT5_COLUMNS]
    if unknown or "<DATE>" not in columns:
        raise DataError(
            f"{path}: unexpected MT5 export columns {unknown or columns}; expected "
            f"{' '.join(_MT5_COLUMNS)}"
        )
    missing = [c for c in _MT5_REQUIRED if c not in columns]
    if missing:
        raise DataError(
            f"{path}: the MT5 export has no {', '.join(missing)} column"
            f"{'s' if len(missing) > 1 else ''} (header: {' '.join(columns)})"
        )
    names = [_MT5_COLUMNS[c] for c in columns]
    lines = _Lines(path, encoding)
    try:
        table = pd.read_csv(
            _source(raw, encoding),
            sep=sep,
            header=0,
            names=names,
            dtype={"date": str, "clock": str},
            engine="c",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise _parse_error(path, exc, len(names), "an MT5 export") from None
    _refuse_implicit_index(lines, table, len(names))
    stamp = table["date"].str.strip()
    if "clock" in table:
        clock = table["clock"].str.strip()
        clock = clock.where(clock.str.len() != 5, clock + ":00")  # 13:00 -> 13:00:00
        stamp = stamp + " " + clock
        fmt = "%Y.%m.%d %H:%M:%S"
    else:
        fmt = "%Y.%m.%d"
    parsed = pd.to_datetime(stamp, format=fmt, errors="coerce")
    _fail_on_unparsed(lines, stamp, parsed, "time")
    return _assemble(lines, table, _to_utc(path, parsed, tz))


def _parse_generic_times(lines: _Lines, column: pd.Series, tz: str) -> pd.Series:
    text = column.astype(str).str.strip()
    if text.str.fullmatch(r"\d{9,11}").all():  # epoch seconds
        seconds = text.astype("int64")
        late = (seconds > _LAST_SECOND).to_numpy()
        if late.any():
            row = int(np.argmax(late))
            raise DataError(f"{lines.at(row)}: time {text.iloc[row]!r}{_RANGE_HINT}")
        return pd.to_datetime(seconds, unit="s", utc=True)
    try:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except ValueError:  # mixed offsets: let UTC sort them out
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    _fail_on_unparsed(lines, text, parsed, "time")
    return _to_utc(lines.path, parsed, tz)


def _to_utc(path: Path, times: pd.Series, tz: str) -> pd.Series:
    if times.dt.tz is not None:
        return times.dt.tz_convert("UTC")
    try:
        localized = _localize(times, tz)
    except Exception as exc:  # pytz/zoneinfo raise several types for bad zones and DST
        raise DataError(f"{path}: cannot read times in timezone {tz!r}: {exc}") from None
    return localized.dt.tz_convert("UTC")


def _localize(times: pd.Series, tz: str) -> pd.Series:
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


def _fail_on_unparsed(lines: _Lines, text: pd.Series, parsed: pd.Series, column: str) -> None:
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        value = text.iloc[row]
        year = re.match(r"\s*(\d{4})", str(value))
        hint = _RANGE_HINT if year and not 1678 <= int(year.group(1)) <= 2261 else ""
        raise DataError(
            f"{lines.at(row)}: cannot read {column} {value!r}{hint}" + _others(int(bad.sum()))
        )


def _assemble(lines: _Lines, table: pd.DataFrame, times: pd.Series) -> pd.DataFrame:
    seconds = times.dt.as_unit("s").astype("int64").to_numpy()
    outside = np.abs(seconds) > _LAST_SECOND
    if outside.any():
        row = int(np.argmax(outside))
        raise DataError(
            f"{lines.at(row)}: time {times.iloc[row].isoformat()}{_RANGE_HINT}"
            + _others(int(outside.sum()))
        )
    frame = pd.DataFrame({"time": times.dt.as_unit("ns").reset_index(drop=True)})
    for column in PRICE_COLUMNS:
        frame[column] = _numbers(lines, table[column], column, float)
    for column in INT_COLUMNS:
        if column in table:
            frame[column] = _numbers(lines, table[column], column, int)
        else:
            frame[column] = np.zeros(len(frame), dtype=np.int64)
    return frame


def _numbers(lines: _Lines, column: pd.Series, name: str, kind: type) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        shown = column.iloc[row]
        what = (
            "missing value"
            if pd.isna(shown) or str(shown).strip() == ""
            else f"cannot read {shown!r}"
        )
        raise DataError(f"{lines.at(row)}: {what} in column {name}" + _others(int(bad.sum())))
    if kind is int:
        numbers = values.to_numpy(dtype=np.float64)
        fractional = numbers != np.round(numbers)  # a count of 5.5 is a broken file, not 5
        if fractional.any():
            row = int(np.argmax(fractional))
            raise DataError(
                f"{lines.at(row)}: {numbers[row]:g} in column {name} is not "
                "a whole number" + _others(int(fractional.sum()))
            )
        return numbers.astype(np.int64)
    return values.to_numpy(dtype=np.float64)


def _others(count: int) -> str:
    return f" ({count - 1} more such rows)" if count > 1 else ""


# ---------------------------------------------------------------- validation


def validate_bars(
    df: pd.DataFrame,
    source: str = "<frame>",
    first_line: int = 2,
    line_of: Callable[[int], int] | None = None,
) -> None:
    """Raise DataError at the first bad bar: missing values, non-finite or non-positive
    prices, high/low outside open/close, unsorted or duplicate times. Vectorised.

    Rows are reported as lines `row + first_line`, or `line_of(row)` when given (a file's
    physical lines, blank ones included).
    """
    line = line_of or (lambda row: row + first_line)

    def fail(row: int, what: str, count: int) -> DataError:
        return DataError(f"{source} line {line(row)}: {what}" + _others(count))

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


# ---------------------------------------------------------------- history from a terminal


class RatesSource:
    """What load_from_terminal needs: live.mt5_connector.MT5Connector provides it."""

    def rates_range(
        self, symbol: str, timeframe: str, date_from: object, date_to: object
    ) -> pd.DataFrame:  # pragma: no cover - an interface
        raise NotImplementedError


def load_from_terminal(
    source: RatesSource,
    symbol: str,
    timeframe: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    cache_dir: str | Path | None = None,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Closed bars of `symbol` in [start, end] from a terminal, kept in an on-disk cache.

    The cache (a CSV per symbol and timeframe, plus the time span it covers) keeps every
    closed bar fetched so far; only the parts of [start, end] it does not cover are asked
    from the terminal. A bar still forming at `now` is never cached.
    """
    start, end = _utc_stamp(start), _utc_stamp(end)
    width = pd.Timedelta(seconds=timeframe_seconds(timeframe))
    limit = _utc_stamp(now) if now is not None else pd.Timestamp.now(tz="UTC")
    end = min(end, limit - width)  # the forming bar is never returned, so never fetched
    cached, covered = _read_cache(cache_dir, symbol, timeframe)
    fresh = []
    for gap_start, gap_end in _missing(covered, start, end, width):
        fresh.append(
            source.rates_range(
                symbol, timeframe, gap_start.to_pydatetime(), gap_end.to_pydatetime()
            )
        )
    merged = _merge(cached, fresh)
    closed = merged[merged["time"] + width <= limit].reset_index(drop=True)
    if fresh and cache_dir is not None:
        span = (
            min(start, covered[0]) if covered else start,
            min(max(end, covered[1]) if covered else end, limit - width),
        )
        _write_cache(cache_dir, symbol, timeframe, closed, span)
    window = closed[(closed["time"] >= start) & (closed["time"] <= end)]
    return window.reset_index(drop=True)


def _utc_stamp(moment: object) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _cache_path(cache_dir: str | Path, symbol: str, timeframe: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in symbol)
    return Path(cache_dir) / f"{safe}_{timeframe.upper()}.csv"


_EMPTY = pd.DataFrame(columns=list(BAR_COLUMNS))


def _read_cache(
    cache_dir: str | Path | None, symbol: str, timeframe: str
) -> tuple[pd.DataFrame, tuple[pd.Timestamp, pd.Timestamp] | None]:
    """The cached bars and the span of time they cover (None: nothing cached)."""
    if cache_dir is None:
        return _EMPTY, None
    path = _cache_path(cache_dir, symbol, timeframe)
    span_file = path.with_suffix(".span.json")
    if not path.is_file() or not span_file.is_file():
        return _EMPTY, None
    try:
        span = json.loads(span_file.read_text(encoding="utf-8"))
        return load_csv(path), (_utc_stamp(span["from"]), _utc_stamp(span["to"]))
    except (DataError, ValueError, KeyError) as exc:
        logger.warning(
            "ignoring a damaged cache for %s %s (%s); fetching again", symbol, timeframe, exc
        )
        return _EMPTY, None


def _write_cache(
    cache_dir: str | Path,
    symbol: str,
    timeframe: str,
    bars: pd.DataFrame,
    span: tuple[pd.Timestamp, pd.Timestamp],
) -> None:
    path = _cache_path(cache_dir, symbol, timeframe)
    save_csv(bars, path)
    span = {"from": span[0].isoformat(), "to": span[1].isoformat()}
    write_atomic(path.with_suffix(".span.json"), json.dumps(span))


def _missing(
    covered: tuple[pd.Timestamp, pd.Timestamp] | None,
    start: pd.Timestamp,
    end: pd.Timestamp,
    width: pd.Timedelta,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Parts of [start, end] outside the covered span (kept contiguous by design)."""
    if covered is None:
        return [(start, end)]
    first, last = covered
    gaps = []
    if start < first:
        gaps.append((start, first - width))
    if end > last:
        gaps.append((last + width, end))
    return gaps


def _merge(cached: pd.DataFrame, fresh: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in (cached, *fresh) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(BAR_COLUMNS))
    merged = pd.concat(frames, ignore_index=True)
    merged = merged.drop_duplicates("time", keep="last").sort_values("time")
    return merged.reset_index(drop=True)
