"""When the simulated market trades: each symbol's session on the server's clock, the server's
holidays, the daily break, and the wider spreads around the rollover.

A session (backtest.sessions) and the holidays become, once per feed, sorted open stretches in
UTC over the feed's span, so every question a call asks (open now? the last tick before this
closure? the spread factor here?) is a binary search. While the market is closed there are no
ticks, requests answer 10018 and nothing fires; on reopening the price jumps to where the bars
have moved meanwhile, as a gap.

Sessions are a `parse_sessions` table on the server's clock. Without one the forex default
applies (Sunday 17:00 to Friday 17:00 New York) and its daily break (FOREX_DEFAULT's) is not
enforced, so the simulator fills through it as the backtest does; `forex` enforces it, and a
written table is enforced as written.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from backtest.broker_clock import DAY, UTC_ZONE, WEEK, BrokerZone, parse_zone
from backtest.sessions import SessionTable, WeeklySession, parse_sessions

if TYPE_CHECKING:  # a feed hands itself to segments()
    from live.sim_terminal.market import SymbolFeed

logger = logging.getLogger(__name__)

FOREX = "forex"  # the sessions keyword: the forex default with its daily break enforced
Piece = tuple[float, float, float, float, int, bool]
_NO_WINDOWS = np.empty(0, dtype=np.int64)
_SETTINGS = (
    "server_tz",
    "sessions",
    "holidays",
    "rollover_spread_factor",
    "rollover_minutes",
)


@dataclass(frozen=True)
class MarketCalendar:
    """The simulator's market settings, parsed: the server's zone, the session table, whether
    its daily breaks close the market, the server's holidays (days since 1970-01-01 on its
    clock), and the rollover spread factor with its reach in seconds."""

    zone: BrokerZone = UTC_ZONE
    table: SessionTable = field(default_factory=SessionTable)
    enforce_breaks: bool = False
    holidays: tuple[int, ...] = ()
    rollover_factor: float = 1.0
    rollover_seconds: int = 0

    @classmethod
    def parse(
        cls,
        *,
        server_tz: str = "UTC",
        sessions: str = "",
        holidays: tuple[str, ...] | str = (),
        rollover_spread_factor: float = 1.0,
        rollover_minutes: int = 0,
        keys: Mapping[str, str] | None = None,
    ) -> MarketCalendar:
        """Validate the settings; errors (ValueError) name each by `keys` (the SimConfig
        field by default, the command line passes its option names)."""
        names = {name: name for name in _SETTINGS} | dict(keys or {})
        if str(server_tz).strip().lower() == "auto":
            raise ValueError(
                f"{names['server_tz']}: 'auto' is the trader's (it reads the offset from "
                "ticks); the simulator needs a zone, such as NY+7, Europe/Athens or UTC+2"
            )
        zone = parse_zone(server_tz, names["server_tz"])
        if isinstance(holidays, str):  # one comma-separated string
            holidays = tuple(part.strip() for part in holidays.split(",") if part.strip())
        text = str(sessions).strip()
        if text.lower() in ("", FOREX):
            table, enforce = SessionTable(), bool(text)
        else:
            table, enforce = parse_sessions(text, zone, names["sessions"]), True
        factor = _factor(rollover_spread_factor, names["rollover_spread_factor"])
        minutes = _minutes(rollover_minutes, names["rollover_minutes"])
        days = tuple(sorted({_day(text, names["holidays"]) for text in holidays}))
        return cls(zone, table, enforce, days, factor, minutes * 60)

    def bar_session(self, symbol: str) -> WeeklySession:
        """The session bars are made in: the daily break only stops trading (a bar straddling
        it still exists), so it is left out."""
        return replace(self.table.for_symbol(symbol), breaks=())

    def holiday_dates(self) -> tuple[str, ...]:
        """The holidays as ISO dates (server clock)."""
        return tuple(str(np.datetime64(day, "D")) for day in self.holidays)

    def hours(self, symbol: str, start: float, end: float) -> TradingHours:
        """`symbol`'s hours over [start, end) (a feed's bars), with a week's margin."""
        first, last = int(start) - WEEK, int(end) + WEEK
        full = _stretches(self.table.for_symbol(symbol), self.zone, self.holidays, first, last)
        trading = full
        if not self.enforce_breaks:
            trading = _stretches(self.bar_session(symbol), self.zone, self.holidays, first, last)
        windows = np.empty((0, 2), dtype=np.int64)
        if self.rollover_factor != 1.0 and self.rollover_seconds:
            windows = _rollover_windows(full, self.rollover_seconds)
        return TradingHours(trading, windows, self.rollover_factor)


