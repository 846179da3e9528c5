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

import numpy as np
import pandas as pd

from backtest.broker_clock import DAY, BrokerZone, parse_zone
from backtest.fills import low_first
from backtest.prop_rules import DailyFloor, MaxLoss, Preset, Reset
from backtest.results import BacktestResult
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
class _Path:
    """Per bar: UTC epochs, closed balance, close equity, worst equity and whether a position
    is open; per trading day: its first and last bar and its label (days since the epoch in
    the reset's zone)."""

    seconds: np.ndarray
    balance: np.ndarray
    equity: np.ndarray
    worst: np.ndarray
    holding: np.ndarray
    starts: np.ndarray  # each day's first bar
    ends: np.ndarray  # each day's last bar
    labels: np.ndarray

    def time(self, bar: int) -> pd.Timestamp:
        return pd.Timestamp(int(self.seconds[bar]), unit="s", tz="UTC")

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
    path = _equity_path(result, bars, spec, cash, preset, broker_zone)
    report = ChallengeReport(preset.name)
    buffer = preset.buffer(cash)
    floors = []
    if preset.daily_floor is not None:
        level = _daily_floor(preset.daily_floor, path, cash) + buffer
        floors.append(_Floor("daily floor", preset.daily_floor.effect, daily=level))
    if preset.max_loss is not None:
        floors.append(_max_loss(preset.max_loss, path, cash, buffer))
    end = _first_failure(report, path, floors)
    marks = _trading_days(report, preset, result, path, end)
    _phases(report, preset, path, cash, end, marks)
    return report


def trading_day_labels(
    utc_seconds: np.ndarray, preset: Preset, broker_zone: BrokerZone
) -> np.ndarray:
    """The trading day of each UTC epoch: days start at the preset's reset, a wall time in
    its zone (`broker`: the server's), whatever that zone's daylight saving does."""
    reset = preset.daily_floor.reset if preset.daily_floor else Reset()
    zone = broker_zone if reset.zone == "broker" else parse_zone(reset.zone, "reset")
    epochs = np.asarray(utc_seconds, dtype=np.int64)
    wall = epochs + zone.offsets(epochs) - (reset.hour * 3600 + reset.minute * 60)
    return wall // DAY


def _equity_path(
    result: BacktestResult,
    bars: pd.DataFrame,
    spec: SymbolSpec,
    cash: float,
    preset: Preset,
    broker_zone: BrokerZone,
) -> _Path:
    n = len(bars)
    trades = result.trades
    entry = trades["entry_bar"].to_numpy(dtype=np.int64)
    exit_ = trades["exit_bar"].to_numpy(dtype=np.int64)
    closed = np.bincount(exit_, trades["pnl"].to_numpy(dtype=np.float64), n + 1)  # net
    balance = cash + np.cumsum(closed[:n])
    # held from the entry bar's open; through the exit bar only when it left inside it
    reason = trades["exit_reason"]
    took_profit = (reason == "tp").to_numpy()
    inside = (reason == "sl").to_numpy() | took_profit
    side = np.where((trades["direction"] == "long").to_numpy(), 1.0, -1.0)
    # in whole ten-thousandths of a unit, so the running sum is exact: flat is exactly 0
    units = np.rint(side * trades["volume"].to_numpy(np.float64) * spec.contract_size * 1e4)
    change = np.bincount(entry, units, n + 1) - np.bincount(exit_ + inside, units, n + 2)[:-1]
    exposure = np.cumsum(change[:n])
    close, low, high = (bars[c].to_numpy(np.float64) for c in ("close", "low", "high"))
    adverse = np.where(exposure > 0, low, high) - close
    adverse *= exposure
    adverse *= 1e-4 if spec.currency_profit == "USD" else 1e-4 / close  # USD accounts
    equity = result.equity.to_numpy(dtype=np.float64)
    worst = equity + np.minimum(adverse, 0.0)
    if inside.any():  # the bar a stop or target closed in: from the exit price, not the close
        at = exit_[inside]
        exit_price = trades["exit_price"].to_numpy(np.float64)[inside]
        bar = (bars["open"].to_numpy(np.float64)[at], high[at], low[at], close[at])
        dip = _dip_before_exit(took_profit[inside], exit_price, bar, spec, units[inside])
        worst[at] = equity[at] + dip
    times = pd.DatetimeIndex(bars["time"])
    seconds = times.asi8 // _NANOS[times.unit]
    day = trading_day_labels(seconds, preset, broker_zone)
    starts = np.flatnonzero(np.diff(day, prepend=day[0] - 1))
    ends = np.append(starts[1:], n) - 1
    return _Path(seconds, balance, equity, worst, exposure != 0, starts, ends, day[starts])


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
    starts = path.starts
    before = np.maximum(starts - 1, 0)  # the last bar before the reset
    balance, equity = path.balance[before], path.equity[before]
    balance[starts == 0], equity[starts == 0] = cash, cash
    return rule.level(rule.base_of(balance, equity), cash)


