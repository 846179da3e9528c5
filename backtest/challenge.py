"""A prop-firm challenge on a backtest: the account-protection rules of a preset
(`backtest.prop_rules`) evaluated on the run's equity path, bar by bar.

Equity is checked at its worst inside each bar: the open positions marked at the bar's
adverse extreme (the low for a long, the high for a short), so a dip through a floor that
recovers within the bar still breaches. Days start at the preset's reset (a wall time in a
named zone, or the broker's). What comes out: passed, failed (which rule, when, the numbers)
or still open; the days each phase's target took; the trading days; the consistency ratio.
Pause-type breaches are counted, not enforced: the backtest's trades are the strategy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from backtest.broker_clock import DAY, BrokerZone, parse_zone
from backtest.fills import low_first
from backtest.prop_rules import DailyFloor, MaxLoss, Preset, Reset
from backtest.results import STOP_LOSS, TAKE_PROFIT, BacktestResult
from backtest.symbols import SymbolSpec

_NANOS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}  # per second, by unit


@dataclass(frozen=True)
class Breach:
    rule: str
    time: pd.Timestamp
    equity: float
    floor: float
    effect: str


@dataclass
class ChallengeReport:
    """The outcome of a preset on one run."""

    preset: str
    outcome: str = "open"  # passed | failed | open
    breach: Breach | None = None
    paused_days: int = 0
    phases: list[dict[str, object]] = field(default_factory=list)
    trading_days: int = 0
    consistency_ratio: float | None = None
    monte_carlo: dict[str, object] | None = None  # --mc: the bootstrap pass probability

    def lines(self) -> list[str]:
        """The report as text lines for the command line."""
        out = [f"challenge {self.preset}: {self.outcome.upper()}"]
        b = self.breach
        if b is not None and b.rule == "time limit":
            out.append(
                f"  time limit passed at {b.time:%Y-%m-%d %H:%M} UTC: balance {b.equity:,.2f}, "
                f"target {b.floor:,.2f}"
            )
        elif b is not None:
            out.append(
                f"  breach: {b.rule} at {b.time:%Y-%m-%d %H:%M} UTC, equity {b.equity:,.2f} "
                f"below {b.floor:,.2f} ({b.effect})"
            )
        for phase in self.phases:
            reached = phase["passed_at"]
            when = f"passed after {phase['days']} days" if reached else "not reached"
            out.append(f"  phase {phase['phase']}: target {phase['target_pct']:g}% {when}")
        ratio = "-" if self.consistency_ratio is None else f"{100 * self.consistency_ratio:.1f}%"
        out.append(f"  trading days {self.trading_days}; best day / profit {ratio}")
        if self.paused_days:
            out.append(f"  paused days (pause-type breaches): {self.paused_days}")
        return out

    def as_dict(self) -> dict[str, object]:
        breach = None
        if self.breach is not None:
            breach = {**vars(self.breach), "time": self.breach.time.isoformat()}
        return {
            "preset": self.preset,
            "outcome": self.outcome,
            "breach": breach,
            "paused_days": self.paused_days,
            "phases": [
                {**p, "passed_at": p["passed_at"].isoformat() if p["passed_at"] else None}
                for p in self.phases
            ],
            "trading_days": self.trading_days,
            "consistency_ratio": self.consistency_ratio,
            "monte_carlo": self.monte_carlo,
        }


@dataclass(frozen=True)
class _Balance:
    """The closed balance: `levels[k]` from the bar of the k-th exit (`steps`, sorted) on;
    `levels[0]` before the first. Indexed by bar like an array."""

    steps: np.ndarray
    levels: np.ndarray

    @classmethod
    def of(cls, exit_bars: np.ndarray, pnl: np.ndarray, cash: float) -> _Balance:
        if np.any(exit_bars[1:] < exit_bars[:-1]):
            order = np.argsort(exit_bars, kind="stable")
            exit_bars, pnl = exit_bars[order], pnl[order]
        return cls(exit_bars, cash + np.concatenate(([0.0], np.cumsum(pnl))))

    def __getitem__(self, bars: np.ndarray | int) -> np.ndarray | float:
        return self.levels[self.level_of(bars)]

    def level_of(self, bars: np.ndarray | int) -> np.ndarray | int:
        """The index of the level in force at bars."""
        return np.searchsorted(self.steps, bars, side="right")

    def stretches(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Each level's bars: [first, stop)."""
        return np.concatenate(([0], self.steps)), np.append(self.steps, n)


