"""The backtest engine: turns a strategy's per-bar decisions into fills, trades and an equity curve.

Fill model (see docs/backtest.md):
- A decision change on bar t fills at the open of bar t+1; a change on the last bar is not filled.
- Buys fill at the ask, sells at the bid. spread_mode "half" treats bar prices as mid prices
  (ask = price + spread/2, bid = price - spread/2); spread_mode "bid" treats them as bid prices, as
  MetaTrader 5 bars are (ask = price + spread, bid = price). The spread is in points, per bar from
  the data's `spread` column or one constant.
- Commission is charged per lot per side, in the account currency.
- SL/TP are checked inside every bar the trade is held, including the entry bar, against the price
  on the closing side, along the one intrabar path of backtest/fills.py: a bar that opens beyond
  a level fills at that open (gaps are not skipped); otherwise the level the path reaches first
  (open, the nearer extreme, the other extreme, close) fills at the level.
- A trade still open on the last bar closes at its close (reason "end") unless close_at_end=False.
- Position management (stops that move, partial exits and scale-ins, limit and stop entries,
  time exits) runs in backtest/managed.py on the same rules; one row per closing fill then.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtest.errors import UsageError
from backtest.fills import low_first
from backtest.informative import informative_for
from backtest.managed import Context, quotes, trade_paths
from backtest.managed_settle import settle, stops_by_bar, trade_arrays
from backtest.metrics import compute_stats
from backtest.results import (
    END,
    EXIT_REASONS,
    SIGNAL,
    SPREAD_MODES,
    STOP_LOSS,
    TAKE_PROFIT,
    TRADE_COLUMNS,
    BacktestConfig,
    BacktestResult,
    TradeArrays,
)
from backtest.sizing import SizingError, position_size, volume_rule
from backtest.strategy import Signals, Strategy, compute_signals, strategy_label
from backtest.symbols import SymbolSpec
from backtest.trading_windows import ensure_broker_time, restrict_to_windows, symbol_currencies

__all__ = [
    "EXIT_REASONS",
    "SPREAD_MODES",
    "TRADE_COLUMNS",
    "BacktestConfig",
    "BacktestResult",
    "fill_decimals",
    "run_backtest",
    "trade_exposure_bars",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Prices:
    """Bar prices plus the offsets from bar price to ask (buys) and to bid (sells)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    ask_offset: np.ndarray
    bid_offset: np.ndarray
    decimals: int  # fills are rounded here: digits, one more when half-spreads split a point
    has_spread: bool

    def exit_offset(self, direction: np.ndarray, bars: np.ndarray) -> np.ndarray | float:
        """Closing a long sells at the bid; closing a short buys at the ask."""
        if not self.has_spread:
            return 0.0
        return np.where(direction > 0, self.bid_offset[bars], self.ask_offset[bars])

    def entry_offset(self, direction: np.ndarray, bars: np.ndarray) -> np.ndarray | float:
        if not self.has_spread:
            return 0.0
        return np.where(direction > 0, self.ask_offset[bars], self.bid_offset[bars])


@dataclass
class _Plan:
    """Trades implied by decision changes, before stops and sizing."""

    signal_bar: np.ndarray
    entry_bar: np.ndarray
    scheduled_exit: np.ndarray  # bar whose open closes the trade; n = held to the end
    direction: np.ndarray
    entry_price: np.ndarray = field(default_factory=lambda: np.empty(0))
    sl: np.ndarray = field(default_factory=lambda: np.empty(0))
    tp: np.ndarray = field(default_factory=lambda: np.empty(0))
    exit_bar: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    exit_price: np.ndarray = field(default_factory=lambda: np.empty(0))
    exit_reason: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    closed: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.entry_bar)