def _max_loss(rule: MaxLoss, path: _Path, cash: float, buffer: float) -> _Floor:
    """The maximum-loss floor: static, or trailing a high-water mark (only up): the
    end-of-day balance (per day) or the equity peak (per bar)."""
    days = len(path.starts)
    if rule.mode == "static":
        return _Floor("maximum loss", "fail", daily=np.full(days, rule.level(0.0, cash) + buffer))
    if rule.high_water == "intraday_equity":
        mark = np.maximum.accumulate(path.equity)
        return _Floor("maximum loss", "fail", per_bar=rule.level(mark, cash) + buffer)
    closing = path.balance[path.ends]  # known from the next day on
    mark = np.maximum.accumulate(np.concatenate(([cash], closing[:-1])))
    return _Floor("maximum loss", "fail", daily=rule.level(mark, cash) + buffer)


def _first_failure(report: ChallengeReport, path: _Path, floors: list[_Floor]) -> int:
    """Record the first fail-type breach (and count paused days); the bar it ends at."""
    end = len(path.worst)
    day_low = np.minimum.reduceat(path.worst, path.starts) if len(path.worst) else path.worst
    for floor in floors:
        if floor.per_bar is not None:
            below = np.flatnonzero(path.worst <= floor.per_bar)
            bad_days = np.unique(path.day_of(below))
            first = int(below[0]) if len(below) else None
        else:
            bad_days = np.flatnonzero(day_low <= floor.daily)
            first = _first_bar_below(path, floor.daily, bad_days)
        if floor.effect == "pause":
            report.paused_days += len(bad_days)
        elif first is not None and first < end:
            end = first
            day = int(path.day_of(first))
            report.breach = Breach(floor.rule, path.time(first), float(path.worst[first]),
                                   floor.at(first, day), floor.effect)  # fmt: skip
    if report.breach is not None:
        report.outcome = "failed"
    return end


def _first_bar_below(path: _Path, daily: np.ndarray, bad_days: np.ndarray) -> int | None:
    """The first bar of the first failing day whose worst equity is under that day's floor."""
    if not len(bad_days):
        return None
    day = int(bad_days[0])
    start, last = int(path.starts[day]), int(path.ends[day])
    return start + int(np.argmax(path.worst[start : last + 1] <= daily[day]))


def _trading_days(
    report: ChallengeReport, preset: Preset, result: BacktestResult, path: _Path, end: int
) -> np.ndarray:
    """Count the trading days (the preset's definition) and the consistency ratio; return
    the bars on which each trading day becomes one, sorted (for the phases' minimum days)."""
    n = len(path.worst)
    closing = path.balance[path.ends]
    opening = np.concatenate((path.balance[:1], closing[:-1]))
    gains = closing - opening
    if preset.trading_day == "profitable":
        marks = path.ends[gains >= opening * preset.profitable_day_pct / 100]
    elif len(result.trades):
        entries = np.sort(result.trades["entry_bar"].to_numpy(dtype=np.int64))
        marks = entries[np.unique(path.day_of(entries), return_index=True)[1]]
    else:
        marks = np.zeros(0, dtype=np.int64)
    marks = marks[marks < end]
    report.trading_days = len(marks)
    total = float(path.balance[max(min(end, n) - 1, 0)] - path.balance[0])
    before_end = path.starts < end
    best = float(gains[before_end].max()) if before_end.any() else 0.0
    report.consistency_ratio = best / total if total > 0 else None
    return marks


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
) -> None:
    """Each target in turn, from the previous pass: closed balance at the target with
    nothing open, the minimum trading days within the phase, inside its time limit."""
    start, base = 0, cash
    for number, target in enumerate(preset.targets_pct, start=1):
        goal = base * (1 + target / 100)
        reached = np.flatnonzero((path.balance >= goal) & ~path.holding)
        reached = reached[(reached >= start) & (reached < end)]
        if preset.min_trading_days:  # the days marked from the phase's start to each bar
            days_in = np.searchsorted(marks, reached, "right") - np.searchsorted(marks, start)
            reached = reached[days_in >= preset.min_trading_days]
        first_label = path.labels[path.day_of(start)]
        if preset.max_days:  # the phase's time limit, in trading days from its start
            late_day = int(np.searchsorted(path.labels, first_label + preset.max_days))
            late = int(path.starts[late_day]) if late_day < len(path.starts) else len(path.worst)
            reached = reached[reached < late]
            if not len(reached) and late < end:
                _out_of_time(report, path, late, goal)
        hit = int(reached[0]) if len(reached) else None
        days = None if hit is None else int(path.labels[path.day_of(hit)] - first_label) + 1
        report.phases.append(
            {"phase": number, "target_pct": target,
             "passed_at": None if hit is None else path.time(hit), "days": days}
        )  # fmt: skip
        if hit is None:
            return
        start, base = hit, float(path.balance[hit])
    consistent = not preset.consistency_pct or (
        report.consistency_ratio is not None
        and report.consistency_ratio <= preset.consistency_pct / 100
    )
    if report.outcome != "failed" and preset.targets_pct and consistent:
        report.outcome = "passed"