@dataclass(frozen=True)
class _Path:
    """Per bar: UTC times, closed balance (steps at the exits), close equity, worst equity
    and the units held; per trading day: its first and last bar and its label (days since
    the epoch in the reset's zone)."""

    times: pd.DatetimeIndex
    balance: _Balance
    equity: np.ndarray
    worst: np.ndarray
    units: np.ndarray
    starts: np.ndarray  # each day's first bar
    ends: np.ndarray  # each day's last bar
    labels: np.ndarray

    def time(self, bar: int) -> pd.Timestamp:
        return self.times[bar]

    @cached_property
    def closing_balance(self) -> np.ndarray:
        """Each day's closed balance at its last bar."""
        return self.balance[self.ends]

    @cached_property
    def flat_bars(self) -> np.ndarray:
        """The bars closing with nothing open."""
        return np.flatnonzero(self.units == 0)

    def day_of(self, bars: np.ndarray | int) -> np.ndarray | int:
        """The day number (0, 1, ...) of bar indices."""
        return np.searchsorted(self.starts, bars, side="right") - 1


@dataclass(frozen=True)
class _Floor:
    """One rule's floor, per day (`daily`) or per bar (`per_bar`, a trailing intraday one)."""

    rule: str
    effect: str
    daily: np.ndarray | None = None
    per_bar: np.ndarray | None = None

    def at(self, bar: int, day: int) -> float:
        return float(self.per_bar[bar] if self.per_bar is not None else self.daily[day])


def evaluate(
    preset: Preset,
    result: BacktestResult,
    bars: pd.DataFrame,
    spec: SymbolSpec,
    *,
    cash: float,
    broker_zone: BrokerZone,
) -> ChallengeReport:
    """The preset's rules on the run's equity path (see the module docstring)."""
    trades = _Trades.of(result, spec)
    path = _equity_path(trades, result.equity, bars, spec, cash, preset, broker_zone)
    report = ChallengeReport(preset.name)
    buffer = preset.buffer(cash)
    floors = []
    if preset.daily_floor is not None:
        level = _daily_floor(preset.daily_floor, path, cash) + buffer
        floors.append(_Floor("daily floor", preset.daily_floor.effect, daily=level))
    if preset.max_loss is not None:
        floors.append(_max_loss(preset.max_loss, path, cash, buffer))
    end, paused = _first_failure(report, path, floors)
    marks = _trading_days(report, preset, trades.entry, path, end)
    over = _phases(report, preset, path, cash, end, marks)
    if report.outcome == "passed":  # the challenge ends at its pass: what follows is not its
        report.breach = None
        report.trading_days = int(np.searchsorted(marks, over, side="right"))
    last_day = path.day_of(min(end, over if over is not None else end))
    report.paused_days = sum(int(np.count_nonzero(days <= last_day)) for days in paused)
    return report


def trading_day_labels(
    utc_seconds: np.ndarray, preset: Preset, broker_zone: BrokerZone
) -> np.ndarray:
    """The trading day of each UTC epoch: days start at the preset's reset, a wall time in
    its zone (`broker`: the server's), whatever that zone's daylight saving does."""
    zone, reset = _reset_of(preset, broker_zone)
    epochs = np.asarray(utc_seconds, dtype=np.int64)
    wall = zone.offsets(epochs) + (epochs - reset)
    wall //= DAY
    return wall


