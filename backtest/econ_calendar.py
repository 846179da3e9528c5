"""The economic calendar: loading event files (project CSV or ForexFactory export), the
currencies a symbol moves with, and the news-blackout intervals and next event built from them.

Every loader returns the canonical events frame: a RangeIndex and the columns EVENT_COLUMNS,
sorted by `time` (datetime64[ns, UTC]); `currency` is an upper-case 3-letter code or "ALL"
(the event moves every currency), `impact` one of IMPACTS, `title` a str (may be empty).
Combining blackouts with trading sessions into entry/flat windows is not done here.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from backtest.csv_bars import text_encoding
from backtest.data import epoch_seconds
from backtest.errors import BacktestError, UsageError

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ("time", "currency", "impact", "title")
IMPACTS = ("low", "medium", "high", "holiday")
FORMATS = ("auto", "project", "forexfactory")
ALL = "ALL"

_PROJECT_HEADER = EVENT_COLUMNS
_FF_HEADER = ("title", "country", "date", "time", "impact")
_ACCEPTED_HEADERS = (
    "time,currency,impact,title (project format) or "
    "Title,Country,Date,Time,Impact,Forecast,Previous (ForexFactory export)"
)
# ForexFactory's labels, mapped once; "Non-Economic" (speeches, DST shifts) counts as low
_FF_IMPACTS = {
    "high": "high",
    "medium": "medium",
    "low": "low",
    "holiday": "holiday",
    "non-economic": "low",
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_FF_DATE = re.compile(r"^(\d{1,2})-(\d{1,2})-(\d{4})$")
_FF_CLOCK_12 = re.compile(r"^(\d{1,2}):(\d{2})\s*([ap]m)$", re.IGNORECASE)
_FF_CLOCK_24 = re.compile(r"^(\d{1,2}):(\d{2})$")
# events without a clock time: whole-day entries and the days of multi-day meetings
_FF_ALL_DAY = re.compile(r"^(?:all day|day \d+)?$", re.IGNORECASE)
# pandas holds times as int64 nanoseconds: years outside this range cannot be stored
_FIRST_YEAR, _LAST_YEAR = 1678, 2261
_PAIR = re.compile(r"^([A-Z]{3})([A-Z]{3})")


class CalendarError(BacktestError, ValueError):
    """A calendar file or setting that cannot be used.

    The message names the file, and for a bad row its line (header = line 1), the column
    and the value. `path` is the file; `row` the 1-based line, or None when no row is at fault.
    """

    def __init__(self, message: str, *, path: str | Path, row: int | None = None) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.row = row


@dataclass(frozen=True)
class CalendarEvent:
    """One calendar event; `time` is a tz-aware UTC pandas Timestamp."""

    time: pd.Timestamp
    currency: str
    impact: str
    title: str


@dataclass(frozen=True)
class _Row:
    """A data row as read: its physical line and its fields by lower-case header name."""

    line: int
    fields: dict[str, str]


# ---------------------------------------------------------------- loading


def load_calendar(path: str | Path, *, tz: str = "UTC", fmt: str = "auto") -> pd.DataFrame:
    """Read an economic calendar CSV into the canonical events frame (see module docstring).

    `fmt` is "project" (time,currency,impact,title; times in UTC unless they carry an
    offset), "forexfactory" (the site's weekly CSV export) or "auto" (chosen by the header).
    `tz` is the IANA zone ForexFactory times are written in (the zone chosen on the site when
    exporting); the project format ignores it. A UTF-8 BOM and UTF-16 are read. An empty or
    header-only file gives an empty frame. Raises CalendarError naming the file, line and value.
    """
    path = Path(path)
    zone = _zone(tz, path)
    if fmt not in FORMATS:
        raise CalendarError(f"{path}: format {fmt!r} is not one of {', '.join(FORMATS)}", path=path)
    lines = iter(_reader(path))
    header = next(lines, None)
    if header is None:
        return _frame([])
    names = [name.strip().strip('"').strip().lower() for name in header[1]]
    kind = _detect(path, names, fmt)
    rows = _rows(path, lines, names)
    if kind == "project":
        events = [_project_event(path, row) for row in rows]
    else:
        events = [event for row in rows if (event := _ff_event(path, row, zone)) is not None]
    return _frame(events)


def _zone(tz: str, path: Path) -> tzinfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise CalendarError(
            f"{path}: time zone {tz!r} is not an IANA name such as UTC, America/New_York "
            "or Europe/London",
            path=path,
        ) from None


def _reader(path: Path) -> _Lines:
    """The decoded file as csv rows with their line numbers; header first."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CalendarError(f"{path}: no such calendar file", path=path) from None
    except OSError as exc:
        raise CalendarError(f"{path}: cannot read the calendar file: {exc}", path=path) from None
    try:
        text = raw.decode(text_encoding(raw)).lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise CalendarError(
            f"{path}: not UTF-8 or UTF-16 text ({exc.reason} at byte {exc.start}); "
            "save it as UTF-8",
            path=path,
        ) from None
    return _Lines(text)


class _Lines:
    """Iterates (first physical line, fields) over the non-blank csv rows of a text.

    The line is counted from the reader, so blank lines and quoted line breaks inside a
    title do not shift the numbers in error messages.
    """

    def __init__(self, text: str) -> None:
        self._reader = csv.reader(io.StringIO(text, newline=""))

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        previous = 0
        for fields in self._reader:
            first, previous = previous + 1, self._reader.line_num
            if any(field.strip() for field in fields):
                yield first, fields


def _detect(path: Path, names: list[str], fmt: str) -> str:
    """The format of a header; fmt other than "auto" must match it."""
    present = set(names)
    if fmt in ("auto", "project") and present.issuperset(_PROJECT_HEADER):
        return "project"
    if fmt in ("auto", "forexfactory") and present.issuperset(_FF_HEADER):
        return "forexfactory"
    expected = {
        "auto": _ACCEPTED_HEADERS,
        "project": "time,currency,impact,title",
        "forexfactory": "Title,Country,Date,Time,Impact,Forecast,Previous",
    }[fmt]
    raise CalendarError(
        f"{path} line 1: unknown header {','.join(names)!r}; expected {expected}",
        path=path,
        row=1,
    )


def _rows(path: Path, lines: Iterator[tuple[int, list[str]]], names: list[str]) -> Iterator[_Row]:
    """The data rows by header name; a row with too few or too many fields is an error."""
    for line, fields in lines:
        if len(fields) != len(names):
            raise CalendarError(
                f"{path} line {line}: expected {len(names)} fields ({','.join(names)}), "
                f"found {len(fields)}",
                path=path,
                row=line,
            )
        yield _Row(line, {name: value.strip() for name, value in zip(names, fields, strict=True)})


def _fail(path: Path, row: _Row, message: str) -> CalendarError:
    return CalendarError(f"{path} line {row.line}: {message}", path=path, row=row.line)


# (epoch seconds, currency, impact, title) as parsed from one row
_Event = tuple[int, str, str, str]


def _project_event(path: Path, row: _Row) -> _Event:
    text = row.fields["time"]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(
            path, row, f"time {text!r} is not ISO 8601 (2024-03-08 13:30 or 2024-03-08T13:30:00Z)"
        ) from None
    if moment.tzinfo is None:  # the project format is UTC unless an offset says otherwise
        moment = moment.replace(tzinfo=UTC)
    impact = row.fields["impact"].lower()
    if impact not in IMPACTS:
        raise _fail(
            path, row, f"impact {row.fields['impact']!r} is not one of {', '.join(IMPACTS)}"
        )
    currency = _currency(path, row, "currency", "currency")
    return _seconds(path, row, moment, text), currency, impact, row.fields["title"]


def _ff_event(path: Path, row: _Row, zone: tzinfo) -> _Event | None:
    """One ForexFactory row, or None for a Tentative one (no time to black out around)."""
    clock = row.fields["time"]
    if clock.lower() == "tentative":
        logger.warning(
            "%s line %d: skipped %r on %s: its time is Tentative",
            path,
            row.line,
            row.fields["title"],
            row.fields["date"],
        )
        return None
    label = row.fields["impact"]
    impact = _FF_IMPACTS.get(label.lower())
    if impact is None:
        raise _fail(
            path, row, f"Impact {label!r} is not one of High, Medium, Low, Holiday, Non-Economic"
        )
    currency = _currency(path, row, "country", "Country")
    moment = _ff_datetime(path, row, zone)
    text = f"{row.fields['date']} {clock}"
    return _seconds(path, row, moment, text), currency, impact, row.fields["title"]


def _ff_datetime(path: Path, row: _Row, zone: tzinfo) -> datetime:
    """Date (MM-DD-YYYY) and Time (8:30am, 13:30, All Day, empty) read as wall time in zone.

    A wall time that occurs twice at the autumn switch is read as the first (fold=0); one
    skipped in spring is read with the offset before the switch, as zoneinfo does.
    """
    date_text, clock = row.fields["date"], row.fields["time"]
    date = _FF_DATE.match(date_text)
    hour_minute = _ff_clock(clock)
    if hour_minute is None:
        raise _fail(path, row, f"Time {clock!r} is not like 8:30am, 13:30, All Day or Tentative")
    bad_date = f"Date {date_text!r} is not a date written MM-DD-YYYY"
    if date is None:
        raise _fail(path, row, bad_date)
    month, day, year = (int(part) for part in date.groups())
    try:
        return datetime(year, month, day, *hour_minute, tzinfo=zone)
    except ValueError:  # 02-30-2024, 13-01-2024
        raise _fail(path, row, bad_date) from None


def _ff_clock(clock: str) -> tuple[int, int] | None:
    """(hour, minute) of a ForexFactory time; 00:00 for an event without one; None if bad."""
    if _FF_ALL_DAY.match(clock):
        return 0, 0
    if match := _FF_CLOCK_12.match(clock):
        hour, minute = int(match.group(1)), int(match.group(2))
        if not (1 <= hour <= 12 and minute < 60):
            return None
        return hour % 12 + (12 if match.group(3).lower() == "pm" else 0), minute
    if match := _FF_CLOCK_24.match(clock):
        hour, minute = int(match.group(1)), int(match.group(2))
        return (hour, minute) if hour < 24 and minute < 60 else None
    return None


def _currency(path: Path, row: _Row, column: str, label: str) -> str:
    value = row.fields[column]
    code = value.upper()
    if not _CURRENCY.match(code):
        raise _fail(path, row, f"{label} {value!r} is not a 3-letter currency code (A-Z) or ALL")
    return code


def _seconds(path: Path, row: _Row, moment: datetime, text: str) -> int:
    if not _FIRST_YEAR <= moment.year <= _LAST_YEAR:
        raise _fail(path, row, f"time {text!r} is outside {_FIRST_YEAR}..{_LAST_YEAR}")
    return int(moment.timestamp())


def _frame(events: list[_Event]) -> pd.DataFrame:
    seconds = np.array([event[0] for event in events], dtype=np.int64)
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(seconds, unit="s", utc=True).as_unit("ns"),
            "currency": pd.Series([event[1] for event in events], dtype=str),
            "impact": pd.Series([event[2] for event in events], dtype=str),
            "title": pd.Series([event[3] for event in events], dtype=str),
        }
    )
    # stable, so events at the same minute keep the file's order
    return frame.sort_values("time", kind="stable", ignore_index=True)


