"""Money for managed trades: the volume of every fill (partial exits, scale-ins), the P/L and
commission of each closing fill, the equity curve and the exposure.

One row per closing fill: a partial exit is a row of its own that names its position, so a
position's P/L is the sum of its rows. Volumes run trade by trade (risk sizing reads the
balance each earlier trade leaves); everything per bar is vectorised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from backtest.managed import (
    END,
    SCALE,
    STOP_LOSS,
    TAKE_PROFIT,
    Context,
    TradePaths,
    volume_steps,
)


@dataclass
class ManagedRun:
    """Per closing fill (a partial exit or the last exit): the arrays of the trades frame."""

    position: np.ndarray  # which position (1, 2, ...)
    signal_bar: np.ndarray
    entry_bar: np.ndarray
    exit_bar: np.ndarray
    direction: np.ndarray
    entry_price: np.ndarray  # the average entry price of the volume closed
    exit_price: np.ndarray
    volume: np.ndarray
    pnl: np.ndarray
    commission: np.ndarray
    reason: np.ndarray
    sl: np.ndarray  # levels in force when the fill happened
    tp: np.ndarray
    closed: np.ndarray
    equity: np.ndarray
    exposure_bars: int


class _Book:
    """The closing fills, collected column by column, and the volume held after each fill."""

    def __init__(self, n_rows: int) -> None:
        self.fills: list[tuple] = []
        self.volume_row = np.full(n_rows, np.nan)  # volume held from this row's open
        self.average_row = np.full(n_rows, np.nan)  # its average entry price

    def hold(self, row: int, volume: float, average: float) -> None:
        self.volume_row[row], self.average_row[row] = volume, average

    def close(
        self, ctx: Context, k: int, row: int, average: float, price: float, volume: float,
        d: int, why: int, *, closed: bool = True,
    ) -> float:  # fmt: skip
        """Record one closing fill; returns the money it realised (0 while still open)."""
        move = d * (price - average) * ctx.spec.contract_size * volume
        money = float(ctx.to_account(np.array([move]), np.array([price]))[0]) if closed else 0.0
        commission = volume * ctx.commission_per_lot * (2.0 if closed else 1.0)
        self.fills.append(
            (k, row, average, price, volume, money - commission, commission, why, closed)
        )
        return money - commission if closed else 0.0


def settle(ctx: Context, paths: TradePaths) -> ManagedRun:
    """Size, fill and account every trade of `paths`."""
    book = _Book(len(paths.rows.trade))
    changes = _size_changes(paths)
    buying = paths.direction[paths.rows.trade] > 0
    opens = (  # at each row's open: adding to the position, and closing part of it
        ctx.q.side(buying, paths.rows.bar)[0],
        ctx.q.side(~buying, paths.rows.bar)[0],
    )
    balance = ctx.cash
    for k in range(len(paths.entry_row)):
        first = int(paths.entry_row[k])
        distance = abs(float(paths.entry_price[k]) - float(paths.sl[first]))
        full = ctx.volume_for(balance, float(paths.entry_price[k]), distance, k)
        balance += _one_trade(ctx, paths, book, k, full, changes[k], opens)
    return _result(ctx, paths, book)


def _size_changes(paths: TradePaths) -> list[np.ndarray]:
    """Per trade, the rows after its entry whose open changes the size, up to its exit (a
    stop inside the exit bar comes after that open's change, a gap or an exit at the open
    before it)."""
    rows, sizes = paths.rows, paths.sizes
    trade = rows.trade
    row = np.arange(len(trade))
    before = np.concatenate(([np.nan], sizes[:-1]))
    inside = (paths.reason == STOP_LOSS) | (paths.reason == TAKE_PROFIT)
    inside = (inside & (paths.exit_tau > 0)) | (paths.reason == END)  # after that open
    last_change = np.where(inside, paths.exit_row, paths.exit_row - 1)
    changed = (row > paths.entry_row[trade]) & (row <= last_change[trade]) & (sizes != before)
    changed &= np.isfinite(sizes)
    change_rows = np.flatnonzero(changed)
    splits = np.searchsorted(trade[change_rows], np.arange(1, len(paths.entry_row)))
    return np.split(change_rows, splits)


def _one_trade(ctx, paths, book, k, full, changes, opens) -> float:
    """One trade's fills; returns the money it realised (P/L net of commission)."""
    spec, d = ctx.spec, int(paths.direction[k])
    first = int(paths.entry_row[k])
    volume = _lots(spec, full * paths.sizes[first])
    average, realised = float(paths.entry_price[k]), 0.0
    book.hold(first, volume, average)
    if volume <= 0:
        return 0.0  # a size of 0 at the entry opens nothing
    for at in changes:
        target = _lots(spec, full * paths.sizes[at])
        if math.isclose(target, volume, abs_tol=1e-9):
            continue
        adding = target > volume
        price = float(np.round(opens[0 if adding else 1][at], ctx.decimals))
        if adding:  # a scale-in: the added volume at the open
            average = round((average * volume + price * (target - volume)) / target, 10)
        else:
            realised += book.close(ctx, k, int(at), average, price, volume - target, d, SCALE)
        volume = target
        book.hold(int(at), volume, average)
        if volume <= 0:
            return realised
    closed = paths.reason[k] != END or ctx.close_at_end
    exit_row, price, why = int(paths.exit_row[k]), float(paths.exit_price[k]), int(paths.reason[k])
    realised += book.close(ctx, k, exit_row, average, price, volume, d, why, closed=closed)
    return realised