def run_backtest(
    bars: pd.DataFrame,
    strategy: Strategy,
    *,
    spec: SymbolSpec,
    config: BacktestConfig | None = None,
    signals: Signals | None = None,
    trade_from: int = 0,
    other_bars: Mapping[str, pd.DataFrame] | None = None,
) -> BacktestResult:
    """Backtest `strategy` on one symbol's bars (canonical frame, see backtest.data).

    Decisions on bars before `trade_from` are not acted on (those bars only warm the
    strategy up), as for a trader that starts at that bar. `other_bars`: the bars of the
    other symbols the strategy reads (its `informative` entries), by symbol.
    """
    config = config or BacktestConfig()
    n = len(bars)
    if n < 2:
        raise UsageError(f"need at least 2 bars to backtest, got {n}")
    if signals is None:
        bars = ensure_broker_time(bars, config.rules.zone)
        zone = config.rules.zone
        informative = informative_for(strategy, bars, zone, spec.name, other_bars)
        signals = compute_signals(strategy, bars, informative=informative)
    if config.rules.active:
        currencies = symbol_currencies(spec)
        signals, _ = restrict_to_windows(config.rules, signals, bars, spec.name, currencies)
    prices = _prices(bars, spec, config)
    plan = _plan_trades(signals, n, trade_from)
    times = _utc_index(bars["time"])
    if signals.manages or getattr(strategy, "moving_stops", False):
        arrays, equity, exposure, stops = _run_managed(
            plan, signals, prices, spec, config, bool(strategy.moving_stops)
        )
    else:
        _set_entries_and_stops(plan, signals, prices, spec)
        _resolve_exits(plan, prices, config.close_at_end, n)
        volume, pnl, commission = _size_and_settle(plan, spec, config)
        equity = _equity_curve(plan, prices, spec, config, volume, pnl, n)
        arrays = _trade_arrays(plan, volume, pnl, commission)
        exposure = _exposure_bars(plan, n)
        stops = _plain_stop_path(plan, n)
    trades = arrays.frame(times, spec.contract_size)
    stats = compute_stats(
        equity=equity,
        times=times,
        trade_pnl=_position_pnl(trades),
        cash=config.cash,
        exposure_bars=exposure,
        trade_durations=(trades["exit_time"] - trades["entry_time"]),
    )
    return BacktestResult(
        trades=trades,
        equity=pd.Series(equity, index=times, name="equity", copy=False),
        stats=stats,
        symbol=spec.name,
        strategy=strategy_label(strategy),
        stops=None
        if stops is None
        else pd.DataFrame({"sl": stops[0], "tp": stops[1]}, index=times, copy=False),
        trade_arrays=arrays,
    )


def _prices(bars: pd.DataFrame, spec: SymbolSpec, config: BacktestConfig) -> _Prices:
    n = len(bars)
    if config.spread_points is not None:
        spread = np.full(n if config.spread_points else 0, config.spread_points * spec.point)
    elif "spread" in bars:
        spread = bars["spread"].to_numpy(dtype=float) * spec.point
    else:
        spread = np.zeros(0)  # no spread: the offsets are never read
    if config.spread_mode == "half":
        ask_offset, bid_offset = spread / 2.0, -spread / 2.0
    else:
        ask_offset, bid_offset = spread, np.zeros(len(spread))
    return _Prices(
        bars["open"].to_numpy(dtype=float),
        bars["high"].to_numpy(dtype=float),
        bars["low"].to_numpy(dtype=float),
        bars["close"].to_numpy(dtype=float),
        ask_offset,
        bid_offset,
        fill_decimals(spec, config),
        bool(spread.any()),
    )


def fill_decimals(spec: SymbolSpec, config: BacktestConfig) -> int:
    """Decimals of fill prices: the symbol's digits, one more when half-spreads split a point."""
    return spec.digits + (config.spread_mode == "half")


def _plan_trades(signals: Signals, n: int, trade_from: int = 0) -> _Plan:
    position = signals.position
    change_bars = np.flatnonzero(signals.actions())
    # the last bar's decision has no next open; warm-up bars before trade_from never trade
    change_bars = change_bars[(change_bars < n - 1) & (change_bars >= trade_from)]
    fills = change_bars + 1
    next_fill = np.append(fills[1:], n)
    opens = position[change_bars] != 0
    return _Plan(
        signal_bar=change_bars[opens],
        entry_bar=fills[opens],
        scheduled_exit=next_fill[opens],
        direction=position[change_bars][opens].astype(np.int8),
    )