# ---------------------------------------------------------------- using the events


def symbol_currencies(
    symbol: str, base: str | None = None, profit: str | None = None
) -> tuple[str, ...]:
    """The currencies whose news moves `symbol`, base first, without repeats.

    `base` and `profit` (MT5's currency_base and currency_profit) win when given. Otherwise a
    name starting with six letters is read as a pair: "EURUSD.r" -> ("EUR", "USD"), "XAUUSD"
    -> ("XAU", "USD"). Any other name (US500, GER40, ...) gives ("USD",): most CFDs are quoted
    in dollars and US news moves them all; pass base/profit for anything else.
    """
    pair = _PAIR.match(symbol.strip().upper())
    guessed = pair.groups() if pair else ("USD", "USD")
    chosen = (
        (base or "").strip().upper() or guessed[0],
        (profit or "").strip().upper() or guessed[1],
    )
    return tuple(dict.fromkeys(chosen))


def blackout_intervals(
    events: pd.DataFrame,
    currencies: Iterable[str],
    *,
    impacts: Iterable[str] = ("high",),
    before_minutes: float,
    after_minutes: float,
) -> np.ndarray:
    """The news blackouts as merged [start, end] UTC epoch seconds, an int64 array (k, 2).

    Each event whose currency is in `currencies` (an event for ALL matches any; ALL among
    `currencies` matches every event) and whose impact is in `impacts` blocks
    [time - before_minutes, time + after_minutes]. Overlapping or touching intervals are
    merged, so the rows are sorted and disjoint.
    """
    before = _minutes_as_seconds("before_minutes", before_minutes)
    after = _minutes_as_seconds("after_minutes", after_minutes)
    times = epoch_seconds(events["time"][_selected(events, currencies, impacts)])
    if times.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    starts = np.sort(times) - before
    # equal widths, so the ends are sorted too and each one is the running maximum
    ends = starts + (before + after)
    opens = np.empty(starts.size, dtype=bool)
    opens[0] = True
    opens[1:] = starts[1:] > ends[:-1]
    first = np.flatnonzero(opens)
    last = np.append(first[1:] - 1, starts.size - 1)
    return np.column_stack((starts[first], ends[last])).astype(np.int64)


