"""A backtest run's equity path as a prop-firm challenge reads it (`backtest.challenge`):
per bar the closed balance, the close equity, the worst equity inside the bar and the units
held; per trading day its first and last bar.

Equity is at its worst inside each bar: the open positions marked at the bar's adverse
extreme (the low for a long, the high for a short), so a dip through a floor that recovers
within the bar still breaches. Days start at the preset's reset (a wall time in a named
zone, or the broker's).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from backtest.broker_clock import DAY, BrokerZone, parse_zone
from backtest.fills import low_first
from backtest.prop_rules import Preset, Reset
from backtest.results import STOP_LOSS, TAKE_PROFIT, BacktestResult
from backtest.symbols import SymbolSpec

_NANOS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}  # per second, by unit


@dataclass(frozen=True)
class Balance:
    """The closed balance: `levels[k]` from the bar of the k-th exit (`steps`, sorted) on;
    `levels[0]` before the first. Indexed by bar like an array."""

    steps: np.ndarray
    levels: np.ndarray

    @classmethod
    def of(cls, exit_bars: np.ndarray, pnl: np.ndarray, cash: float) -> Balance:
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
class EquityPath:
    """Per bar: UTC times, closed balance (steps at the exits), close equity, worst equity
    and the units held; per trading day: its first and last bar and its label (days since
    the epoch in the reset's zone)."""

    times: pd.DatetimeIndex
    balance: Balance
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


def run_starts(values: np.ndarray) -> np.ndarray:
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
class TradeColumns:
    """The trade columns the path reads, as arrays (each read once from the frame)."""

    entry: np.ndarray
    exit: np.ndarray
    pnl: np.ndarray
    units: np.ndarray  # signed, in whole ten-thousandths of a unit: a flat sum is exactly 0
    took_profit: np.ndarray
    inside: np.ndarray  # left inside its exit bar: a stop or a target
    exit_price: np.ndarray

    @classmethod
    def of(cls, result: BacktestResult, spec: SymbolSpec) -> TradeColumns:
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


def equity_path(
    trades: TradeColumns,
    equity_curve: pd.Series,
    bars: pd.DataFrame,
    spec: SymbolSpec,
    cash: float,
    preset: Preset,
    broker_zone: BrokerZone,
) -> EquityPath:
    n = len(bars)
    balance = Balance.of(trades.exit, trades.pnl, cash)
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
    return EquityPath(times, balance, equity, worst, exposure, starts, ends, labels)


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
    starts = run_starts(day)
    labels = day[starts]
    for shared in (starts, labels):
        shared.setflags(write=False)
    _last_days = (stamps.copy(), reset, starts, labels)
    return starts, labels


def _exposure(trades: TradeColumns, n: int) -> np.ndarray:
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
