"""Trading windows: when a strategy may enter and when it must be flat, beyond its signals.

One rule for the backtest and the live trader, so both act alike on the same bars. A
decision on bar t acts at the next bar's open m (after a weekend, the first bar of the week;
the live trader decides bar t when that bar has opened):

- an entry (a new position, a flip's new side, an `entry` re-entry or a scale-in) is refused
  when m is outside the trade hours, in the first or last minutes of a session, or inside a
  news blackout; a position already held is kept, a flip only closes. A refused entry is
  not taken later (its stops and size were the refused bar's): the position stays flat until
  the strategy's next action, a changed position or an `entry` flag on a bar that may enter;
- the position is closed when the bar starting at m, [m, m + width), reaches into a flat
  window: the minutes before the weekly close (FLAT_BEFORE_WEEKEND) and, with news_flatten,
  a news blackout. Closing at the open of the bar that holds the flat moment never holds a
  position past it, whatever the timeframe. After the window, as after a refused entry, the
  strategy's next action opens again.

A minimum trade duration (`min_trade_seconds`, `backtest.min_hold`) is applied first: the
windows' flattening outweighs it.

Times are UTC epochs; hours are read on the broker's clock (`backtest.broker_clock`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from backtest.broker_clock import UTC_ZONE, WEEK, BrokerZone
from backtest.data import common_step, epoch_seconds
from backtest.econ_calendar import IMPACTS
from backtest.errors import UsageError
from backtest.min_hold import hold_minimum
from backtest.sessions import (
    SessionTable,
    WeeklySession,
    clock_text,
    parse_hours,
    parse_sessions,
    within_hours,
)
from backtest.signals import Signals

_EMPTY = np.empty((0, 2), dtype=np.int64)


@dataclass(frozen=True)
class TradingRules:
    """The window settings (all off by default). Minutes are whole or fractional minutes."""

    zone: BrokerZone = UTC_ZONE
    sessions: SessionTable = field(default_factory=SessionTable)
    trade_hours: tuple[tuple[int, int], ...] = ()
    no_entry_after_open_min: float = 0.0
    no_entry_before_close_min: float = 0.0
    flat_before_weekend_min: float | None = None
    calendar: pd.DataFrame | None = field(default=None, compare=False)
    news_before_min: float = 0.0
    news_after_min: float = 0.0
    news_impacts: tuple[str, ...] = ("high",)
    news_flatten: bool = False
    min_trade_seconds: float = 0.0

    @property
    def active(self) -> bool:
        """Whether any rule can change a decision."""
        return self.min_trade_seconds > 0 or self.windowed

    @property
    def windowed(self) -> bool:
        """Whether a window rule (hours, session edges, weekend, news) is set."""
        return bool(
            self.trade_hours
            or self.no_entry_after_open_min
            or self.no_entry_before_close_min
            or self.flat_before_weekend_min is not None
            or self._news
        )

    def describe(self) -> dict[str, object]:
        """The settings as plain values (for the --json document and logs)."""
        return {
            "broker_tz": self.zone.name,
            "sessions": "custom" if self.sessions.by_symbol else "default",
            "trade_hours": ",".join(
                f"{clock_text(a)}-{clock_text(b)}" for a, b in self.trade_hours
            ),
            "no_entry_after_open_min": self.no_entry_after_open_min,
            "no_entry_before_close_min": self.no_entry_before_close_min,
            "flat_before_weekend_min": self.flat_before_weekend_min,
            "calendar_events": 0 if self.calendar is None else len(self.calendar),
            "news_before_min": self.news_before_min,
            "news_after_min": self.news_after_min,
            "news_impacts": list(self.news_impacts),
            "news_flatten": self.news_flatten,
            "min_trade_seconds": self.min_trade_seconds,
        }

    @property
    def _news(self) -> bool:
        return self.calendar is not None and (self.news_before_min or self.news_after_min) > 0

    def windows(
        self, symbol: str, currencies: tuple[str, ...], start: float, end: float
    ) -> SymbolWindows:
        """The windows of one symbol between two UTC epochs (a week of margin each side)."""
        start, end = float(start) - WEEK, float(end) + WEEK
        session = self.sessions.for_symbol(symbol)
        no_entry = [self._session_edges(session, start, end)]
        flat = [self._weekend(session, start, end)]
        news = self._blackouts(currencies, start, end)
        no_entry.append(news)
        if self.news_flatten:
            flat.append(news)
        return SymbolWindows(
            symbol=symbol,
            zone=self.zone,
            trade_hours=self.trade_hours,
            no_entry=_merge(np.concatenate(no_entry)),
            flat=_merge(np.concatenate(flat)),
            news=news,
            span=(start, end),
        )

    def _session_edges(self, session: WeeklySession, start: float, end: float) -> np.ndarray:
        after, before = self.no_entry_after_open_min * 60, self.no_entry_before_close_min * 60
        if not (after or before):
            return _EMPTY
        stretches = session.stretches(start, end)
        edges = []
        if after:
            edges.append(np.column_stack([stretches[:, 0], stretches[:, 0] + after]))
        if before:
            edges.append(np.column_stack([stretches[:, 1] - before, stretches[:, 1]]))
        return np.concatenate(edges).astype(np.int64)

    def _weekend(self, session: WeeklySession, start: float, end: float) -> np.ndarray:
        if self.flat_before_weekend_min is None:
            return _EMPTY
        closes = session.week_closes(start, end)
        opens = session.stretches(float(closes[0]), float(closes[-1]) + 2 * WEEK)[:, 0]
        # the weekly reopening: the first stretch opening after each close (the close itself
        # if none does, which only a broken table can cause)
        later = np.searchsorted(opens, closes, side="right")
        reopens = np.where(later < len(opens), opens[np.minimum(later, len(opens) - 1)], closes)
        # at least a second before the close, so 0 still closes on the week's last bar
        flat_from = closes - max(round(self.flat_before_weekend_min * 60), 1)
        return np.column_stack([flat_from, reopens]).astype(np.int64)

    def _blackouts(self, currencies: tuple[str, ...], start: float, end: float) -> np.ndarray:
        if not self._news:
            return _EMPTY
        from backtest.econ_calendar import blackout_intervals

        intervals = blackout_intervals(
            self.calendar,
            currencies,
            impacts=self.news_impacts,
            before_minutes=self.news_before_min,
            after_minutes=self.news_after_min,
        )
        keep = (intervals[:, 1] >= start) & (intervals[:, 0] <= end)
        kept = np.asarray(intervals[keep], dtype=np.int64).reshape(-1, 2).copy()
        kept[:, 1] += 1  # a blackout's end is inside it (the event itself with 0 after)
        return kept


def _merge(intervals: np.ndarray) -> np.ndarray:
    """Sorted, non-overlapping [start, end) intervals covering the same moments."""
    intervals = intervals[intervals[:, 1] > intervals[:, 0]]
    if not len(intervals):
        return _EMPTY
    intervals = intervals[np.argsort(intervals[:, 0], kind="stable")]
    reach = np.maximum.accumulate(intervals[:, 1])
    new = np.concatenate(([True], intervals[1:, 0] > reach[:-1]))
    starts = intervals[new, 0]
    ends = reach[np.append(np.flatnonzero(new)[1:] - 1, len(intervals) - 1)]
    return np.column_stack([starts, ends]).astype(np.int64)


def _inside(intervals: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """Whether each moment falls in one of the merged [start, end) intervals."""
    if not len(intervals):
        return np.zeros(moments.shape, dtype=bool)
    k = np.searchsorted(intervals[:, 0], moments, side="right") - 1
    return (k >= 0) & (moments < intervals[np.maximum(k, 0), 1])


def _overlapping(intervals: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Whether each span [start, start + width) meets one of the merged intervals."""
    if not len(intervals):
        return np.zeros(starts.shape, dtype=bool)
    k = np.searchsorted(intervals[:, 0], starts + width, side="left") - 1
    return (k >= 0) & (intervals[np.maximum(k, 0), 1] > starts)


