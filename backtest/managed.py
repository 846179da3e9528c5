"""Position management in the backtest: stops that move, partial exits and scale-ins, limit and
stop entries that expire, time exits. Used when a strategy gives any of those columns; the
plain engine path serves the others unchanged.

Everything is resolved on the one intrabar rule of backtest/fills.py, in this order on each
bar: what the open has passed fills at the open (stops in force since the previous bar,
waiting limit and stop entries); then the orders decided on the previous bar go out at the
open (an exit, a time exit, a change of size, a market entry); then levels fill where the
path reaches them. A stop that moves is set at the open: a level on the wrong side of the
open (or nearer than the symbol's stops level) is refused, as a server refuses it, and the
old one stays. Partial exits and scale-ins fill at the open; a volume is snapped to the
step, and what would stay below volume_min is closed too.

Vectorised over all trades at once: every trade's bars are laid end to end ("rows"), from
the bar after its decision to the bar whose open ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backtest.fills import NEVER, first_touch, path_points
from backtest.signals import LIMIT, MARKET, STOP, Signals
from backtest.symbols import SymbolSpec

OPEN_ORDER = 1e-9  # orders sent at the open come right after what the open's gap filled
SIGNAL, STOP_LOSS, TAKE_PROFIT, END, TIME, SCALE = range(6)  # exit reasons (EXIT_REASONS)


@dataclass
class Rows:
    """Every trade's bars laid end to end: trade index, bar and position within the trade."""

    trade: np.ndarray
    bar: np.ndarray
    start: np.ndarray  # first row of each trade
    length: np.ndarray

    @classmethod
    def spanning(cls, first_bar: np.ndarray, last_bar: np.ndarray) -> Rows:
        length = np.maximum(last_bar - first_bar + 1, 0)
        start = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64)
        total = int(length.sum())
        trade = np.repeat(np.arange(len(length)), length)
        bar = np.repeat(first_bar - start, length) + np.arange(total)
        return cls(trade, bar.astype(np.int64), start, length)

    def first_where(self, mask: np.ndarray) -> np.ndarray:
        """Per trade, the first row where `mask` holds (len(rows) when none)."""
        total = len(self.trade)
        if not total:
            return np.full(len(self.start), 0, dtype=np.int64)
        keyed = np.where(mask, np.arange(total), total)
        found = np.full(len(self.start), total, dtype=np.int64)
        has = self.length > 0
        found[has] = np.minimum.reduceat(keyed, self.start[has])
        return found

    def forward_fill(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """`values` carried forward from the last row where `valid` holds, within a trade
        (the caller makes each trade's first relevant row valid)."""
        index = np.where(valid, np.arange(len(values)), -1)
        np.maximum.accumulate(index, out=index)
        return np.where(index >= 0, values[np.maximum(index, 0)], np.nan)


@dataclass
class Quotes:
    """Per bar: the path's points as a seller meets them (bid) and as a buyer does (ask),
    rounded to the fill precision so a level and a price that are equal compare equal."""

    bid_points: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    ask_points: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    ask_offset: np.ndarray
    bid_offset: np.ndarray
    close: np.ndarray

    def side(self, buying: np.ndarray, bars: np.ndarray) -> tuple[np.ndarray, ...]:
        """The path's points at `bars` as a buyer (ask) or a seller (bid) meets them."""
        return tuple(
            np.where(buying, ask[bars], bid[bars])
            for ask, bid in zip(self.ask_points, self.bid_points, strict=True)
        )


def quotes(open_, high, low, close, ask_offset, bid_offset, n: int, decimals: int) -> Quotes:
    """Quotes from bars (the bid or mid prices) and the offsets to the ask and the bid."""
    zeros = np.zeros(n)
    ask_offset = ask_offset if len(ask_offset) else zeros
    bid_offset = bid_offset if len(bid_offset) else zeros
    points = path_points(open_, high, low, close)
    return Quotes(
        tuple(np.round(p + bid_offset, decimals) for p in points),
        tuple(np.round(p + ask_offset, decimals) for p in points),
        ask_offset,
        bid_offset,
        close,
    )


# ---------------------------------------------------------------- entries


def enter(
    signals: Signals,
    q: Quotes,
    signal_bar: np.ndarray,
    scheduled_exit: np.ndarray,
    direction: np.ndarray,
    decimals: int,
    n: int,
    digits: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Rows]:
    """(entry bar, entry tau on the path, entry price) per trade, NaN price when a limit or
    stop entry expired unfilled; and the rows from each trade's first bar to its last."""
    first = signal_bar + 1
    last = np.minimum(scheduled_exit, n - 1)
    rows = Rows.spanning(first, last)
    kind = signals.entry_type[signal_bar]
    buying = direction > 0
    entry_bar = first.copy()
    entry_tau = np.zeros(len(first))
    opening = q.side(buying, first)[0]
    entry_price = np.round(opening, decimals)
    pending = kind != MARKET
    if pending.any():
        bar, tau, price = _fill_pending(
            signals, q, rows, signal_bar, scheduled_exit, direction, kind, decimals, digits
        )
        entry_bar = np.where(pending, bar, entry_bar)
        entry_tau = np.where(pending, tau, entry_tau)
        entry_price = np.where(pending, price, entry_price)
    return entry_bar, entry_tau, entry_price, rows


def _fill_pending(signals, q, rows, signal_bar, scheduled_exit, direction, kind, decimals, digits):
    """Where each limit or stop entry fills: the first touch of its price (rounded to the
    symbol's digits, as the order carries it) within its window (until it expires, or the
    open of the bar where the decision changed)."""
    trade = rows.trade
    price = np.round(signals.entry_price[signal_bar], digits)[trade]
    expiry = signals.expiry_bars[signal_bar][trade]
    window_end = np.where(np.isfinite(expiry), signal_bar[trade] + expiry, np.inf)
    buying = direction[trade] > 0
    # a buy limit waits for the ask to fall to it, a buy stop for it to rise; sells the bid
    falling = np.where(kind[trade] == LIMIT, buying, ~buying)
    points = q.side(buying, rows.bar)
    start = np.zeros(len(trade))
    tau = first_touch(price, falling, points, start)
    changed = rows.bar >= scheduled_exit[trade]  # only the open of that bar: then cancelled
    tau = np.where(changed & (tau > 0), NEVER, tau)
    tau = np.where(rows.bar > window_end, NEVER, tau)
    tau = np.where(np.isin(kind[trade], (LIMIT, STOP)), tau, NEVER)
    hit = rows.first_where(tau < NEVER)
    filled = hit < len(trade)
    at = np.minimum(hit, max(len(trade) - 1, 0))
    bar = np.where(filled, rows.bar[at] if len(trade) else 0, -1)
    t = np.where(filled, tau[at] if len(trade) else NEVER, NEVER)
    opened = points[0][at] if len(trade) else np.zeros(len(hit))
    fill = np.where(t == 0.0, opened, price[at] if len(trade) else np.nan)
    return bar, t, np.where(filled, np.round(fill, decimals), np.nan)


# ---------------------------------------------------------------- stops


def stop_path(
    rows: Rows,
    opening: np.ndarray,
    spec: SymbolSpec,
    *,
    signal_bar: np.ndarray,
    entry_row: np.ndarray,
    entry_price: np.ndarray,
    direction: np.ndarray,
    absolute: np.ndarray,
    distance: np.ndarray,
    sign: int,
    moving: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """(level in force at each row's open, level in force along each row's path) for the
    stop-loss (sign -1) or take-profit (sign +1); NaN where none. `opening`: each row's
    open on the side that closes the position."""
    trade = rows.trade
    d = direction[trade]
    entry_price_row = entry_price[trade]
    row = np.arange(len(trade))
    is_entry = row == entry_row[trade]
    after = row > entry_row[trade]
    initial = _level(absolute[signal_bar], distance[signal_bar], entry_price, sign * direction)
    values = np.where(is_entry, np.round(initial[trade], spec.digits), np.nan)
    valid = is_entry.copy()
    if moving:
        previous = np.maximum(rows.bar - 1, 0)
        asked = _level(absolute[previous], distance[previous], entry_price_row, sign * d)
        asked = np.round(asked, spec.digits)
        margin = spec.stops_level * spec.point
        stop_side = (sign < 0) == (d > 0)  # below the price: a long's SL, a short's TP
        allowed = np.where(stop_side, asked < opening - margin, asked > opening + margin)
        movable = after & np.isfinite(asked) & allowed
        values = np.where(movable, asked, values)
        valid |= movable
    in_force = rows.forward_fill(values, valid)
    in_force = np.where(row >= entry_row[trade], in_force, np.nan)
    at_open = np.where(after, np.concatenate(([np.nan], in_force[:-1])), np.nan)
    return at_open, in_force


def _level(absolute, distance, entry_price, sign):
    """An absolute level wins; otherwise entry price + sign × distance; NaN when neither."""
    return np.where(np.isfinite(absolute), absolute, entry_price + sign * distance)


def stop_touch(
    rows: Rows,
    q: Quotes,
    direction: np.ndarray,
    at_open: np.ndarray,
    in_force: np.ndarray,
    start: np.ndarray,
    points: tuple[np.ndarray, ...],
    *,
    stop_loss: bool,
) -> np.ndarray:
    """Where on each row's path the stop is reached (NEVER when not): a level in force at
    the open that the open has passed fills at 0; the level set at the open from `start`.
    `points` are the path's points on the closing side (a long sells at the bid)."""
    d = direction[rows.trade]
    falling = (d > 0) == stop_loss  # a long's stop-loss is below, its take-profit above
    with np.errstate(invalid="ignore"):
        passed = np.where(falling, points[0] <= at_open, points[0] >= at_open)
    path = first_touch(in_force, falling, points, np.maximum(start, OPEN_ORDER))
    return np.where(passed, 0.0, path)


# ---------------------------------------------------------------- volumes and money


def volume_steps(spec: SymbolSpec, lots: np.ndarray) -> np.ndarray:
    """Volumes snapped down to the step; what is below volume_min is nothing."""
    snapped = np.floor(lots / spec.volume_step + 1e-9) * spec.volume_step
    snapped = np.round(snapped, 8)
    return np.where(snapped + 1e-12 < spec.volume_min, 0.0, np.minimum(snapped, spec.volume_max))


# ---------------------------------------------------------------- the whole run


@dataclass
class Context:
    """What run_managed needs of the engine: prices, costs, the symbol, sizing."""

    q: Quotes
    spec: SymbolSpec
    decimals: int
    cash: float
    commission_per_lot: float
    close_at_end: bool
    volume_for: Callable[[float, float, float, int], float]  # balance, price, SL distance, k
    sized_by_balance: bool  # risk sizing: each entry's volume depends on the trades before
    to_account: Callable[[np.ndarray, np.ndarray], np.ndarray]  # profit currency -> account
    n: int


@dataclass
class TradePaths:
    """Every trade's path through its rows: levels, sizes, the fill that ends it."""

    rows: Rows
    signal_bar: np.ndarray
    entry_bar: np.ndarray
    entry_row: np.ndarray
    entry_price: np.ndarray
    direction: np.ndarray
    sl: np.ndarray  # level in force along each row's path
    tp: np.ndarray
    sizes: np.ndarray  # fraction of the full volume held through each row
    exit_row: np.ndarray
    exit_tau: np.ndarray  # where on the exit row's path it filled (0: at the open)
    exit_price: np.ndarray
    reason: np.ndarray


def trade_paths(
    signals: Signals,
    ctx: Context,
    *,
    signal_bar: np.ndarray,
    scheduled_exit: np.ndarray,
    direction: np.ndarray,
    moving: bool,
) -> TradePaths:
    """Fill every planned trade under the management columns; see the module docstring."""
    q, n = ctx.q, ctx.n
    entry_bar, entry_tau, entry_price, rows = enter(
        signals, q, signal_bar, scheduled_exit, direction, ctx.decimals, n, ctx.spec.digits
    )
    keep = np.isfinite(entry_price)  # a limit or stop entry that never filled is no trade
    if not keep.all():
        signal_bar, scheduled_exit, direction = (
            signal_bar[keep],
            scheduled_exit[keep],
            direction[keep],
        )
        entry_bar, entry_tau, entry_price = entry_bar[keep], entry_tau[keep], entry_price[keep]
        rows = Rows.spanning(signal_bar + 1, np.minimum(scheduled_exit, n - 1))
    entry_row = rows.start + (entry_bar - (signal_bar + 1))
    row = np.arange(len(rows.trade))
    on_entry = row == entry_row[rows.trade]
    start = np.where(on_entry, entry_tau[rows.trade], 0.0)
    # an entry at the open meets a level the open has already passed at once (a gap)
    gaps_at_entry = on_entry & (start == 0.0)
    closing = q.side(direction[rows.trade] < 0, rows.bar)  # a long sells at the bid
    stops = {}
    for name, sign, absolute, distance in (
        ("sl", -1, signals.sl, signals.sl_distance),
        ("tp", 1, signals.tp, signals.tp_distance),
    ):
        if not (np.isfinite(absolute).any() or np.isfinite(distance).any()):
            none = np.full(len(rows.trade), np.nan)  # the strategy never sets this level
            stops[name] = (none, none, np.full(len(rows.trade), NEVER))
            continue
        at_open, in_force = stop_path(
            rows,
            closing[0],
            ctx.spec,
            signal_bar=signal_bar,
            entry_row=entry_row,
            entry_price=entry_price,
            direction=direction,
            absolute=absolute,
            distance=distance,
            sign=sign,
            moving=moving,
        )
        at_open = np.where(gaps_at_entry, in_force, at_open)
        touch = stop_touch(
            rows, q, direction, at_open, in_force, start, closing, stop_loss=name == "sl"
        )
        stops[name] = (at_open, in_force, touch)
    sizes = _size_path(signals, rows, signal_bar, entry_row)
    exit_row, exit_tau, reason = _first_exits(
        signals, rows, stops, sizes, signal_bar, scheduled_exit, entry_row, entry_bar, n
    )
    exit_price = _exit_prices(q, rows, stops, direction, exit_row, exit_tau, reason, ctx)
    return TradePaths(
        rows=rows,
        signal_bar=signal_bar,
        entry_bar=entry_bar,
        entry_row=entry_row,
        entry_price=entry_price,
        direction=direction,
        sl=stops["sl"][1],
        tp=stops["tp"][1],
        sizes=sizes,
        exit_row=exit_row,
        exit_tau=exit_tau,
        exit_price=exit_price,
        reason=reason,
    )


def _size_path(signals: Signals, rows: Rows, signal_bar: np.ndarray, entry_row: np.ndarray):
    """The fraction of the full volume held through each row (after its open's orders)."""
    trade = rows.trade
    row = np.arange(len(trade))
    is_entry = row == entry_row[trade]
    first = signals.size[signal_bar]
    first = np.where(np.isfinite(first), first, 1.0)
    asked = signals.size[np.maximum(rows.bar - 1, 0)]
    values = np.where(is_entry, first[trade], asked)
    valid = is_entry | ((row > entry_row[trade]) & np.isfinite(asked))
    sizes = rows.forward_fill(values, valid)
    return np.where(row >= entry_row[trade], sizes, np.nan)


def _first_exits(signals, rows, stops, sizes, signal_bar, scheduled_exit, entry_row, entry_bar, n):
    """Per trade: the row, the place on its path and the reason of the fill that ends it."""
    trade = rows.trade
    row = np.arange(len(trade))
    live = row >= entry_row[trade]
    last_row = rows.start + rows.length - 1
    candidates = {
        STOP_LOSS: np.where(live, stops["sl"][2], NEVER),
        TAKE_PROFIT: np.where(live, stops["tp"][2], NEVER),
        # the strategy's own exit at the open of its bar: a stop the open passed there would
        # fill at the same price, so the exit is the strategy's (as without management)
        SIGNAL: np.where((row == last_row[trade]) & (scheduled_exit[trade] < n), 0.0, NEVER),
    }
    held_for = signals.max_bars[signal_bar]
    time_bar = np.where(np.isfinite(held_for), entry_bar + held_for, np.inf)
    candidates[TIME] = np.where(live & (rows.bar >= time_bar[trade]), OPEN_ORDER, NEVER)
    emptied = live & (row > entry_row[trade]) & (sizes <= 0)
    candidates[SCALE] = np.where(emptied, OPEN_ORDER, NEVER)
    earliest = np.minimum.reduce(list(candidates.values()))
    at = rows.first_where(earliest < NEVER)
    ended = at < len(trade)
    at_row = np.where(ended, at, last_row)
    tau = np.where(ended, earliest[np.minimum(at_row, max(len(trade) - 1, 0))], NEVER)
    reason = np.full(len(at_row), END, dtype=np.int8)
    for code in (SCALE, TIME, TAKE_PROFIT, STOP_LOSS, SIGNAL):  # later codes win a tie
        hit = ended & (candidates[code][at_row] == tau)
        reason = np.where(hit, code, reason)
    return at_row, tau, reason


def _exit_prices(q, rows, stops, direction, exit_row, exit_tau, reason, ctx) -> np.ndarray:
    bar = rows.bar[exit_row]
    closing = q.side(direction < 0, bar)  # selling a long at the bid, buying a short back
    at_level = np.where(reason == STOP_LOSS, stops["sl"][1][exit_row], stops["tp"][1][exit_row])
    gap_level = np.where(reason == STOP_LOSS, stops["sl"][0][exit_row], stops["tp"][0][exit_row])
    level = np.where(exit_tau == 0.0, gap_level, at_level)
    by_stop = (reason == STOP_LOSS) | (reason == TAKE_PROFIT)
    price = np.where(by_stop & (exit_tau > 0), level, closing[0])
    price = np.where(reason == END, closing[3], price)
    return np.round(price, ctx.decimals)