def _firsts(values: np.ndarray) -> np.ndarray:
    """The index of the first element of each run of equal values (np.diff's prepend and
    np.unique are many times slower on long arrays)."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    changes = np.flatnonzero(values[1:] != values[:-1])
    changes += 1
    return np.concatenate(([0], changes))


def _reset_of(preset: Preset, broker_zone: BrokerZone) -> tuple[BrokerZone, int]:
    """The zone the trading day is kept in and the reset's seconds after its midnight."""
    reset = preset.daily_floor.reset if preset.daily_floor else Reset()
    zone = broker_zone if reset.zone == "broker" else parse_zone(reset.zone, "reset")
    return zone, reset.seconds


@dataclass(frozen=True)
class _Trades:
    """The trade columns the path reads, as arrays (each read once from the frame)."""

    entry: np.ndarray
    exit: np.ndarray
    pnl: np.ndarray
    units: np.ndarray  # signed, in whole ten-thousandths of a unit: a flat sum is exactly 0
    took_profit: np.ndarray
    inside: np.ndarray  # left inside its exit bar: a stop or a target
    exit_price: np.ndarray

    @classmethod
    def of(cls, result: BacktestResult, spec: SymbolSpec) -> _Trades:
        """From the engine's arrays, or from the trades table of a result built otherwise."""
        arrays, trades = result.trade_arrays, result.trades
        if arrays is not None and len(arrays) == len(trades):
            long, took_profit = arrays.direction > 0, arrays.exit_reason == TAKE_PROFIT
            stopped = arrays.exit_reason == STOP_LOSS
            columns = (arrays.entry_bar, arrays.exit_bar, arrays.pnl, arrays.volume,
                       arrays.exit_price)  # fmt: skip
        else:
            took_profit, stopped = _matches(trades["exit_reason"], "tp", "sl")
            (long,) = _matches(trades["direction"], "long")
            columns = tuple(trades[c].to_numpy() for c in
                            ("entry_bar", "exit_bar", "pnl", "volume", "exit_price"))  # fmt: skip
        entry, exit_, pnl, volume, exit_price = columns
        units = np.where(long, 1e4, -1e4) * np.asarray(volume, dtype=np.float64)
        return cls(
            entry=np.asarray(entry, dtype=np.int64),
            exit=np.asarray(exit_, dtype=np.int64),
            pnl=np.asarray(pnl, dtype=np.float64),
            units=np.rint(units * spec.contract_size),
            took_profit=took_profit,
            inside=took_profit | stopped,
            exit_price=np.asarray(exit_price, dtype=np.float64),
        )


def _matches(column: pd.Series, *values: str) -> list[np.ndarray]:
    """`column == value` for each value, as arrays; a categorical column (the engine's) by
    its codes."""
    array = column.array
    if isinstance(array, pd.Categorical):
        names = np.append(np.asarray(array.categories, dtype=object), None)  # code -1: missing
        return [(names == value)[array.codes] for value in values]
    return [np.asarray(array == value, dtype=bool) for value in values]


def _equity_path(
    trades: _Trades,
    equity_curve: pd.Series,
    bars: pd.DataFrame,
    spec: SymbolSpec,
    cash: float,
    preset: Preset,
    broker_zone: BrokerZone,
) -> _Path:
    n = len(bars)
    balance = _Balance.of(trades.exit, trades.pnl, cash)
    exposure = _exposure(trades, n)
    close, low, high = (bars[c].to_numpy(np.float64) for c in ("close", "low", "high"))
    adverse = np.where(exposure > 0, low, high)
    adverse -= close
    adverse *= exposure
    np.minimum(adverse, 0.0, out=adverse)
    if spec.currency_profit != "USD":  # USD accounts
        adverse /= close
    equity = equity_curve.to_numpy(dtype=np.float64)
    worst = equity + adverse
    if trades.inside.any():  # the bar a stop or target closed in: from the exit, not the close
        inside = trades.inside
        at = trades.exit[inside]
        bar = (bars["open"].to_numpy(np.float64)[at], high[at], low[at], close[at])
        dip = _dip_before_exit(
            trades.took_profit[inside], trades.exit_price[inside], bar, spec, trades.units[inside]
        )
        worst[at] = equity[at] + dip
    times = equity_curve.index if len(equity_curve) == n else pd.DatetimeIndex(bars["time"])
    starts, labels = _day_starts(times, preset, broker_zone)
    ends = np.append(starts[1:], n) - 1
    return _Path(times, balance, equity, worst, exposure, starts, ends, labels)


