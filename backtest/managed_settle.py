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
from backtest.results import TradeArrays


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
    """The closing fills, collected column by column, and the volume held after each fill
    (plain Python numbers in the loop; the money is computed for all fills at once)."""

    def __init__(self, n_rows: int) -> None:
        self.fills: list[tuple] = []  # (trade, row, average, price, volume, d, why, closed)
        self.marks: list[tuple[int, float, float]] = []  # (row, volume held, its average)

    def close(self, k, row, average, price, volume, d, why, closed=True) -> None:
        self.fills.append((k, row, average, price, volume, d, why, closed))


class _Lots:
    """Volumes snapped down to the symbol's step; below volume_min is nothing (scalars)."""

    def __init__(self, spec) -> None:
        self.step, self.minimum, self.maximum = spec.volume_step, spec.volume_min, spec.volume_max

    def __call__(self, lots: float) -> float:
        snapped = round(math.floor(lots / self.step + 1e-9) * self.step, 8)
        return 0.0 if snapped + 1e-12 < self.minimum else min(snapped, self.maximum)


def settle(ctx: Context, paths: TradePaths) -> ManagedRun:
    """Size, fill and account every trade of `paths`."""
    book = _Book(len(paths.rows.trade))
    change_rows = _size_changes(paths)
    change_trade = paths.rows.trade[change_rows].tolist()
    buying = paths.direction[paths.rows.trade[change_rows]] > 0
    adding_price = np.round(ctx.q.side(buying, paths.rows.bar[change_rows])[0], ctx.decimals)
    cutting_price = np.round(ctx.q.side(~buying, paths.rows.bar[change_rows])[0], ctx.decimals)
    changes = list(
        zip(
            change_rows.tolist(),
            paths.sizes[change_rows].tolist(),
            adding_price.tolist(),
            cutting_price.tolist(),
            strict=True,
        )
    )
    risk = ctx.sized_by_balance
    if not risk:
        full = ctx.volume_for(ctx.cash, 0.0, 0.0, 0)  # fixed lots: the same for every trade
        done = _fixed_fills(ctx, paths, full, change_rows, cutting_price)
        if done is not None:
            book.fills, book.marks = done
            return _result(ctx, paths, book)
    trades = _TradeLists(paths)
    lots, balance, j = _Lots(ctx.spec), ctx.cash, 0
    for k in range(len(trades.entry_row)):
        first = trades.entry_row[k]
        distance = abs(trades.entry_price[k] - trades.sl_at_entry[k])
        full = ctx.volume_for(balance, trades.entry_price[k], distance, k)
        start = len(book.fills)
        end = j
        while end < len(change_trade) and change_trade[end] == k:
            end += 1
        _one_trade(ctx, trades, book, k, full, changes[j:end], lots, first)
        j = end
        if risk:  # the next entry is sized on the balance this trade leaves
            balance += float(_money(ctx, book.fills[start:]).sum())
    return _result(ctx, paths, book)