@dataclass(frozen=True)
class SymbolWindows:
    """One symbol's merged no-entry and flat intervals ([start, end) UTC epochs)."""

    symbol: str
    zone: BrokerZone
    trade_hours: tuple[tuple[int, int], ...]
    no_entry: np.ndarray
    flat: np.ndarray
    news: np.ndarray
    span: tuple[float, float]

    def covers(self, start: float, end: float) -> bool:
        return self.span[0] <= start and end <= self.span[1] - WEEK / 2

    def entry_blocked(self, moments: np.ndarray) -> np.ndarray:
        """Whether an entry acting at each UTC epoch is refused."""
        moments = np.asarray(moments, dtype=np.int64)
        outside_hours = ~within_hours(self.trade_hours, self.zone, moments)
        return outside_hours | _inside(self.no_entry, moments)

    def flat_due(self, moments: np.ndarray, width: int) -> np.ndarray:
        """Whether a position must be closed at each bar opening at `moments`."""
        return _overlapping(self.flat, np.asarray(moments, dtype=np.int64), int(width))

    def next_blackout(self, after: float) -> tuple[int, int] | None:
        """The next news blackout [start, end) that has not ended by `after`."""
        later = self.news[self.news[:, 1] > after]
        return (int(later[0, 0]), int(later[0, 1])) if len(later) else None

    def restrict(
        self,
        signals: Signals,
        times: np.ndarray,
        width: int,
        next_open: float | None = None,
        *,
        held_at_start: bool = False,
    ) -> Signals:
        """`signals` with the windows applied (see the module docstring). `times` are the
        bars' open times in UTC epoch seconds; `next_open` the open of the bar after the
        last (a live trader knows it: the bar forming now). `held_at_start`: the first bar's
        position is taken as held (a live trader's bars start in the middle of a run)."""
        acting = acting_moments(times, width, next_open)
        flat = self.flat_due(acting, width)
        blocked = self.entry_blocked(acting) | flat
        if not blocked.any():
            return signals
        position = _restricted_positions(signals, blocked, flat, held_at_start)
        return replace(
            signals,
            position=position.astype(signals.position.dtype),
            entry=signals.entry & ~blocked,
            size=_restricted_sizes(signals.size, blocked, position),
        )


