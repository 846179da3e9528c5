"""The no-look-ahead check of any strategy: its decision on bar t must be the same whether the
data ends at bar t or goes on. A strategy that peeks at later bars (a negative shift, a centred
window, a normalisation by the whole series) gives different answers and is caught. Its
informative timeframes are cut from the same bars, so a higher bar read before it closed (a
merge by date instead of `align`) is caught too."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtest.broker_clock import UTC_ZONE, BrokerZone
from backtest.informative import informative_for
from backtest.strategy import (
    SIGNAL_COLUMNS,
    Strategy,
    StrategyError,
    compute_signals,
    describe,
    strategy_label,
    strategy_warmup,
)
from backtest.trading_windows import ensure_broker_time

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mismatch:
    bar: int
    time: pd.Timestamp
    column: str
    full: float
    truncated: float


@dataclass(frozen=True)
class LookaheadReport:
    strategy: str
    checked: list[int] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        if self.ok:
            return (
                f"OK: {self.strategy} uses no future data ({len(self.checked)} truncation "
                f"points compared, every signal column equal)"
            )
        lines = [
            f"LOOK-AHEAD: {self.strategy} changes its past decisions when more data "
            f"arrives ({len(self.mismatches)} differences in {len(self.checked)} "
            "truncation points):"
        ]
        for m in self.mismatches[:10]:
            lines.append(
                f"  bar {m.bar} ({m.time}) {m.column}: full data {m.full!r}, data "
                f"ending at that bar {m.truncated!r}"
            )
        return "\n".join(lines)


class LookaheadError(StrategyError):
    """The check cannot be made: too few bars for the strategy, or no checkpoints asked for."""


def bars_needed(warmup: int) -> int:
    """Bars the check needs: the warm-up, one bar to decide on, and at least one later bar
    whose absence could change that decision (truncating at the last bar proves nothing)."""
    return max(warmup, 1) + 2


def checkpoints(n_bars: int, warmup: int, count: int) -> list[int]:
    """Bars to truncate at: spread after the warm-up, always including the last few."""
    first = min(max(warmup, 1), n_bars - 1)
    spread = np.linspace(first, n_bars - 1, num=max(count - 3, 1)).astype(int)
    last = range(max(first, n_bars - 3), n_bars)
    return sorted(set(spread.tolist()) | set(last))


def check_lookahead(
    strategy: Strategy,
    bars: pd.DataFrame,
    *,
    checkpoints_count: int | None = None,
    checkpoints: int = 50,
    zone: BrokerZone = UTC_ZONE,
    where: str = "the bars",
    other_bars: dict[str, pd.DataFrame] | None = None,
) -> LookaheadReport:
    """Compare the full-data signals with signals on bars[:t+1] at many t (the informative
    timeframes cut from each, on the broker's clock `zone`, and `other_bars`, the other
    symbols it reads, up to the same bar; `where` names the data in an InformativeError).

    Raises LookaheadError when there is nothing to compare: fewer bars than bars_needed, or
    fewer than one checkpoint.
    """
    count = checkpoints if checkpoints_count is None else checkpoints_count
    if count < 1:
        raise LookaheadError(f"--checkpoints must be at least 1, got {count}")
    warmup = strategy_warmup(strategy)
    if len(bars) < bars_needed(warmup):
        raise LookaheadError(
            f"{describe(type(strategy))} has a warm-up of {warmup} bars, so the look-ahead "
            f"check needs at least {bars_needed(warmup)} bars (a few hundred more make it "
            f"stronger); the data has {len(bars)}"
        )
    bars = ensure_broker_time(bars, zone)  # once, not per prefix

    def signals_of(data: pd.DataFrame):  # other symbols' bars are cut at the same time
        informative = informative_for(strategy, data, zone, where, other_bars)
        return compute_signals(strategy, data, informative=informative)

    full = signals_of(bars)
    points = _points(len(bars), warmup, count)
    mismatches = []
    for t in points:
        prefix = signals_of(bars.iloc[: t + 1])
        for column in SIGNAL_COLUMNS:
            a, b = getattr(full, column)[t], getattr(prefix, column)[t]
            if not (a == b or (_is_nan(a) and _is_nan(b))):
                mismatches.append(Mismatch(t, bars["time"].iloc[t], column, _plain(a), _plain(b)))
    return LookaheadReport(strategy_label(strategy), points, mismatches)


_points = checkpoints


def _is_nan(value: object) -> bool:
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _plain(value: object) -> float:
    return value.item() if isinstance(value, np.generic) else value
