"""The probability of passing a challenge: a seeded Monte Carlo bootstrap of the run's
trade sequence under a preset's rules (`backtest.prop_rules`).

Each path draws the run's trades with replacement, in the run's day pattern (the number of
trades closed on each trading day stays as it was, so a daily floor sees a day's trades
together). A trade moves the balance by its P/L; while it is open, equity sinks by its
worst floating loss (its adverse excursion, from the bars). Trades are taken one after the
other. Checked on each path: the daily floor (from the balance at the day's start), the
maximum loss (static, or trailing the end-of-day balance, locked or not), and each phase's
target on closed balance after its minimum trading days (here a trading day is a day a
trade closed) and before its time limit (the run's calendar of those days); the last
phase also needs the consistency rule kept at that moment, as in `backtest.challenge`.
Pause-type breaches are left out (`backtest.challenge` counts them on the run itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.broker_clock import BrokerZone
from backtest.challenge_path import trading_day_labels
from backtest.fills import low_first
from backtest.prop_rules import Preset
from backtest.results import BacktestResult
from backtest.symbols import SymbolSpec

Z95 = 1.959964


@dataclass(frozen=True)
class PassProbability:
    """The share of paths that passed, with its 95% (Wilson) interval."""

    paths: int
    passed: int
    failed: int
    median_trades_to_pass: float | None
    seed: int

    @property
    def probability(self) -> float:
        return self.passed / self.paths if self.paths else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        n, p = self.paths, self.probability
        if not n:
            return 0.0, 0.0
        centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
        half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def line(self) -> str:
        low, high = self.interval
        median = "-" if self.median_trades_to_pass is None else f"{self.median_trades_to_pass:g}"
        return (
            f"  pass probability {100 * self.probability:.1f}% (95% CI {100 * low:.1f}-"
            f"{100 * high:.1f}%) over {self.paths:,} bootstrap paths, seed {self.seed}; "
            f"failed {100 * self.failed / max(self.paths, 1):.1f}%; median trades to pass "
            f"{median}"
        )

    def as_dict(self) -> dict[str, object]:
        low, high = self.interval
        return {
            "paths": self.paths,
            "seed": self.seed,
            "pass_probability": self.probability,
            "ci95": [low, high],
            "fail_share": self.failed / max(self.paths, 1),
            "median_trades_to_pass": self.median_trades_to_pass,
        }


def trade_excursions(result: BacktestResult, bars: pd.DataFrame, spec: SymbolSpec) -> np.ndarray:
    """Each trade's worst floating loss in account money (<= 0), from the extremes of the
    bars it was held through. The bar it closed in counts only as far as it was held: not
    at all after an exit at the open, to the exit for a stop-loss (its pnl), and for a
    take-profit the adverse extreme if the bar's path reached it first (backtest/fills.py)."""
    trades = result.trades
    opens, lows, highs = (bars[c].to_numpy(float) for c in ("open", "low", "high"))
    close = bars["close"].to_numpy(float)
    worst = np.zeros(len(trades))
    for k, trade in enumerate(trades.itertuples()):
        entry, exit_ = int(trade.entry_bar), int(trade.exit_bar)
        held = slice(entry, exit_ + 1 if trade.exit_reason == "end" else exit_)
        long = trade.direction == "long"
        extremes = list(lows[held] if long else highs[held])
        first_low = low_first(opens[exit_], highs[exit_], lows[exit_])
        if trade.exit_reason == "tp" and first_low == long:
            extremes.append(lows[exit_] if long else highs[exit_])
        if not extremes:
            continue
        price = float(trade.entry_price)
        move = (min(extremes) - price) if long else (price - max(extremes))
        to_account = 1.0 if spec.currency_profit == "USD" else 1.0 / close[entry : exit_ + 1].mean()
        worst[k] = min(0.0, move * float(trade.volume) * spec.contract_size * to_account)
    return np.minimum(worst, np.minimum(trades["pnl"].to_numpy(float), 0.0))


def pass_probability(
    preset: Preset,
    result: BacktestResult,
    bars: pd.DataFrame,
    spec: SymbolSpec,
    *,
    cash: float,
    broker_zone: BrokerZone,
    paths: int = 10_000,
    seed: int = 0,
) -> PassProbability:
    """Bootstrap `paths` trade sequences (seeded) and count those that pass the preset."""
    trades = result.trades
    if not len(trades) or not preset.targets_pct:
        return PassProbability(paths, 0, 0, None, seed)
    pnl = trades["pnl"].to_numpy(float)
    worst = trade_excursions(result, bars, spec)
    days = _trade_days(trades, bars, preset, broker_zone)
    rng = np.random.default_rng(seed)
    passed = failed = 0
    to_pass: list[np.ndarray] = []
    for size in _chunks(paths):  # a thousand paths at a time stay in the CPU caches
        draws = rng.integers(0, len(pnl), size=(size, len(pnl)), dtype=np.int32)
        chunk_passed, chunk_failed, passed_at = _evaluate_paths(
            preset, pnl[draws], worst[draws], days, cash
        )
        passed, failed = passed + chunk_passed, failed + chunk_failed
        to_pass.append(passed_at)
    reached = np.concatenate(to_pass)
    median = float(np.median(reached + 1)) if len(reached) else None
    return PassProbability(paths, passed, failed, median, seed)


def _chunks(paths: int, size: int = 1000) -> list[int]:
    return [min(size, paths - start) for start in range(0, paths, size)]


@dataclass(frozen=True)
class _Days:
    """The run's day pattern, by trade position: the trading day (0, 0, 1, 2, 2, ...), its
    calendar label (`trading_day_labels`), and the label of the run's first bar."""

    index: np.ndarray
    label: np.ndarray
    first_label: int