def refuse_entries(signals: Signals, blocked: np.ndarray) -> Signals:
    """`signals` with the entries decided on `blocked` bars refused, as a window refuses
    them (a held position kept, a flip only closes, nothing taken later): what a portfolio's
    limits do to a symbol's entries (`backtest.portfolio`)."""
    if not blocked.any():
        return signals
    flat = np.zeros(len(blocked), dtype=bool)
    position = _restricted_positions(signals, blocked, flat, held_at_start=False)
    return replace(
        signals,
        position=position.astype(signals.position.dtype),
        entry=signals.entry & ~blocked,
        size=_restricted_sizes(signals.size, blocked, position),
    )


def _restricted_positions(
    signals: Signals, blocked: np.ndarray, flat: np.ndarray, held_at_start: bool
) -> np.ndarray:
    """The positions once refused entries are refused: from each bar that acts freely (or
    is flat) the position is the strategy's while its wish stays the same, else flat. A
    refused entry is not taken later: the strategy's next action decides."""
    wanted = signals.position.astype(np.int64)
    n = len(wanted)
    free_action = signals.actions() & ~blocked
    resets = free_action | flat
    start = np.where(flat, 0, wanted)
    if not resets[0]:  # the first bar neither acts nor is flat: held, or not, as told
        start[0] = wanted[0] if held_at_start else 0
    resets[0] = True
    last_reset = np.maximum.accumulate(np.where(resets, np.arange(n), 0))
    changes = np.concatenate(([0], np.cumsum(wanted[1:] != wanted[:-1])))
    unchanged = changes == changes[last_reset]
    return np.where(unchanged, start[last_reset], 0)


