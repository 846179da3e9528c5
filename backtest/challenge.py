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
    """Per bar: times (UTC epochs), closed balance, close equity, worst equity, open flag,
    and each bar's trading day."""

    times: pd.DatetimeIndex
    balance: np.ndarray
    equity: np.ndarray
    worst: np.ndarray
    holding: np.ndarray
    day: np.ndarray
    starts: np.ndarray  # each day's first bar
    ends: np.ndarray  # each day's last bar
    day_index: np.ndarray  # per bar, its day's number (0, 1, ...)


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
        floors.append(("daily floor", _daily_floor(preset.daily_floor, path, cash) + buffer,
                       preset.daily_floor.effect))  # fmt: skip
    if preset.max_loss is not None:
        floors.append(("maximum loss", _max_loss(preset.max_loss, path, cash) + buffer, "fail"))
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
    inside = ((reason == "sl") | (reason == "tp")).to_numpy()
    side = np.where((trades["direction"] == "long").to_numpy(), 1.0, -1.0)
    units = side * trades["volume"].to_numpy(dtype=np.float64) * spec.contract_size
    change = np.bincount(entry, units, n + 1) - np.bincount(exit_ + inside, units, n + 2)[:-1]
    exposure = np.cumsum(change[:n])
    exposure[np.abs(exposure) < 1e-9] = 0.0
    close = bars["close"].to_numpy(dtype=np.float64)
    adverse = np.where(exposure > 0, bars["low"].to_numpy(), bars["high"].to_numpy()) - close
    to_account = 1.0 if spec.currency_profit == "USD" else 1.0 / close  # USD accounts
    equity = result.equity.to_numpy(dtype=np.float64)
    worst = equity + np.minimum(adverse * exposure * to_account, 0.0)
    times = pd.DatetimeIndex(bars["time"])
    day = trading_day_labels(times.asi8 // _NANOS[times.unit], preset, broker_zone)
    new_day = np.concatenate(([True], day[1:] != day[:-1]))
    starts = np.flatnonzero(new_day)
    ends = np.append(starts[1:], n) - 1
    day_index = np.cumsum(new_day) - 1
    return _Path(times, balance, equity, worst, exposure != 0, day, starts, ends, day_index)


def _daily_floor(rule: DailyFloor, path: _Path, cash: float) -> np.ndarray:
    """Per bar, the day's floor: the day base at the reset minus the limit."""
    starts = path.starts
    before = np.maximum(starts - 1, 0)  # the last bar before the reset
    balance, equity = path.balance[before], path.equity[before]
    balance[starts == 0], equity[starts == 0] = cash, cash
    return rule.level(rule.base_of(balance, equity), cash)[path.day_index]


def _max_loss(rule: MaxLoss, path: _Path, cash: float) -> np.ndarray:
    """Per bar, the maximum-loss floor: static, or trailing a high-water mark (only up)."""
    if rule.mode == "static":
        return np.full(path.day.shape, rule.level(0.0, cash))
    if rule.high_water == "intraday_equity":
        mark = np.maximum.accumulate(path.equity)
    else:  # the end-of-day balance, known from the next day on
        closing = path.balance[path.ends]
        mark = np.maximum.accumulate(np.concatenate(([cash], closing[:-1])))[path.day_index]
    return np.broadcast_to(rule.level(mark, cash), path.day.shape)


def _first_failure(
    report: ChallengeReport, path: _Path, floors: list[tuple[str, np.ndarray, str]]
) -> int:
    """Record the first fail-type breach (and count paused days); the bar it ends at."""
    end = len(path.day)
    for rule, floor, effect in floors:
        below = np.flatnonzero(path.worst < floor)
        if effect == "pause":
            report.paused_days += len(np.unique(path.day[below]))
            continue
        if len(below) and below[0] < end:
            end = int(below[0])
            report.breach = Breach(
                rule, path.times[end], float(path.worst[end]), float(floor[end]), effect
            )
    if report.breach is not None:
        report.outcome = "failed"
    return end


def _trading_days(
    report: ChallengeReport, preset: Preset, result: BacktestResult, path: _Path, end: int
) -> np.ndarray:
    """Count the trading days (the preset's definition) and the consistency ratio; return a
    per-bar mark on the bar each trading day becomes one (for the phases' minimum days)."""
    n = len(path.day)
    starts = path.starts
    closing = path.balance[path.ends]
    opening = np.concatenate(([path.balance[0]], closing[:-1]))
    gains = closing - opening
    marks = np.zeros(n, dtype=np.int64)
    if preset.trading_day == "profitable":
        good = gains >= opening * preset.profitable_day_pct / 100
        marks[path.ends[good]] = 1
    elif len(result.trades):
        entries = np.sort(result.trades["entry_bar"].to_numpy(dtype=np.int64))
        first_of_day = np.unique(path.day[entries], return_index=True)[1]
        marks[entries[first_of_day]] = 1
    marks[end:] = 0
    report.trading_days = int(marks.sum())
    total = float(path.balance[max(min(end, n) - 1, 0)] - path.balance[0])
    best = float(gains[starts < end].max()) if (starts < end).any() else 0.0
    report.consistency_ratio = best / total if total > 0 else None
    return marks


def _out_of_time(report: ChallengeReport, path: _Path, at: int, target: float) -> None:
    """The phase's time limit passed at bar `at` with its target not reached."""
    report.outcome = "failed"
    report.breach = Breach("time limit", path.times[at], float(path.balance[at]), target, "fail")


def _phases(
    report: ChallengeReport,
    preset: Preset,
    path: _Path,
    cash: float,
    end: int,
    marks: np.ndarray,
) -> None:
    """Each target in turn, from the previous pass: closed balance at the target with
    nothing open, and the minimum trading days within the phase."""
    start, base = 0, cash
    counted = np.cumsum(marks)
    for number, target in enumerate(preset.targets_pct, start=1):
        days_in = counted - (counted[start - 1] if start else 0)
        reached = (path.balance >= base * (1 + target / 100)) & ~path.holding
        reached &= days_in >= preset.min_trading_days
        reached[:start] = False
        reached[end:] = False
        if preset.max_days:  # the phase's time limit, in trading days from its start
            late = path.day >= path.day[start] + preset.max_days
            reached &= ~late
            if not reached.any() and late[:end].any():
                _out_of_time(report, path, int(np.argmax(late)), base * (1 + target / 100))
        hit = np.flatnonzero(reached)
        passed_at = path.times[hit[0]] if len(hit) else None
        days = int(path.day[hit[0]] - path.day[start]) + 1 if len(hit) else None
        report.phases.append(
            {"phase": number, "target_pct": target, "passed_at": passed_at, "days": days}
        )
        if not len(hit):
            return
        start, base = int(hit[0]), float(path.balance[hit[0]])
    consistent = not preset.consistency_pct or (
        report.consistency_ratio is not None
        and report.consistency_ratio <= preset.consistency_pct / 100
    )
    if report.outcome != "failed" and preset.targets_pct and consistent:
        report.outcome = "passed"
