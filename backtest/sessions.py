"""Trading sessions: when a symbol's market is open, per symbol, on the broker's clock.

The MT5 Python API does not expose sessions, so they come from a table (the `SESSIONS`
setting, `--sessions` in the backtest). One entry per group of symbols, in broker time:

    EURUSD,GBPUSD=Mon 00:00-Fri 23:55 break 23:57-00:02; XAUUSD=Mon 01:00-Fri 23:55; *=...

`*` is every symbol not named. A week runs from the opening weekday and time to the closing
one (Sunday to Saturday; it may not wrap past Saturday); each `break HH:MM-HH:MM` closes the
market daily (it may wrap midnight). Without a table the forex default applies, defined in
New York time so it holds at any broker: Sunday 17:00 to Friday 17:00 New York (about 22:00
UTC in winter, 21:00 in summer), closed daily 16:55-17:00 before the rollover (so the bar
that opens at the broker's midnight can be traded at its open).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from backtest.broker_clock import DAY, WEEK, BrokerZone, parse_zone
from backtest.errors import BacktestError

MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
_SUNDAY_EPOCH = 3 * DAY  # 1970-01-04 was a Sunday
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_WEEK = re.compile(r"^([a-z]+)\s+(\d{1,2}):(\d{2})\s*-\s*([a-z]+)\s+(\d{1,2}):(\d{2})$", re.I)
DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


class SessionError(BacktestError, ValueError):
    """A session table, or trading hours, that cannot be used; names the key and the part."""


@dataclass(frozen=True)
class WeeklySession:
    """One symbol's trading week on a zone's clock.

    open_minute/close_minute count minutes from Sunday 00:00 (open < close); breaks are
    daily (start, end) minutes of the day, end < start wrapping midnight; holidays are
    dates (days since 1970-01-01 on the zone's clock) closed all day.
    """

    zone: BrokerZone
    open_minute: int
    close_minute: int
    breaks: tuple[tuple[int, int], ...] = ()
    holidays: frozenset[int] = field(default_factory=frozenset)

    def is_open(self, utc_seconds: np.ndarray | float) -> np.ndarray:
        """Whether the market is open at each UTC epoch."""
        epochs = np.atleast_1d(np.asarray(utc_seconds, dtype=np.float64))
        wall = np.floor(epochs).astype(np.int64) + self.zone.offsets(epochs)
        minute_of_week = ((wall - _SUNDAY_EPOCH) % WEEK) // 60
        minute_of_day = (wall % DAY) // 60
        open_ = (minute_of_week >= self.open_minute) & (minute_of_week < self.close_minute)
        for start, end in self.breaks:
            open_ &= ~_within_daily(minute_of_day, start, end)
        if self.holidays:
            open_ &= ~np.isin(wall // DAY, np.fromiter(self.holidays, dtype=np.int64))
        return open_

    def stretches(self, start: float, end: float) -> np.ndarray:
        """The open stretches overlapping [start, end) as (open, close) UTC epochs, shape
        (k, 2); a stretch cut by the range is clipped to it."""
        candidates = self._boundaries(start, end)
        if not len(candidates):
            return np.empty((0, 2), dtype=np.int64)
        states = self.is_open(candidates)
        changes = np.flatnonzero(np.diff(states.astype(np.int8), prepend=np.int8(-1)) != 0)
        points, opened = candidates[changes], states[changes]
        ends = np.append(points[1:], int(end))
        return np.column_stack([points[opened], ends[opened]]).astype(np.int64)

    def week_closes(self, start: float, end: float) -> np.ndarray:
        """UTC epochs of the weekly closes in [start, end + a week) (the Friday closes)."""
        return self._wall_marks(start, end + WEEK, [self.close_minute * 60], WEEK)

    def _boundaries(self, start: float, end: float) -> np.ndarray:
        """Every moment in [start, end) where the market may open or close, plus start."""
        daily = [m * 60 for pair in self.breaks for m in pair] + [0]
        weekly = [self.open_minute * 60, self.close_minute * 60]
        marks = np.concatenate(
            [
                self._wall_marks(start, end, daily, DAY),
                self._wall_marks(start, end, weekly, WEEK),
            ]
        )
        marks = marks[(marks > start) & (marks < end)]
        return np.unique(np.append(marks, int(np.floor(start)))).astype(np.int64)

    def _wall_marks(self, start: float, end: float, offsets: list[int], period: int) -> np.ndarray:
        """UTC epochs of wall-clock marks (seconds into each period) between start and end."""
        origin = _SUNDAY_EPOCH if period == WEEK else 0
        first = (int(start) + self.zone.offset_at(start) - origin) // period - 1
        last = (int(end) + self.zone.offset_at(end) - origin) // period + 1
        periods = np.arange(first, last + 1, dtype=np.int64) * period + origin
        walls = (periods[:, None] + np.asarray(offsets, dtype=np.int64)[None, :]).ravel()
        return np.asarray(self.zone.to_utc(walls), dtype=np.int64)


NEW_YORK = parse_zone("America/New_York")
FOREX_DEFAULT = WeeklySession(
    NEW_YORK,
    open_minute=0 * MINUTES_PER_DAY + 17 * 60,
    close_minute=5 * MINUTES_PER_DAY + 17 * 60,
    breaks=((16 * 60 + 55, 17 * 60),),
)


@dataclass(frozen=True)
class SessionTable:
    """Sessions per symbol: the named entries, then `*`, then the forex default."""

    by_symbol: dict[str, WeeklySession] = field(default_factory=dict)
    fallback: WeeklySession = FOREX_DEFAULT

    def for_symbol(self, symbol: str) -> WeeklySession:
        """The symbol's session; names match in any case (EURUSDm, eurusdm)."""
        return self.by_symbol.get(symbol.upper(), self.fallback)


def parse_sessions(text: str, zone: BrokerZone, key: str = "SESSIONS") -> SessionTable:
    """The table written in `key` (see the module docstring), on the broker's clock `zone`."""
    by_symbol: dict[str, WeeklySession] = {}
    fallback = FOREX_DEFAULT
    for entry in filter(None, (part.strip() for part in str(text).split(";"))):
        names, sep, spec = entry.partition("=")
        if not sep or not names.strip():
            raise SessionError(f"{key}: {entry!r} is not SYMBOLS=Day HH:MM-Day HH:MM")
        session = _parse_session(spec.strip(), zone, f"{key} ({names.strip()})")
        for name in (n.strip().upper() for n in names.split(",")):
            if not name:
                raise SessionError(f"{key}: {entry!r} names an empty symbol")
            if name in by_symbol or (name == "*" and fallback is not FOREX_DEFAULT):
                raise SessionError(f"{key}: {name} is given twice")
            if name == "*":
                fallback = session
            else:
                by_symbol[name] = session
    return SessionTable(by_symbol, fallback)


def _parse_session(spec: str, zone: BrokerZone, where: str) -> WeeklySession:
    week, *breaks = (part.strip() for part in re.split(r"\bbreak\b", spec, flags=re.IGNORECASE))
    found = _WEEK.match(week)
    if not found:
        raise SessionError(f"{where}: {week!r} is not 'Mon 00:00-Fri 23:55'")
    open_day, open_h, open_m, close_day, close_h, close_m = found.groups()
    opening = _weekday(open_day, where) * MINUTES_PER_DAY + _minute(open_h, open_m, where)
    closing = _weekday(close_day, where) * MINUTES_PER_DAY + _minute(close_h, close_m, where)
    if closing <= opening:
        raise SessionError(f"{where}: {week!r} is inverted (the close is not after the open)")
    pauses = tuple(_daily_range(text, where) for text in breaks)
    _refuse_overlap(pauses, where)
    return WeeklySession(zone, opening, closing, pauses)


def parse_hours(text: str, key: str = "TRADE_HOURS") -> tuple[tuple[int, int], ...]:
    """Daily ranges `08:00-12:00,13:00-20:00` as (start, end) minutes; each must run
    forwards (write an overnight range as two) and none may overlap. Empty: all day."""
    ranges = tuple(
        _daily_range(part.strip(), key, wrap=False) for part in str(text).split(",") if part.strip()
    )
    _refuse_overlap(ranges, key)
    return ranges


def _daily_range(text: str, where: str, *, wrap: bool = True) -> tuple[int, int]:
    found = _HOURS.match(text)
    if not found:
        raise SessionError(f"{where}: {text!r} is not HH:MM-HH:MM")
    start = _minute(*found.groups()[:2], where)
    end = _minute(*found.groups()[2:], where)
    if start == end or (not wrap and end < start):
        raise SessionError(
            f"{where}: {text!r} is inverted or empty (the end is not after the start)"
        )
    return start, end


def _refuse_overlap(ranges: tuple[tuple[int, int], ...], where: str) -> None:
    minutes = np.zeros(MINUTES_PER_DAY, dtype=np.int8)
    for start, end in ranges:
        covered = _within_daily(np.arange(MINUTES_PER_DAY), start, end)
        if (minutes[covered] > 0).any():
            raise SessionError(
                f"{where}: {clock_text(start)}-{clock_text(end)} overlaps another range"
            )
        minutes[covered] += 1


def _within_daily(minute_of_day: np.ndarray, start: int, end: int) -> np.ndarray:
    if start < end:
        return (minute_of_day >= start) & (minute_of_day < end)
    return (minute_of_day >= start) | (minute_of_day < end)


def within_hours(
    ranges: tuple[tuple[int, int], ...], zone: BrokerZone, utc_seconds: np.ndarray
) -> np.ndarray:
    """Whether each UTC epoch falls inside the daily `ranges` on the zone's clock."""
    epochs = np.asarray(utc_seconds, dtype=np.int64)
    if not ranges:
        return np.ones(epochs.shape, dtype=bool)
    minute_of_day = ((epochs + zone.offsets(epochs)) % DAY) // 60
    inside = np.zeros(epochs.shape, dtype=bool)
    for start, end in ranges:
        inside |= _within_daily(minute_of_day, start, end)
    return inside


def _weekday(text: str, where: str) -> int:
    """Mon or Monday (any case)."""
    name = text.lower()
    for number, (short, full) in enumerate(zip(WEEKDAYS, DAY_NAMES, strict=True)):
        if name in (short, full):
            return number
    raise SessionError(f"{where}: unknown weekday {text!r}")


def _minute(hours: str, minutes: str, where: str) -> int:
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise SessionError(f"{where}: {hours}:{minutes} is not a time of day")
    return h * 60 + m


def clock_text(minute: int) -> str:
    """A minute of the day as HH:MM."""
    return f"{minute // 60:02d}:{minute % 60:02d}"