def _set_entries_and_stops(
    plan: _Plan, signals: Signals, prices: _Prices, spec: SymbolSpec
) -> None:
    entry = prices.open[plan.entry_bar] + prices.entry_offset(plan.direction, plan.entry_bar)
    plan.entry_price = np.round(entry, prices.decimals)
    d = plan.direction
    plan.sl = _level(signals.sl, signals.sl_distance, plan, -d, spec)
    plan.tp = _level(signals.tp, signals.tp_distance, plan, d, spec)


def _level(
    absolute: np.ndarray, distance: np.ndarray, plan: _Plan, sign: np.ndarray, spec: SymbolSpec
) -> np.ndarray:
    """An absolute level wins; otherwise entry price + sign × distance; NaN when neither."""
    at_signal = absolute[plan.signal_bar]
    from_distance = plan.entry_price + sign * distance[plan.signal_bar]
    return np.round(np.where(np.isfinite(at_signal), at_signal, from_distance), spec.digits)


def _resolve_exits(plan: _Plan, prices: _Prices, close_at_end: bool, n: int) -> None:
    last = n - 1
    at_end = plan.scheduled_exit >= n
    exit_bar = np.where(at_end, last, plan.scheduled_exit)
    exit_side = prices.exit_offset(plan.direction, exit_bar)
    plan.exit_bar = exit_bar.astype(np.int64)
    exit_price = np.where(at_end, prices.close[exit_bar], prices.open[exit_bar]) + exit_side
    plan.exit_price = np.round(exit_price, prices.decimals)
    plan.exit_reason = np.where(at_end, END, SIGNAL).astype(np.int8)
    plan.closed = ~at_end | close_at_end
    if len(plan) and (np.isfinite(plan.sl).any() or np.isfinite(plan.tp).any()):
        _apply_stops(plan, prices, n)


def _apply_stops(plan: _Plan, prices: _Prices, n: int) -> None:
    """Find, per trade, the first held bar where SL or TP is reached (vectorised over all bars)."""
    held_until = np.minimum(plan.scheduled_exit, n)  # bars [entry, held_until) are at risk
    lengths = held_until - plan.entry_bar
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    total = int(lengths.sum())
    bar = np.repeat(plan.entry_bar - starts, lengths) + np.arange(total)
    direction = np.repeat(plan.direction, lengths)
    sl = np.repeat(plan.sl, lengths)
    tp = np.repeat(plan.tp, lengths)
    offset = prices.exit_offset(direction, bar)
    # at the fill precision, so a price equal to a level compares equal (no float noise)
    o, hi, lo = (
        np.round(p[bar] + offset, prices.decimals) for p in (prices.open, prices.high, prices.low)
    )
    long = direction > 0
    with np.errstate(invalid="ignore"):
        sl_gap = np.where(long, o <= sl, o >= sl)
        tp_gap = np.where(long, o >= tp, o <= tp)
        sl_in = np.where(long, lo <= sl, hi >= sl)
        tp_in = np.where(long, hi >= tp, lo <= tp)
    hit = sl_gap | tp_gap | sl_in | tp_in
    first = np.minimum.reduceat(np.where(hit, np.arange(total), total), starts)
    trades = np.flatnonzero(first < starts + lengths)
    at = first[trades]
    # both inside one bar: the level the path meets first (a long's stop-loss is below, met
    # first when the path goes to the low first: see backtest/fills.py)
    down_first = low_first(prices.open[bar[at]], prices.high[bar[at]], prices.low[bar[at]])
    stop_first = down_first == long[at]
    inside_stop = sl_in[at] & (~tp_in[at] | stop_first)
    reason = np.where(sl_gap[at] | (~tp_gap[at] & inside_stop), STOP_LOSS, TAKE_PROFIT)
    price = np.where(sl_gap[at] | tp_gap[at], o[at], np.where(reason == STOP_LOSS, sl[at], tp[at]))
    plan.exit_bar[trades] = bar[at]
    plan.exit_price[trades] = np.round(price, prices.decimals)
    plan.exit_reason[trades] = reason
    plan.closed[trades] = True