# the last bar times' days: a grid or a walk-forward evaluates run after run on the same bars
_last_days: tuple[np.ndarray, tuple[BrokerZone, int], np.ndarray, np.ndarray] | None = None


def _day_starts(
    times: pd.DatetimeIndex, preset: Preset, broker_zone: BrokerZone
) -> tuple[np.ndarray, np.ndarray]:
    """Each trading day's first bar and its label; remembered for the last bar times seen
    (a copy, compared value by value before reuse)."""
    global _last_days
    stamps, reset = times.asi8, _reset_of(preset, broker_zone)
    last = _last_days
    if last is not None and last[1] == reset and np.array_equal(last[0], stamps):
        return last[2], last[3]
    day = trading_day_labels(stamps // _NANOS[times.unit], preset, broker_zone)
    starts = _firsts(day)
    labels = day[starts]
    for shared in (starts, labels):
        shared.setflags(write=False)
    _last_days = (stamps.copy(), reset, starts, labels)
    return starts, labels


def _exposure(trades: _Trades, n: int) -> np.ndarray:
    """Per bar, the signed units held: from the entry bar's open; through the exit bar only
    when the trade left inside it."""
    held_to = trades.exit + trades.inside
    if _one_at_a_time(trades.entry, held_to):
        # constant between the trades' edges: np.repeat fills each stretch in one pass
        edges = np.empty(2 * len(held_to) + 2, dtype=np.int64)
        edges[0], edges[-1] = 0, n
        edges[1:-1:2], edges[2:-1:2] = trades.entry, np.minimum(held_to, n)
        stretch_units = np.zeros(2 * len(held_to) + 1)
        stretch_units[1::2] = trades.units * 1e-4
        return np.repeat(stretch_units, np.diff(edges))
    change = np.bincount(trades.entry, trades.units, n + 1)
    change -= np.bincount(held_to, trades.units, n + 2)[:-1]
    exposure = np.cumsum(change[:n])  # exact: flat is exactly 0
    exposure *= 1e-4
    return exposure


def _one_at_a_time(entry: np.ndarray, held_to: np.ndarray) -> bool:
    """Whether the trades come in order, each held before the next starts (a plain run; a
    managed one's partial exits share their position's entry)."""
    return bool(np.all(entry <= held_to) and np.all(entry[1:] >= held_to[:-1]))


def _dip_before_exit(
    took_profit: np.ndarray,
    exit_price: np.ndarray,
    bar: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    spec: SymbolSpec,
    units: np.ndarray,
) -> np.ndarray:
    """What a position closed inside its exit bar (`bar`: that bar's open, high, low and
    close) lost beyond its exit before it: nothing for a stop-loss (it fills first); for a
    take-profit, the adverse extreme when the bar's path (backtest/fills.py: the extreme
    nearer the open first) reached it before the target."""
    o, h, lo, close = bar
    longs = units > 0
    first_low = low_first(o, h, lo)
    before = took_profit & np.where(longs, first_low, ~first_low)
    move = (np.where(longs, lo, h) - exit_price) * units * 1e-4
    if spec.currency_profit != "USD":  # USD accounts, as the rest of the path
        move = move / close
    return np.where(before, np.minimum(move, 0.0), 0.0)


def _daily_floor(rule: DailyFloor, path: _Path, cash: float) -> np.ndarray:
    """Per day, its floor: the day base at the reset minus the limit."""
    balance = _day_before(path.closing_balance, cash)  # at the last bar before the reset
    equity = _day_before(path.equity[path.ends], cash)
    return rule.level(rule.base_of(balance, equity), cash)


def _day_before(per_day: np.ndarray, first: float) -> np.ndarray:
    """Each day's value of the day before (`first` for the first day)."""
    return np.concatenate(([first], per_day[:-1]))


def _max_loss(rule: MaxLoss, path: _Path, cash: float, buffer: float) -> _Floor:
    """The maximum-loss floor: static, or trailing a high-water mark (only up): the
    end-of-day balance (per day) or the equity peak (per bar)."""
    days = len(path.starts)
    if rule.mode == "static":
        return _Floor("maximum loss", "fail", daily=np.full(days, rule.level(0.0, cash) + buffer))
    if rule.high_water == "intraday_equity":
        mark = np.maximum.accumulate(path.equity)
        return _Floor("maximum loss", "fail", per_bar=rule.level(mark, cash) + buffer)
    mark = np.maximum.accumulate(_day_before(path.closing_balance, cash))  # known the day after
    return _Floor("maximum loss", "fail", daily=rule.level(mark, cash) + buffer)


def _first_failure(
    report: ChallengeReport, path: _Path, floors: list[_Floor]
) -> tuple[int, list[np.ndarray]]:
    """Record the first fail-type breach; the bar it ends at (the bar count without one),
    and the days each pause-type floor was breached on."""
    end, paused = len(path.worst), []
    day_low = np.minimum.reduceat(path.worst, path.starts) if len(path.worst) else path.worst
    for floor in floors:
        if floor.per_bar is not None:
            below = np.flatnonzero(path.worst <= floor.per_bar)
            days_below = path.day_of(below)
            bad_days = days_below[_firsts(days_below)]
            first = int(below[0]) if len(below) else None
        else:
            bad_days = np.flatnonzero(day_low <= floor.daily)
            first = _first_bar_below(path, floor.daily, bad_days)
        if floor.effect == "pause":
            paused.append(bad_days)
        elif first is not None and first < end:
            end = first
            day = int(path.day_of(first))
            report.breach = Breach(floor.rule, path.time(first), float(path.worst[first]),
                                   floor.at(first, day), floor.effect)  # fmt: skip
    if report.breach is not None:
        report.outcome = "failed"
    return end, paused


def _first_bar_below(path: _Path, daily: np.ndarray, bad_days: np.ndarray) -> int | None:
    """The first bar of the first failing day whose worst equity is under that day's floor."""
    if not len(bad_days):
        return None
    day = int(bad_days[0])
    start, last = int(path.starts[day]), int(path.ends[day])
    return start + int(np.argmax(path.worst[start : last + 1] <= daily[day]))


def _trading_days(
    report: ChallengeReport, preset: Preset, entry_bars: np.ndarray, path: _Path, end: int
) -> np.ndarray:
    """Count the trading days (the preset's definition) and the consistency ratio; return
    the bars on which each trading day becomes one, sorted (for the phases' minimum days)."""
    n = len(path.worst)
    closing = path.closing_balance
    opening = _day_before(closing, path.balance[0])
    gains = closing - opening
    if preset.trading_day == "profitable":
        marks = path.ends[gains >= opening * preset.profitable_day_pct / 100]
    elif len(entry_bars):
        entries = entry_bars
        if np.any(entries[1:] < entries[:-1]):  # a managed run's rows come by exit
            entries = np.sort(entries)
        day = path.day_of(entries)
        marks = entries[_firsts(day)]  # each day's first entry
    else:
        marks = np.zeros(0, dtype=np.int64)
    marks = marks[marks < end]
    report.trading_days = len(marks)
    total = float(path.balance[max(min(end, n) - 1, 0)] - path.balance[0])
    before_end = path.starts < end
    best = float(gains[before_end].max()) if before_end.any() else 0.0
    report.consistency_ratio = best / total if total > 0 else None
    return marks


def _first_flat_at(
    path: _Path, goal: float, first: int, stop: int, allowed: np.ndarray | None = None
) -> int | None:
    """The first bar in [first, stop) closing with the balance at `goal` and nothing open,
    at a balance level `allowed` (per level) when given."""
    if first >= stop:
        return None
    begins, ends = path.balance.stretches(len(path.worst))
    there = path.balance.levels >= goal
    if allowed is not None:
        there &= allowed
    begins = np.maximum(begins[there], first)
    ends = np.minimum(ends[there], stop)
    flat = path.flat_bars
    candidates = np.searchsorted(flat, begins)  # each stretch's first flat bar
    found = candidates < len(flat)
    bars = flat[np.minimum(candidates, len(flat) - 1)] if len(flat) else candidates
    found &= bars < ends
    return int(bars[np.argmax(found)]) if found.any() else None


def _level_ratios(path: _Path, cash: float) -> np.ndarray:
    """Per balance level, from its first bar on: the best day's gain over the total profit
    (inf without a profit). It holds while the level does: a later day without a close
    gains nothing."""
    begins, _ = path.balance.stretches(len(path.worst))
    day = path.day_of(begins)
    opening = _day_before(path.closing_balance, cash)
    best_before = np.maximum.accumulate(path.closing_balance - opening)  # days before each
    best_before = np.concatenate(([-np.inf], best_before[:-1]))
    best = np.maximum(best_before[day], path.balance.levels - opening[day])
    total = path.balance.levels - cash
    return np.divide(best, total, out=np.full(len(total), np.inf), where=total > 0)


def _out_of_time(report: ChallengeReport, path: _Path, at: int, target: float) -> None:
    """The phase's time limit passed at bar `at` with its target not reached."""
    report.outcome = "failed"
    report.breach = Breach("time limit", path.time(at), float(path.balance[at]), target, "fail")


def _phases(
    report: ChallengeReport,
    preset: Preset,
    path: _Path,
    cash: float,
    end: int,
    marks: np.ndarray,
) -> int | None:
    """Each target in turn, from the previous pass: closed balance at the target with
    nothing open, the minimum trading days within the phase, inside its time limit. The
    last also needs the consistency rule kept at that moment (the best day at most its
    share of the profit): until then the challenge cannot pass, as at the firms. Returns
    the bar the challenge ended at (passed, or out of time), None when it did not."""
    start, base = 0, cash
    ratios = _level_ratios(path, cash) if preset.consistency_pct else None
    for number, target in enumerate(preset.targets_pct, start=1):
        goal = base * (1 + target / 100)
        earliest, latest = start, end
        if preset.min_trading_days:  # not before the phase's last required day is marked
            needed = int(np.searchsorted(marks, start)) + preset.min_trading_days - 1
            earliest = int(marks[needed]) if needed < len(marks) else end
        first_label = path.labels[path.day_of(start)]
        if preset.max_days:  # the phase's time limit, in trading days from its start
            late_day = int(np.searchsorted(path.labels, first_label + preset.max_days))
            latest = int(path.starts[late_day]) if late_day < len(path.starts) else len(path.worst)
        last = number == len(preset.targets_pct)
        allowed = ratios <= preset.consistency_pct / 100 if last and ratios is not None else None
        hit = _first_flat_at(path, goal, earliest, min(latest, end), allowed)
        if hit is not None and allowed is not None:  # the ratio the pass was granted at
            report.consistency_ratio = float(ratios[path.balance.level_of(hit)])
        if hit is None and latest < end:
            _out_of_time(report, path, latest, goal)
            return latest
        days = None if hit is None else int(path.labels[path.day_of(hit)] - first_label) + 1
        report.phases.append(
            {"phase": number, "target_pct": target,
             "passed_at": None if hit is None else path.time(hit), "days": days}
        )  # fmt: skip
        if hit is None:
            return None
        start, base = hit, float(path.balance[hit])
    if not preset.targets_pct:
        return None
    report.outcome = "passed"  # before any breach: phases are only looked for before one
    return start