class TradingHours:
    """One symbol's open stretches and rollover windows, (k, 2) arrays of UTC epochs."""

    def __init__(self, stretches: np.ndarray, windows: np.ndarray, factor: float) -> None:
        self.opens, self.closes = stretches[:, 0], stretches[:, 1]
        self.wide_from = windows[:, 0] if len(windows) else _NO_WINDOWS
        self.wide_until = windows[:, 1] if len(windows) else _NO_WINDOWS
        self._edges = np.sort(np.concatenate((self.wide_from, self.wide_until)))
        self.factor = factor

    # ------------------------------------------------------------ open or closed

    def is_open(self, moment: float) -> bool:
        i = int(np.searchsorted(self.opens, moment, side="right")) - 1
        return i >= 0 and moment < self.closes[i]

    def open_mask(self, moments: np.ndarray) -> np.ndarray:
        """Whether the market is open at each UTC moment."""
        i = np.searchsorted(self.opens, moments, side="right") - 1
        inside = i >= 0
        inside[inside] = moments[inside] < self.closes[i[inside]]
        return inside

    def quote_moment(self, moment: float) -> float:
        """The moment of the last tick seen at `moment`: itself while the market is open,
        a second before the close while it is closed (the price stays where it stopped)."""
        i = int(np.searchsorted(self.opens, moment, side="right")) - 1
        if i < 0 or moment < self.closes[i]:
            return moment
        return float(self.closes[i]) - 1.0

    # ------------------------------------------------------------ the rollover spread

    def spread_factor(self, moment: float) -> float:
        """How much wider the spread is at `moment` (1.0 outside the rollover)."""
        if not len(self.wide_from):
            return 1.0
        i = int(np.searchsorted(self.wide_from, moment, side="right")) - 1
        return self.factor if i >= 0 and moment < self.wide_until[i] else 1.0

    def spreads(self, spreads: np.ndarray, moments: np.ndarray) -> np.ndarray:
        """Spreads (points) at each moment, widened inside the rollover windows."""
        if not len(self.wide_from):
            return spreads
        i = np.searchsorted(self.wide_from, moments, side="right") - 1
        wide = i >= 0
        wide[wide] = moments[wide] < self.wide_until[i[wide]]
        return np.where(wide, np.rint(spreads * self.factor), spreads).astype(np.int64)

    def widen(self, spread: int, moment: float) -> int:
        """One spread (points) at `moment`."""
        factor = self.spread_factor(moment)
        return spread if factor == 1.0 else int(np.rint(spread * factor))

    # ------------------------------------------------------------ the path while open

    def segments(self, feed: SymbolFeed, start: float, stop: float) -> list[Piece]:
        """The feed's bid path in (start, stop] where the market is open (SymbolFeed.segments
        for the fields); a reopening inside a bar is a gap from the price the closure froze."""
        pieces: list[Piece] = []
        first = int(np.searchsorted(self.closes, start, side="right"))
        last = int(np.searchsorted(self.opens, stop, side="right"))
        for opened, closed in zip(self.opens[first:last], self.closes[first:last], strict=True):
            if opened > start:
                pieces.extend(self._reopening(feed, float(opened)))
            inside = feed.path_segments(max(float(opened), start), min(float(closed), stop))
            pieces.extend(piece for piece in inside if piece[0] < closed)
        return [part for piece in pieces for part in self._widened(piece)]

    def _reopening(self, feed: SymbolFeed, opened: float) -> list[Piece]:
        """The jump at a reopening inside a bar (one at a bar's open is the feed's own gap,
        but the closure may have frozen an older price than the bar before's close)."""
        if not feed.inside_bar(opened):
            return []  # no price until the next bar opens: that bar's gap comes with its path
        frozen = feed.raw_quote(self.quote_moment(opened - 1e-3))
        _, bid, spread = feed.raw_quote(opened)
        return [] if frozen is None else [(opened, frozen[1], opened, bid, spread, True)]

    def _widened(self, piece: Piece) -> list[Piece]:
        """A piece cut at the rollover windows' edges, each part with its own spread."""
        t_a, a, t_b, b, spread, gap = piece
        if not len(self.wide_from):
            return [piece]
        inside = self._edges[
            np.searchsorted(self._edges, t_a, side="right") : np.searchsorted(self._edges, t_b)
        ]
        cuts = [t_a, *(float(edge) for edge in inside), t_b]
        parts: list[Piece] = []
        for left, right in itertools.pairwise(cuts):
            at_left = a if t_b == t_a else a + (b - a) * (left - t_a) / (t_b - t_a)
            at_right = b if t_b == t_a else a + (b - a) * (right - t_a) / (t_b - t_a)
            parts.append((left, at_left, right, at_right, self.widen(spread, left), gap))
        return parts