def _size_and_settle(
    plan: _Plan, spec: SymbolSpec, config: BacktestConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Volume (lots), P/L after commission and commission, per trade, in account currency."""
    move = plan.direction * (plan.exit_price - plan.entry_price) * spec.contract_size
    per_lot = _to_account(move, plan.exit_price, spec, config.account_currency)
    per_lot = np.where(plan.closed, per_lot, 0.0)
    fee_per_lot = np.where(plan.closed, 2.0, 1.0) * config.commission_per_lot
    if config.sizing.mode == "fixed":
        volume = np.full(len(plan), spec.clamp_volume(config.sizing.lots))
    else:
        volume = _risk_volumes(plan, spec, config, per_lot - fee_per_lot)
    commission = volume * fee_per_lot
    return volume, volume * per_lot - commission, commission


def _risk_volumes(
    plan: _Plan, spec: SymbolSpec, config: BacktestConfig, net_per_lot: np.ndarray
) -> np.ndarray:
    """Risk sizing depends on the balance at each entry, so it runs trade by trade."""
    distance = np.abs(plan.entry_price - plan.sl)
    volume = np.empty(len(plan))
    balance = config.cash
    for k in range(len(plan)):
        try:
            volume[k] = position_size(
                sizing=config.sizing,
                spec=spec,
                equity=balance,
                sl_distance=float(distance[k]),
                price=float(plan.entry_price[k]),
                account_currency=config.account_currency,
            )
        except SizingError as exc:
            raise SizingError(f"trade {k + 1} (bar {int(plan.signal_bar[k])}): {exc}") from None
        balance += volume[k] * net_per_lot[k]
    return volume


def _to_account(
    amount: np.ndarray, price: np.ndarray, spec: SymbolSpec, account_currency: str
) -> np.ndarray:
    if spec.currency_profit == account_currency:
        return amount
    if spec.currency_base == account_currency:
        return amount / price
    spec.profit_to_account(0.0, 1.0, account_currency)  # logs the missing-rate warning once
    return amount


def _equity_curve(
    plan: _Plan,
    prices: _Prices,
    spec: SymbolSpec,
    config: BacktestConfig,
    volume: np.ndarray,
    pnl: np.ndarray,
    n: int,
) -> np.ndarray:
    """Balance after closed trades plus the open trade marked at each bar's close.

    Trades never overlap and come in time order, so every per-bar quantity is constant on the
    segments between entries, ends and exits: np.repeat fills them in one pass each.
    """
    closed = plan.closed
    exits = plan.exit_bar[closed]
    balance = config.cash + np.concatenate(([0.0], np.cumsum(pnl[closed])))
    equity = np.repeat(balance, np.diff(np.concatenate(([0], exits, [n]))))
    if not len(plan):
        return equity
    held_until = np.where(closed, plan.exit_bar, n)  # marked on bars [entry, held_until)
    edges = np.empty(2 * len(plan) + 2, dtype=np.int64)
    edges[0], edges[-1] = 0, n
    edges[1:-1:2], edges[2:-1:2] = plan.entry_bar, held_until
    lengths = np.diff(edges)
    segment_units = np.zeros(2 * len(plan) + 1)
    segment_units[1::2] = plan.direction * volume * spec.contract_size
    segment_entry = np.zeros(2 * len(plan) + 1)
    segment_entry[1::2] = plan.entry_price
    units = np.repeat(segment_units, lengths)
    mark = prices.close
    if prices.has_spread:
        mark = mark + np.where(units > 0, prices.bid_offset, prices.ask_offset)
    floating = units * (mark - np.repeat(segment_entry, lengths))
    equity += _to_account(floating, mark, spec, config.account_currency)
    open_fee = ~closed  # an open trade has paid its entry commission already
    if open_fee.any() and config.commission_per_lot:
        fee = np.bincount(
            plan.entry_bar[open_fee],
            weights=volume[open_fee] * config.commission_per_lot,
            minlength=n,
        )
        equity -= np.cumsum(fee)
    return equity


def _exposure_bars(plan: _Plan, n: int) -> int:
    """Bars during which a position was open at some point."""
    if not len(plan):
        return 0
    return _held_bars(
        plan.entry_bar,
        np.where(plan.closed, plan.exit_bar, n),
        (plan.exit_reason != SIGNAL) & plan.closed,
    )


def trade_exposure_bars(trades: pd.DataFrame) -> int:
    """The same count as _exposure_bars, from a trades frame (closed trades only)."""
    if trades.empty:
        return 0
    return _held_bars(
        trades["entry_bar"].to_numpy(),
        trades["exit_bar"].to_numpy(),
        (trades["exit_reason"] != EXIT_REASONS[SIGNAL]).to_numpy(),
    )


def _held_bars(entry_bar: np.ndarray, exit_bar: np.ndarray, inside_exit_bar: np.ndarray) -> int:
    # a stop, target or end-of-data exit happens inside its bar, so that bar was held; a
    # signal exit fills at the bar's open, so it was not
    return int((exit_bar - entry_bar + inside_exit_bar).sum())


def _utc_index(times: pd.Series) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(times)
    return index.tz_localize("UTC") if index.tz is None else index


def _trade_arrays(
    plan: _Plan, volume: np.ndarray, pnl: np.ndarray, commission: np.ndarray
) -> TradeArrays:
    keep = plan.closed
    return TradeArrays(
        entry_bar=plan.entry_bar[keep],
        exit_bar=plan.exit_bar[keep],
        signal_bar=plan.signal_bar[keep],
        position=np.arange(1, int(keep.sum()) + 1),
        direction=plan.direction[keep],
        entry_price=plan.entry_price[keep],
        exit_price=plan.exit_price[keep],
        volume=volume[keep],
        pnl=np.round(pnl[keep], 2),
        commission=np.round(commission[keep], 2),
        exit_reason=plan.exit_reason[keep],
        sl=plan.sl[keep],
        tp=plan.tp[keep],
    )


def _plain_stop_path(plan: _Plan, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per bar, the levels in force: a trade's own from its entry bar to its exit bar; None
    when no trade has a level (two columns of NaN are 16 bytes a bar)."""
    if not len(plan) or not (np.isfinite(plan.sl).any() or np.isfinite(plan.tp).any()):
        return None
    sl, tp = np.full(n, np.nan), np.full(n, np.nan)
    last = np.where(plan.closed, plan.exit_bar, n - 1)
    lengths = np.maximum(last - plan.entry_bar + 1, 0)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    bars = np.repeat(plan.entry_bar - starts, lengths) + np.arange(int(lengths.sum()))
    sl[bars], tp[bars] = np.repeat(plan.sl, lengths), np.repeat(plan.tp, lengths)
    return sl, tp


def _position_pnl(trades: pd.DataFrame) -> np.ndarray:
    """P/L per position (its partial exits summed), in position order: what the statistics
    count as one trade."""
    if trades.empty or trades["position"].is_unique:
        return trades["pnl"].to_numpy()
    return trades.groupby("position", sort=True)["pnl"].sum().to_numpy()


def _run_managed(
    plan: _Plan,
    signals: Signals,
    prices: _Prices,
    spec: SymbolSpec,
    config: BacktestConfig,
    moving: bool,
) -> tuple[TradeArrays, np.ndarray, int, tuple[np.ndarray, np.ndarray]]:
    """Trades (a row per closing fill), equity curve, exposure and the stops in force per
    bar, under management."""
    n = len(prices.open)
    ctx = Context(
        q=quotes(
            prices.open, prices.high, prices.low, prices.close,
            prices.ask_offset, prices.bid_offset, n, prices.decimals,
        ),
        spec=spec,
        decimals=prices.decimals,
        cash=config.cash,
        commission_per_lot=config.commission_per_lot,
        close_at_end=config.close_at_end,
        volume_for=volume_rule(spec, config.sizing, config.account_currency),
        sized_by_balance=config.sizing.mode != "fixed",
        to_account=lambda amount, price: _to_account(amount, price, spec, config.account_currency),
        n=n,
    )  # fmt: skip
    paths = trade_paths(
        signals,
        ctx,
        signal_bar=plan.signal_bar,
        scheduled_exit=plan.scheduled_exit,
        direction=plan.direction,
        moving=moving,
    )
    run = settle(ctx, paths)
    return trade_arrays(run, prices.decimals), run.equity, run.exposure_bars, stops_by_bar(paths, n)