def _restricted_sizes(size: np.ndarray, blocked: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Sizes with each scale-in asked on a refused bar taken out until the size asked
    changes again (a refused scale-in is not taken later either)."""
    finite = np.isfinite(size)
    if not (finite & blocked).any():
        return size
    asked = pd.Series(size).ffill().to_numpy()
    before = np.concatenate(([np.nan], asked[:-1]))
    changes = np.flatnonzero(finite & ~(size == before))
    entries = np.flatnonzero((position != 0) & (np.concatenate(([0], position[:-1])) != position))
    out, in_force = size.copy(), 1.0
    bounds = np.append(changes, len(size))
    marks = sorted({*changes.tolist(), *entries.tolist()})
    for t in marks:
        if t in entries:
            in_force = 1.0 if not finite[t] else float(size[t])
            continue
        value = float(size[t])
        if blocked[t] and value > in_force and position[t] != 0:
            end = bounds[np.searchsorted(bounds, t, side="right")]
            out[t:end][finite[t:end]] = np.nan
        else:
            in_force = value
    return out


def acting_moments(times: np.ndarray, width: int, next_open: float | None = None) -> np.ndarray:
    """When each bar's decision acts: the next bar's open (after a weekend, Sunday's), for
    the last bar `next_open`, else one bar width after it."""
    times = np.asarray(times, dtype=np.int64)
    last = times[-1] + int(width) if next_open is None else int(next_open)
    return np.append(times[1:], max(last, times[-1] + 1)) if len(times) else times


def bar_seconds(bars: pd.DataFrame) -> int:
    """The bars' width: their most common spacing (a week's gap is not a bar)."""
    return int(common_step(bars) or 60)


def restrict_to_windows(
    rules: TradingRules,
    signals: Signals,
    bars: pd.DataFrame,
    symbol: str,
    currencies: tuple[str, ...],
    windows: SymbolWindows | None = None,
    next_open: float | None = None,
    *,
    held_at_start: bool = False,
) -> tuple[Signals, SymbolWindows | None]:
    """Apply `rules` to a strategy's signals on `bars`; the windows are returned so a
    caller deciding bar after bar can keep them (pass them back while they cover).
    `next_open`: the open of the bar after the last one, when known (live)."""
    if not rules.active or len(bars) == 0:
        return signals, windows
    times = epoch_seconds(bars["time"])
    width = bar_seconds(bars)
    if rules.min_trade_seconds > 0:
        acting = acting_moments(times, width, next_open)
        signals = hold_minimum(
            signals, acting, rules.min_trade_seconds, held_at_start=held_at_start
        )
    if not rules.windowed:
        return signals, windows
    first, last = float(times[0]), float(times[-1] + 2 * width)
    if next_open is not None:
        last = max(last, float(next_open) + width)
    if windows is None or not windows.covers(first, last):
        windows = rules.windows(symbol, currencies, first, last)
    restricted = windows.restrict(signals, times, width, next_open, held_at_start=held_at_start)
    return restricted, windows


# settings read as they are, under the same names on LiveConfig and the backtest's options
PLAIN_SETTINGS = (
    "no_entry_after_open_min",
    "no_entry_before_close_min",
    "flat_before_weekend_min",
    "news_before_min",
    "news_after_min",
    "news_flatten",
    "min_trade_seconds",
)


def rules_from_settings(
    source: object, zone: BrokerZone, calendar: pd.DataFrame | None, keys: dict[str, str]
) -> TradingRules:
    """TradingRules from an object holding the settings by name (`sessions`, `trade_hours`,
    `news_impact` as text, the PLAIN_SETTINGS as values): LiveConfig, or the backtest's
    parsed options. `keys` names the texts for errors (SessionError / ValueError)."""
    return TradingRules(
        zone=zone,
        sessions=parse_sessions(source.sessions, zone, keys["sessions"]),
        trade_hours=parse_hours(source.trade_hours, keys["trade_hours"]),
        news_impacts=parse_impacts(source.news_impact, keys["news_impact"]),
        calendar=calendar,
        **{name: getattr(source, name) for name in PLAIN_SETTINGS},
    )


def parse_impacts(text: str, key: str) -> tuple[str, ...]:
    """`high,medium` as a tuple of calendar impacts; ValueError naming `key` otherwise."""
    impacts = tuple(part.strip().lower() for part in str(text).split(",") if part.strip())
    unknown = [impact for impact in impacts if impact not in IMPACTS]
    if unknown or not impacts:
        given = ", ".join(unknown) or "nothing"
        raise UsageError(f"{key}: {given} is not one of {', '.join(IMPACTS)}")
    return impacts


def ensure_broker_time(bars: pd.DataFrame, zone: BrokerZone) -> pd.DataFrame:
    """`bars` as they are when they carry `broker_time`, else with it (one copy, made once
    by whoever runs a strategy many times on the same bars)."""
    return bars if "broker_time" in bars.columns else with_broker_time(bars, zone)


def with_broker_time(bars: pd.DataFrame, zone: BrokerZone) -> pd.DataFrame:
    """`bars` plus a `broker_time` column: each bar's open on the broker's clock (naive), for
    strategies whose logic is in broker hours (`time` stays UTC)."""
    return bars.assign(broker_time=zone.local_times(bars["time"]).to_numpy())


def symbol_currencies(spec: object) -> tuple[str, ...]:
    """The currencies a symbol's news moves: its base and profit currencies."""
    from backtest.econ_calendar import symbol_currencies as currencies_of

    return currencies_of(
        str(spec.name), getattr(spec, "currency_base", None), getattr(spec, "currency_profit", None)
    )
