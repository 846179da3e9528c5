"""A prop-firm challenge on a backtest: the account-protection rules of a preset
(`backtest.prop_rules`) evaluated on the run's equity path (`backtest.challenge_path`: worst
equity inside each bar, days from the preset's reset), bar by bar.

What comes out (`backtest.challenge_report`): passed, failed (which rule, when, the numbers)
or still open; the days each phase's target took; the trading days; the consistency ratio.
Pause-type breaches are counted, not enforced: the backtest's trades are the strategy's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.broker_clock import BrokerZone
from backtest.challenge_path import EquityPath, TradeColumns, equity_path, run_starts
from backtest.challenge_report import Breach, ChallengeReport
from backtest.prop_rules import DailyFloor, MaxLoss, Preset
from backtest.results import BacktestResult
from backtest.symbols import SymbolSpec


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
    trades = TradeColumns.of(result, spec)
    path = equity_path(trades, result.equity, bars, spec, cash, preset, broker_zone)
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


def _daily_floor(rule: DailyFloor, path: EquityPath, cash: float) -> np.ndarray:
    """Per day, its floor: the day base at the reset minus the limit."""
    balance = _day_before(path.closing_balance, cash)  # at the last bar before the reset
    equity = _day_before(path.equity[path.ends], cash)
    return rule.level(rule.base_of(balance, equity), cash)


def _day_before(per_day: np.ndarray, first: float) -> np.ndarray:
    """Each day's value of the day before (`first` for the first day)."""
    return np.concatenate(([first], per_day[:-1]))


def _max_loss(rule: MaxLoss, path: EquityPath, cash: float, buffer: float) -> _Floor:
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
    report: ChallengeReport, path: EquityPath, floors: list[_Floor]
) -> tuple[int, list[np.ndarray]]:
    """Record the first fail-type breach; the bar it ends at (the bar count without one),
    and the days each pause-type floor was breached on."""
    end, paused = len(path.worst), []
    day_low = np.minimum.reduceat(path.worst, path.starts) if len(path.worst) else path.worst
    for floor in floors:
        if floor.per_bar is not None:
            below = np.flatnonzero(path.worst <= floor.per_bar)
            days_below = path.day_of(below)
            bad_days = days_below[run_starts(days_below)]
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


def _first_bar_below(path: EquityPath, daily: np.ndarray, bad_days: np.ndarray) -> int | None:
    """The first bar of the first failing day whose worst equity is under that day's floor."""
    if not len(bad_days):
        return None
    day = int(bad_days[0])
    start, last = int(path.starts[day]), int(path.ends[day])
    return start + int(np.argmax(path.worst[start : last + 1] <= daily[day]))


def _trading_days(
    report: ChallengeReport, preset: Preset, entry_bars: np.ndarray, path: EquityPath, end: int
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
        marks = entries[run_starts(day)]  # each day's first entry
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
    path: EquityPath, goal: float, first: int, stop: int, allowed: np.ndarray | None = None
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


def _level_ratios(path: EquityPath, cash: float) -> np.ndarray:
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


def _out_of_time(report: ChallengeReport, path: EquityPath, at: int, target: float) -> None:
    """The phase's time limit passed at bar `at` with its target not reached."""
    report.outcome = "failed"
    report.breach = Breach("time limit", path.time(at), float(path.balance[at]), target, "fail")


def _phases(
    report: ChallengeReport,
    preset: Preset,
    path: EquityPath,
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