def _fixed_fills(ctx, paths, full, change_rows, cutting_price):
    """The fills of every trade at once when the full volume is fixed and nothing scales
    in (the volume only ever goes down): (fills, marks) as _Book holds them; None when a
    trade scales in (the loop handles those)."""
    n_trades = len(paths.entry_row)
    trade = np.concatenate((np.arange(n_trades), paths.rows.trade[change_rows]))
    row = np.concatenate((paths.entry_row, change_rows))
    size = paths.sizes[row]
    price = np.concatenate((np.full(n_trades, np.nan), cutting_price))
    order = np.lexsort((row, trade))
    trade, row, size, price = trade[order], row[order], size[order], price[order]
    target = volume_steps(ctx.spec, full * size)
    index = np.arange(len(trade))
    first = np.searchsorted(trade, np.arange(n_trades))  # each trade's entry event
    is_first = np.zeros(len(trade), dtype=bool)
    is_first[first] = True
    previous = np.concatenate(([0.0], target[:-1]))
    delta = np.where(is_first, 0.0, target - previous)
    if (delta > 1e-9).any():
        return None
    big = len(trade) + 1
    zero_at = np.minimum.reduceat(np.where(target <= 0, index, big), first) if n_trades else first
    valid = index <= zero_at[trade]
    cut = valid & ~is_first & (delta < -1e-9)
    moved = valid & (is_first | cut)
    direction = paths.direction.astype(np.int64)
    average = paths.entry_price[trade]
    last = np.concatenate((first[1:], [len(trade)])) - 1  # each trade's last event
    running = zero_at >= big  # never emptied: it ends with its exit
    exits = np.flatnonzero(running)
    closed_exit = (paths.reason[exits] != END) | ctx.close_at_end
    cuts = np.flatnonzero(cut)
    fills = _columns(
        k=np.concatenate((trade[cuts], exits)),
        row=np.concatenate((row[cuts], paths.exit_row[exits])),
        average=np.concatenate((average[cuts], paths.entry_price[exits])),
        price=np.concatenate((price[cuts], paths.exit_price[exits])),
        volume=np.concatenate((np.round(-delta[cuts], 8), target[last[exits]])),
        d=np.concatenate((direction[trade[cuts]], direction[exits])),
        why=np.concatenate((np.full(len(cuts), SCALE), paths.reason[exits])),
        closed=np.concatenate((np.ones(len(cuts), dtype=bool), closed_exit)),
        exit_last=np.concatenate((np.zeros(len(cuts)), np.ones(len(exits)))),
    )
    return fills, (row[moved], target[moved], average[moved])


def _columns(**columns: np.ndarray) -> dict[str, np.ndarray]:
    """Fills in the loop's order (trade by trade, by row, the exit last), by column."""
    order = np.lexsort((columns["exit_last"], columns["row"], columns["k"]))
    return {
        name: columns[name][order].astype(kind)
        for name, kind in zip(FILL_COLUMNS, _FILL_TYPES, strict=True)
    }


class _TradeLists:
    """Per trade, as Python lists: what the loop reads."""

    def __init__(self, paths: TradePaths) -> None:
        self.entry_row = paths.entry_row.tolist()
        self.entry_price = paths.entry_price.tolist()
        self.sl_at_entry = paths.sl[paths.entry_row].tolist() if len(paths.sl) else []
        self.size_at_entry = paths.sizes[paths.entry_row].tolist() if len(paths.sizes) else []
        self.direction = paths.direction.tolist()
        self.exit_row = paths.exit_row.tolist()
        self.exit_price = paths.exit_price.tolist()
        self.reason = paths.reason.tolist()


def _size_changes(paths: TradePaths) -> np.ndarray:
    """The rows after a trade's entry whose open changes the size, up to its exit (a stop
    inside the exit bar comes after that open's change, a gap or an exit at the open before
    it), in row order (so trade by trade)."""
    rows, sizes = paths.rows, paths.sizes
    trade = rows.trade
    row = np.arange(len(trade))
    before = np.concatenate(([np.nan], sizes[:-1]))
    inside = (paths.reason == STOP_LOSS) | (paths.reason == TAKE_PROFIT)
    inside = (inside & (paths.exit_tau > 0)) | (paths.reason == END)  # after that open
    last_change = np.where(inside, paths.exit_row, paths.exit_row - 1)
    changed = (row > paths.entry_row[trade]) & (row <= last_change[trade]) & (sizes != before)
    changed &= np.isfinite(sizes)
    return np.flatnonzero(changed)


def _one_trade(ctx, trades, book, k, full, changes, lots, first) -> None:
    """One trade's fills: the entry's volume, its scale-ins and partial exits at the opens
    of the rows that change the size, then its exit."""
    d = trades.direction[k]
    volume = lots(full * trades.size_at_entry[k])
    average = trades.entry_price[k]
    book.marks.append((first, volume, average))
    if volume <= 0:
        return  # a size of 0 at the entry opens nothing
    for row, size, add_price, cut_price in changes:
        target = lots(full * size)
        if abs(target - volume) <= 1e-9:
            continue
        if target > volume:  # a scale-in: the added volume at the open
            average = round((average * volume + add_price * (target - volume)) / target, 10)
        else:
            book.close(k, row, average, cut_price, round(volume - target, 8), d, SCALE)
        volume = target
        book.marks.append((row, volume, average))
        if volume <= 0:
            return
    closed = trades.reason[k] != END or ctx.close_at_end
    book.close(
        k, trades.exit_row[k], average, trades.exit_price[k], volume, d, trades.reason[k], closed
    )