def _minutes_as_seconds(name: str, minutes: float) -> int:
    value = float(minutes)
    if not (np.isfinite(value) and value >= 0):
        raise UsageError(f"{name} must be a number of minutes >= 0, got {minutes!r}")
    return round(value * 60)


def next_event(
    events: pd.DataFrame,
    currencies: Iterable[str],
    *,
    after: float,
    impacts: Iterable[str] = ("high",),
) -> CalendarEvent | None:
    """The first matching event at or after `after` (UTC epoch seconds), or None.

    Events match as in blackout_intervals (currency in `currencies` or ALL, impact in
    `impacts`); of several at the same time the first in the file is returned.
    """
    # loaded frames are sorted already; sorting again keeps a hand-built frame correct
    chosen = events[_selected(events, currencies, impacts)].sort_values("time", kind="stable")
    seconds = epoch_seconds(chosen["time"])
    index = int(np.searchsorted(seconds, after, side="left"))
    if index == seconds.size:
        return None
    row = chosen.iloc[index]
    return CalendarEvent(
        time=row["time"], currency=row["currency"], impact=row["impact"], title=row["title"]
    )


def _selected(
    events: pd.DataFrame, currencies: Iterable[str], impacts: Iterable[str]
) -> np.ndarray:
    """A boolean mask of the events matching the currencies and impacts."""
    wanted_currencies = _codes(currencies)
    wanted_impacts = {impact.lower() for impact in _as_tuple(impacts)}
    unknown = sorted(wanted_impacts - set(IMPACTS))
    if unknown:
        raise UsageError(f"impacts {unknown} are not among {', '.join(IMPACTS)}")
    currency = events["currency"].to_numpy()
    by_currency = (
        np.ones(len(events), dtype=bool)
        if ALL in wanted_currencies
        else np.isin(currency, [*wanted_currencies, ALL])
    )
    return by_currency & np.isin(events["impact"].to_numpy(), list(wanted_impacts))


def _codes(currencies: Iterable[str]) -> set[str]:
    return {code.strip().upper() for code in _as_tuple(currencies)}


def _as_tuple(values: Iterable[str]) -> tuple[str, ...]:
    # a lone string is one value, not its letters ("USD", not "U", "S", "D")
    return (values,) if isinstance(values, str) else tuple(values)