def _trade_days(
    trades: pd.DataFrame, bars: pd.DataFrame, preset: Preset, broker_zone: BrokerZone
) -> _Days:
    seconds = pd.DatetimeIndex(bars["time"]).as_unit("s").asi8
    labels = trading_day_labels(seconds[trades["exit_bar"].to_numpy(int)], preset, broker_zone)
    first = int(trading_day_labels(seconds[:1], preset, broker_zone)[0])
    index = np.concatenate(([0], np.cumsum(labels[1:] != labels[:-1])))
    return _Days(index, labels, first)


def _evaluate_paths(
    preset: Preset, pnl: np.ndarray, worst: np.ndarray, days: _Days, cash: float
) -> tuple[int, int, np.ndarray]:
    """Passed and failed paths, and the trade each passed path passed at."""
    paths, n = pnl.shape
    day = days.index
    after = cash + np.cumsum(pnl, axis=1)
    before = np.concatenate((np.full((paths, 1), cash), after[:, :-1]), axis=1)
    low = before + worst  # equity at its worst while each trade is open
    first_of_day = np.concatenate(([True], day[1:] != day[:-1]))
    day_start = before[:, np.maximum.accumulate(np.where(first_of_day, np.arange(n), 0))]
    breach = np.zeros((paths, n), dtype=bool)
    buffer = preset.buffer_pct / 100 * cash
    rule = preset.daily_floor
    if rule is not None and rule.effect == "fail":
        of = cash if rule.of == "initial" else day_start
        limit = rule.limit_amount if rule.limit_amount is not None else of * rule.limit_pct / 100
        breach |= low <= day_start - limit + buffer
    if preset.max_loss is not None:
        breach |= low <= _max_loss_floor(preset, after, day, cash) + buffer
    failed_at = np.where(breach.any(axis=1), breach.argmax(axis=1), n)
    consistent = None
    if preset.consistency_pct:
        consistent = _consistent(after, day_start, day, cash, preset.consistency_pct)
    passed_at, out_of_time = _phases_passed(preset, after, days, failed_at, cash, consistent)
    passed = passed_at < n
    failed = ((failed_at < n) | out_of_time) & ~passed  # a breach after the pass is none
    return int(passed.sum()), int(failed.sum()), passed_at[passed]


def _consistent(
    after: np.ndarray, day_start: np.ndarray, day: np.ndarray, cash: float, pct: float
) -> np.ndarray:
    """Per path and trade: the best day's gain at most `pct`% of the profit so far."""
    last_of_day = np.flatnonzero(np.append(day[1:] != day[:-1], True))
    gains = after[:, last_of_day] - day_start[:, last_of_day]  # each day's, closed
    best_before = np.maximum.accumulate(gains, axis=1)
    best_before = np.concatenate((np.full((len(after), 1), -np.inf), best_before[:, :-1]), 1)
    best = np.maximum(best_before[:, day], after - day_start)
    total = after - cash
    return (total > 0) & (best <= pct / 100 * total)


def _max_loss_floor(preset: Preset, after: np.ndarray, day: np.ndarray, cash: float) -> np.ndarray:
    rule = preset.max_loss
    limit = rule.limit_amount if rule.limit_amount is not None else cash * rule.limit_pct / 100
    if rule.mode == "static":
        return np.full(after.shape, cash - limit)
    # the balance at each day's end, known from the next day on (equity peaks: the same,
    # trades being sequential here); worked per day, then spread over the day's trades
    last_of_day = np.flatnonzero(np.append(day[1:] != day[:-1], True))
    peak = np.maximum(np.maximum.accumulate(after[:, last_of_day], axis=1), cash)
    known = np.concatenate((np.full((after.shape[0], 1), cash), peak[:, :-1]), axis=1)
    floor = known[:, day] - limit
    return np.minimum(floor, cash) if rule.lock_at_initial else floor


def _phases_passed(
    preset: Preset,
    after: np.ndarray,
    days: _Days,
    failed_at: np.ndarray,
    cash: float,
    consistent: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per path, the trade at which the last phase passed (n when it did not), and whether
    a phase's time limit ran out first."""
    paths, n = after.shape
    day, label = days.index, days.label
    index = np.arange(n)
    start = np.full(paths, -1)
    base = np.full(paths, cash)
    alive = np.ones(paths, dtype=bool)
    out_of_time = np.zeros(paths, dtype=bool)
    for number, target in enumerate(preset.targets_pct, start=1):
        begun = day[np.clip(start, 0, n - 1)]
        days_in = day[None, :] - np.where(start >= 0, begun, -1)[:, None]
        ok = (after >= base[:, None] * (1 + target / 100)) & (index[None, :] > start[:, None])
        ok &= days_in >= max(preset.min_trading_days, 1)
        ok &= index[None, :] < failed_at[:, None]
        if preset.max_days:  # in calendar trading days from the phase's start
            since = np.where(start >= 0, label[np.clip(start, 0, n - 1)], days.first_label)
            deadline = since + preset.max_days
            ok &= label[None, :] < deadline[:, None]
        if consistent is not None and number == len(preset.targets_pct):
            ok &= consistent
        hit = ok.any(axis=1)
        if preset.max_days:
            out_of_time |= alive & ~hit & (label[-1] >= deadline)
        alive &= hit
        start = np.where(hit, ok.argmax(axis=1), n)
        base = np.where(hit, after[np.arange(paths), np.minimum(start, n - 1)], cash)
    return np.where(alive, start, n), out_of_time