# ---------------------------------------------------------------- building the stretches


@lru_cache(maxsize=64)
def _stretches(
    session: WeeklySession, zone: BrokerZone, holidays: tuple[int, ...], start: int, end: int
) -> np.ndarray:
    """Open stretches of `session` in [start, end) without the server's holidays; cached, as
    every symbol of a terminal (and every test's terminal) asks for the same ones."""
    stretches = session.stretches(start, end)
    if holidays:
        stretches = _cut(stretches, _holiday_spans(zone, holidays, start, end))
    stretches.setflags(write=False)
    return stretches


def _holiday_spans(
    zone: BrokerZone, holidays: tuple[int, ...], start: int, end: int
) -> list[tuple[int, int]]:
    """Each holiday (a server-clock day) as a UTC (from, until) span, those in [start, end)."""
    walls = np.array([[day * DAY, (day + 1) * DAY] for day in holidays], dtype=np.int64)
    spans = np.asarray(zone.to_utc(walls.ravel()), dtype=np.int64).reshape(-1, 2)
    return [(int(a), int(b)) for a, b in spans if b > start and a < end]


def _cut(stretches: np.ndarray, closed: list[tuple[int, int]]) -> np.ndarray:
    """Open stretches minus closed spans."""
    kept: list[tuple[int, int]] = []
    for opened, closes in stretches:
        parts = [(int(opened), int(closes))]
        for a, b in closed:
            parts = [
                part
                for x, y in parts
                for part in ((x, min(y, a)), (max(x, b), y))
                if part[0] < part[1]
            ]
        kept.extend(parts)
    return np.array(kept, dtype=np.int64).reshape(-1, 2)


def _rollover_windows(full: np.ndarray, reach: int) -> np.ndarray:
    """Every closure (a daily break, the weekend, a holiday) widened by `reach` seconds on
    both sides, merged where they overlap: spreads are wide before a close, through it (when
    trading goes on through an unenforced break) and after the reopening."""
    if len(full) < 2:
        return np.empty((0, 2), dtype=np.int64)
    windows = np.column_stack((full[:-1, 1] - reach, full[1:, 0] + reach))
    merged = [list(windows[0])]
    for begin, finish in windows[1:]:
        if begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], finish)
        else:
            merged.append([begin, finish])
    return np.array(merged, dtype=np.int64)


# ---------------------------------------------------------------- validating the settings


def _factor(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1.0:
        raise ValueError(f"{key} must be a number >= 1 (1 = off), got {value!r}")
    return float(value)


def _minutes(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a whole number of minutes >= 0 (0 = off), got {value!r}")
    return value


def _day(text: object, key: str) -> int:
    """An ISO date as days since 1970-01-01."""
    try:
        return date.fromisoformat(str(text).strip()).toordinal() - date(1970, 1, 1).toordinal()
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a date (YYYY-MM-DD)") from None