def _lots(spec, lots: float) -> float:
    return float(volume_steps(spec, np.array([lots]))[0])


def _result(ctx: Context, paths: TradePaths, book: _Book) -> ManagedRun:
    columns = list(zip(*book.fills, strict=True)) if book.fills else [()] * 9
    k, row, average, price, volume, pnl, commission, why, closed = (np.asarray(c) for c in columns)
    k = k.astype(np.int64)
    row = row.astype(np.int64)
    closed = closed.astype(bool)
    equity, exposure = _equity(
        ctx, paths, book, row, pnl.astype(float), commission.astype(float), closed
    )
    return ManagedRun(
        position=k + 1,
        signal_bar=paths.signal_bar[k],
        entry_bar=paths.entry_bar[k],
        exit_bar=paths.rows.bar[row] if len(row) else np.zeros(0, dtype=np.int64),
        direction=paths.direction[k].astype(np.int8),
        entry_price=average.astype(float),
        exit_price=price.astype(float),
        volume=volume.astype(float),
        pnl=pnl.astype(float),
        commission=commission.astype(float),
        reason=why.astype(np.int8),
        sl=paths.sl[row] if len(row) else np.zeros(0),
        tp=paths.tp[row] if len(row) else np.zeros(0),
        closed=closed,
        equity=equity,
        exposure_bars=exposure,
    )


def _equity(ctx, paths, book, fill_row, fill_money, fill_fee, closed) -> tuple[np.ndarray, int]:
    """Balance after the closing fills plus what is held, marked at each bar's close (the
    entry commission of a position still open at the end is already paid)."""
    q, spec, n, rows = ctx.q, ctx.spec, ctx.n, paths.rows
    trade = rows.trade
    row = np.arange(len(trade))
    marked = np.isfinite(book.volume_row)
    volume = rows.forward_fill(book.volume_row, marked)
    average = rows.forward_fill(book.average_row, marked)
    open_at_end = (paths.reason == END) & ~ctx.close_at_end
    held_to = np.where(open_at_end, paths.exit_row + 1, paths.exit_row)
    held = (row >= paths.entry_row[trade]) & (row < held_to[trade]) & (volume > 0)
    bars = rows.bar[held]
    d = paths.direction[trade][held]
    mark = q.close[bars] + np.where(d > 0, q.bid_offset[bars], q.ask_offset[bars])
    floating = ctx.to_account(d * volume[held] * spec.contract_size * (mark - average[held]), mark)
    fill_bars = rows.bar[fill_row] if len(fill_row) else np.zeros(0, dtype=np.int64)
    realised = np.bincount(fill_bars[closed], weights=fill_money[closed], minlength=n)[:n]
    equity = ctx.cash + np.cumsum(realised) + np.bincount(bars, weights=floating, minlength=n)[:n]
    if (~closed).any() and ctx.commission_per_lot:
        open_rows = fill_row[~closed]
        entry_bars = paths.entry_bar[trade[open_rows]]
        fees = fill_fee[~closed]
        equity -= np.cumsum(np.bincount(entry_bars, weights=fees, minlength=n)[:n])
    inside = (paths.reason == STOP_LOSS) | (paths.reason == TAKE_PROFIT) | (paths.reason == END)
    exposure = int(((row >= paths.entry_row[trade]) & (row < paths.exit_row[trade])).sum())
    return equity, exposure + int(inside.sum())