FILL_COLUMNS = ("k", "row", "average", "price", "volume", "d", "why", "closed")
_FILL_TYPES = (np.int64, np.int64, float, float, float, np.int64, np.int8, bool)


def _fill_arrays(fills: list[tuple] | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fills as arrays by column (the loop collects tuples; the vectorised path arrays)."""
    if isinstance(fills, dict):
        return fills
    columns = list(zip(*fills, strict=True)) if fills else [()] * len(FILL_COLUMNS)
    return {
        name: np.asarray(values, dtype=kind)
        for name, values, kind in zip(FILL_COLUMNS, columns, _FILL_TYPES, strict=True)
    }


def _money(ctx: Context, fills: list[tuple] | dict[str, np.ndarray]) -> np.ndarray:
    """P/L net of commission of closing fills (0 for a fill still open at the end)."""
    f = _fill_arrays(fills)
    closed, volume = f["closed"], f["volume"]
    move = f["d"] * (f["price"] - f["average"]) * ctx.spec.contract_size * volume
    money = np.where(closed, ctx.to_account(move, f["price"]), 0.0)
    return money - volume * ctx.commission_per_lot * 2.0 * closed


def _result(ctx: Context, paths: TradePaths, book: _Book) -> ManagedRun:
    f = _fill_arrays(book.fills)
    k, row, average, price, volume, why, closed = (
        f[name] for name in ("k", "row", "average", "price", "volume", "why", "closed")
    )
    pnl = _money(ctx, f)
    commission = volume * ctx.commission_per_lot * np.where(closed, 2.0, 1.0)
    equity, exposure = _equity(ctx, paths, book, row, pnl, commission, closed)
    return ManagedRun(
        position=k + 1,
        signal_bar=paths.signal_bar[k],
        entry_bar=paths.entry_bar[k],
        exit_bar=paths.rows.bar[row] if len(row) else np.zeros(0, dtype=np.int64),
        direction=paths.direction[k].astype(np.int8),
        entry_price=average.astype(float),
        exit_price=price.astype(float),
        volume=volume,
        pnl=pnl,
        commission=commission,
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
    volume_row, average_row = np.full(len(row), np.nan), np.full(len(row), np.nan)
    marks = book.marks
    if isinstance(marks, list):
        marks = tuple(np.asarray(c) for c in zip(*marks, strict=True)) if marks else ()
    if len(marks):
        at, held_volume, held_average = marks
        volume_row[at.astype(np.int64)] = held_volume
        average_row[at.astype(np.int64)] = held_average
    marked = np.isfinite(volume_row)
    volume = rows.forward_fill(volume_row, marked)
    average = rows.forward_fill(average_row, marked)
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


def trade_arrays(run: ManagedRun, decimals: int) -> TradeArrays:
    """The engine's trades: one row per closing fill (partial exits included)."""
    keep = run.closed
    return TradeArrays(
        entry_bar=run.entry_bar[keep],
        exit_bar=run.exit_bar[keep],
        signal_bar=run.signal_bar[keep],
        position=run.position[keep],
        direction=run.direction[keep],
        entry_price=np.round(run.entry_price[keep], decimals),
        exit_price=run.exit_price[keep],
        volume=run.volume[keep],
        pnl=np.round(run.pnl[keep], 2),
        commission=np.round(run.commission[keep], 2),
        exit_reason=run.reason[keep],
        sl=run.sl[keep],
        tp=run.tp[keep],
    )


def stops_by_bar(paths: TradePaths, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bar, the stop-loss and take-profit in force (NaN when flat): the report's path."""
    row = np.arange(len(paths.rows.trade))
    trade = paths.rows.trade
    held = (row >= paths.entry_row[trade]) & (row <= paths.exit_row[trade])
    sl, tp = np.full(n, np.nan), np.full(n, np.nan)
    sl[paths.rows.bar[held]] = paths.sl[held]
    tp[paths.rows.bar[held]] = paths.tp[held]
    return sl, tp
