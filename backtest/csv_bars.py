"""Parsing a CSV of bars into the canonical frame (`backtest.data`): a generic CSV or an MT5
terminal export (told apart by the header), in UTF-8, UTF-8 with a BOM or UTF-16, naive
times read on a given clock. Well-formed generic files take pyarrow's fast path
(`backtest.csv_arrow`); every other file, and any file that path refuses, is read here,
with errors that name the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.csv_arrow import read_generic_fast, utf8_source
from backtest.data import (
    BAR_COLUMNS,
    INT_COLUMNS,
    LAST_SECOND,
    PRICE_COLUMNS,
    RANGE_HINT,
    DataError,
    localize_times,
    more_rows,
    validate_bars,
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


def parse_csv(path: Path, tz: str, validate: bool) -> pd.DataFrame:
    """The canonical frame of the CSV at `path` (see `backtest.data.load_csv`)."""
    with path.open("rb") as handle:
        start = handle.read(65_536)
    encoding = text_encoding(start)
    header = _first_line(path.read_bytes() if encoding == "utf-16" else start, encoding)
    if not header.strip():
        raise DataError(f"{path}: the file is empty")
    if "<DATE>" in header.upper():
        frame = _read_mt5(path, path.read_bytes(), encoding, header, tz)
    else:
        frame = _read_generic(path, encoding, header, tz)
    if frame.empty:
        raise DataError(f"{path}: no bars after the header")
    if validate:
        validate_bars(frame, str(path), line_of=_Lines(path, encoding).line)
    return frame


def text_encoding(raw: bytes) -> str:
    """The encoding a text file's first bytes show: UTF-16 or UTF-8 with a BOM, else UTF-8."""
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
    _refuse_clashing_columns(path, header, names)
    wanted = [c for c in BAR_COLUMNS if c in names]
    fast = read_generic_fast(path, encoding, names, wanted, tz)
    if fast is not None:
        return fast
    raw = path.read_bytes()
    lines = _Lines(path, encoding)
    try:
        # no usecols: with it pandas silently ignores fields beyond the header's
        table = pd.read_csv(
            utf8_source(raw, encoding),
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


def _refuse_clashing_columns(path: Path, header: str, names: list[str]) -> None:
    """Two headers naming the same bar column (Volume and tick_volume; Date and Time): which
    one to read is a guess, so neither is."""
    cells = [c.strip().strip('"').strip() for c in header.split(",")]
    for column in BAR_COLUMNS:
        clash = [cell for cell, name in zip(cells, names, strict=True) if name == column]
        if len(clash) > 1:
            hint = (
                "; join the date and the time of day into one column (2024-01-02 10:00:00)"
                if column == "time"
                else "; keep one of them"
            )
            both = " and ".join(repr(cell) for cell in clash)
            raise DataError(f"{path}: columns {both} both read as {column}{hint}")


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
            utf8_source(raw, encoding),
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
    return _assemble(lines, table, _to_utc(lines, parsed, tz))


def _parse_generic_times(lines: _Lines, column: pd.Series, tz: str) -> pd.Series:
    text = column.astype(str).str.strip()
    if text.str.fullmatch(r"\d{9,11}").all():  # epoch seconds
        seconds = text.astype("int64")
        late = (seconds > LAST_SECOND).to_numpy()
        if late.any():
            row = int(np.argmax(late))
            raise DataError(f"{lines.at(row)}: time {text.iloc[row]!r}{RANGE_HINT}")
        return pd.to_datetime(seconds, unit="s", utc=True)
    try:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except ValueError:  # mixed offsets: let UTC sort them out
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    _fail_on_unparsed(lines, text, parsed, "time")
    return _to_utc(lines, parsed, tz)


def _to_utc(lines: _Lines, times: pd.Series, tz: str) -> pd.Series:
    if times.dt.tz is not None:
        return times.dt.tz_convert("UTC")
    try:
        localized = localize_times(times, tz)
    except Exception as exc:  # pytz/zoneinfo raise several types for bad zones and DST
        raise _clock_error(lines, times, tz, exc) from None
    return localized.dt.tz_convert("UTC")


def _clock_error(lines: _Lines, times: pd.Series, tz: str, exc: Exception) -> DataError:
    """The refusal of naive times the clock `tz` cannot place, naming the line of a time
    that clock shows twice (its clocks go back) where the file shows it once."""
    once = re.search(r"Cannot infer dst time from (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", str(exc))
    if once:
        rows = np.flatnonzero(times.to_numpy() == np.datetime64(once.group(1)))
        if len(rows):
            return DataError(
                f"{lines.at(int(rows[0]))}: time {once.group(1)} is shown once, but on the "
                f"clock {tz!r} that hour comes twice (its clocks go back): is --tz right?"
            )
    return DataError(f"{lines.path}: cannot read times in timezone {tz!r}: {exc}")


def _fail_on_unparsed(lines: _Lines, text: pd.Series, parsed: pd.Series, column: str) -> None:
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        value = text.iloc[row]
        year = re.match(r"\s*(\d{4})\D", str(value))  # a date's year, not an epoch's digits
        hint = RANGE_HINT if year and not 1678 <= int(year.group(1)) <= 2261 else ""
        if re.fullmatch(r"\s*\d{12,}(\.\d*)?\s*|\s*\d{9,11}\.\d*\s*", str(value)):
            hint = " (epoch times must be whole seconds, as 1704067200)"
        raise DataError(
            f"{lines.at(row)}: cannot read {column} {value!r}{hint}" + more_rows(int(bad.sum()))
        )


def _assemble(lines: _Lines, table: pd.DataFrame, times: pd.Series) -> pd.DataFrame:
    seconds = times.dt.as_unit("s").astype("int64").to_numpy()
    outside = np.abs(seconds) > LAST_SECOND
    if outside.any():
        row = int(np.argmax(outside))
        raise DataError(
            f"{lines.at(row)}: time {times.iloc[row].isoformat()}{RANGE_HINT}"
            + more_rows(int(outside.sum()))
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
        raise DataError(f"{lines.at(row)}: {what} in column {name}" + more_rows(int(bad.sum())))
    if kind is int:
        numbers = values.to_numpy(dtype=np.float64)
        fractional = numbers != np.round(numbers)  # a count of 5.5 is a broken file, not 5
        if fractional.any():
            row = int(np.argmax(fractional))
            raise DataError(
                f"{lines.at(row)}: {numbers[row]:g} in column {name} is not "
                "a whole number" + more_rows(int(fractional.sum()))
            )
        return numbers.astype(np.int64)
    return values.to_numpy(dtype=np.float64)
