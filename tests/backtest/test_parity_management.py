"""Position management against backtesting.py, fill for fill: stops given at the entry, an ATR
trailing stop (backtesting.lib.TrailingStrategy), limit and stop entries, partial exits.

Both engines run one plan, computed once from seeded synthetic bars: SMA 10/30 crosses (none
before bar WARMUP) and the levels, rounded to the symbol's digits as MT5 quotes them
(TrailingStrategy's own levels are rounded the same way each time it sets them). One lot of
ours is `contract_size` whole units of theirs. No spread, no commission; backtesting.py runs
with trade_on_close=False, hedging=False and exclusive_orders=True (a new entry closes the
position and cancels a waiting entry, as a changed decision does in ours). Every closing fill
is compared: entry and exit bar, entry and exit price, signed units. backtesting.py leaves the
last position open, so our "end" rows are left out.

Where the two differ by design, ours follows MT5. Those positions are found from the bars and
counted, never compared; every other position must be identical. The differences (1 to 5 are
also shown on hand-built bars at the end of this file):

1. Stop-loss and take-profit both reached in one bar. backtesting.py always fills the
   stop-loss (its stop orders are processed first: the pessimistic guess). MT5 fills whichever
   the price reaches first; we take the path open -> nearer extreme -> other extreme -> close,
   so when the extreme on the take-profit's side is nearer the open we fill the take-profit.
2. A stop moved on bar t to a level the open of bar t+1 has already passed. backtesting.py
   sets it and fills it at that open. MT5 refuses the modification (invalid stops: the level
   is on the wrong side of the price) and the old stop stays; so do we: the position goes on
   (it leaves at that open only if the old stop was passed too).
3. A limit or stop entry whose stop-loss or take-profit is reached in the bar it fills (a gap
   through both included). backtesting.py does not fill the bracket in that bar; it warns and
   fills it on a later bar, except a stop entry whose take-profit is reached and stop-loss
   not. MT5 watches the stops from the fill on; we follow the path from the fill.
4. A waiting entry when the decision changes. backtesting.py (exclusive_orders) cancels it at
   the close of the deciding bar. MT5 removes it when the trader's request arrives, after the
   next bar has opened: an open that gaps through the order's price has filled it. We fill it
   at that open and close it at the same open (a row with entry bar = exit bar, no P/L).
   backtesting.py's orders are good-till-cancelled: without exclusive_orders (or a cancel in
   `next`) they outlive the decision. Ours end at the decision change or after `expiry_bars`;
   the reference cancels them the same way here.
5. A partial exit decided on bar t and a stop-loss the open of bar t+1 gaps through.
   backtesting.py fills its close order first (queued ahead of the stop), then the stop at the
   same open: two rows. MT5 triggers the stop at the bar's first price, before the trader's
   partial close arrives: we close the whole position by the stop, one row (same money).
6. Volumes. backtesting.py rounds `trade.close(portion)` to whole units (at least one); we
   snap lots down to the volume step and close a remainder below volume_min. One lot and the
   fractions 1/2 and 1/4 give the same units in both.
7. Prices. backtesting.py keeps levels as floats, we round them to the symbol's digits (the
   plan does it for both). TrailingStrategy back-fills its ATR over the first `periods` bars
   (a look-ahead) that a strategy of ours cannot use: nothing trades before WARMUP.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting import Strategy as ReferenceStrategy
from backtesting.lib import TrailingStrategy

from backtest.engine import BacktestConfig, BacktestResult, run_backtest
from backtest.indicators import atr, crossover, crossunder, hold_signals, sma, true_range
from backtest.management import holdings, tightest
from backtest.sizing import Sizing
from backtest.strategy import Strategy
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from tests.backtest.test_engine import flat_bars, make_bars

WARMUP = 120  # bars: TrailingStrategy's ATR has real values from bar `periods` (<= 100) on
FAST, SLOW = 10, 30
CASH = 1e9  # backtesting.py needs the margin for 100,000 USDJPY units in yen
NO_COSTS = BacktestConfig(spread_points=0, sizing=Sizing.fixed(1.0), cash=CASH)
NAN = np.nan
Key = tuple[int, int]  # a position: its entry bar and side


# ---------------------------------------------------------------- the plan both engines run


@dataclass(frozen=True)
class Plan:
    """Per bar: whether to enter (closing what is held), the side held after the bar, and the
    entry's levels (prices in the symbol's digits); `size` the fraction of the full volume to
    hold after the bar; `units` one lot."""

    act: np.ndarray
    side: np.ndarray
    units: float
    digits: int
    sl: np.ndarray
    tp: np.ndarray
    kind: str = "market"  # of every entry
    price: np.ndarray = field(default_factory=lambda: np.empty(0))
    expiry: float = NAN
    size: np.ndarray = field(default_factory=lambda: np.empty(0))

    def ours(self, **columns: object) -> pd.DataFrame:
        """Our signal columns for the plan; `columns` replace or add some."""
        frame = {"position": self.side, "entry": self.act, "sl": self.sl, "tp": self.tp}
        if self.kind != "market":
            frame["entry_type"] = np.where(self.act, self.kind, "market")
            frame["entry_price"] = self.price
            frame["expiry_bars"] = np.full(len(self.act), self.expiry)
        if len(self.size):
            frame["size"] = self.size
        return pd.DataFrame(frame | columns)


def cross_plan(bars: pd.DataFrame, symbol: str) -> Plan:
    """Long after SMA 10 crosses over SMA 30, short after it crosses under; no levels."""
    close = bars["close"].to_numpy()
    fast, slow = sma(close, FAST), sma(close, SLOW)
    up, down = crossover(fast, slow), crossunder(fast, slow)
    up[:WARMUP] = down[:WARMUP] = False
    spec = get_symbol_spec(symbol)
    nothing = np.full(len(close), NAN)
    side = hold_signals(up, down)
    return Plan(up | down, side, spec.contract_size, spec.digits, sl=nothing, tp=nothing)


def wilder_atr(bars: pd.DataFrame) -> np.ndarray:
    return atr(bars["high"], bars["low"], bars["close"], 14)


def away(plan: Plan, bars: pd.DataFrame, multiple: float, base: np.ndarray | None = None):
    """On the bars that enter: `base` (the close) moved `multiple` ATRs in the entry's favour
    (negative: against it), in digits; NaN elsewhere."""
    base = bars["close"].to_numpy() if base is None else base
    level = base + plan.side * multiple * wilder_atr(bars)
    return np.where(plan.act, np.round(level, plan.digits), NAN)


# ---------------------------------------------------------------- running both


def run_ours(
    bars: pd.DataFrame, symbol: str, frame: pd.DataFrame, *, moving: bool = False
) -> BacktestResult:
    """Our engine on the columns of `frame`, checked as any strategy's output is."""

    class Given(Strategy):
        def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
            return frame

    Given.moving_stops = moving
    return run_backtest(bars, Given(), spec=get_symbol_spec(symbol), config=NO_COSTS)


def run_reference(
    bars: pd.DataFrame, plan: Plan, *, trailing: tuple[float, int] | None = None
) -> pd.Series:
    """backtesting.py's statistics for the plan; `trailing` (n_atr, periods) adds
    TrailingStrategy's stop."""
    data = bars.set_index(bars["time"].dt.tz_localize(None))[["open", "high", "low", "close"]]
    data.columns = ["Open", "High", "Low", "Close"]
    strategy, params = Scripted, {"plan": plan}
    if trailing is not None:
        n_atr, periods = trailing
        strategy, params = ScriptedTrailing, params | {"n_atr": n_atr, "periods": periods}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = Backtest(
            data,
            strategy,
            cash=CASH,
            commission=0,
            spread=0,
            trade_on_close=False,
            hedging=False,
            exclusive_orders=True,
        )
        return backtest.run(**params)


class Scripted(ReferenceStrategy):
    """backtesting.py carrying out a Plan: an order on the bars that enter (exclusive_orders
    closes the position and cancels a waiting entry), a waiting entry cancelled after
    `expiry` bars, `trade.close(portion)` where the plan's size falls."""

    plan: Plan | None = None

    def init(self):
        super().init()
        self.placed = -1

    def next(self):
        super().next()  # TrailingStrategy's trailing, when mixed in
        plan, i = self.plan, len(self.data) - 1
        for trade in self.trades:  # quoted in digits, as MT5 and the plan quote them
            quoted = trade.sl and float(np.round(trade.sl, plan.digits))
            if quoted != trade.sl:
                trade.sl = quoted
        if plan.act[i]:
            self.enter(plan, i)
        else:
            self.expire(plan, i)
            self.scale_out(plan, i)

    def enter(self, plan: Plan, i: int) -> None:
        levels = {"sl": plan.sl[i], "tp": plan.tp[i]}
        if plan.kind != "market":
            levels[plan.kind] = plan.price[i]
        given = {name: float(v) for name, v in levels.items() if np.isfinite(v)}
        (self.buy if plan.side[i] > 0 else self.sell)(size=plan.units, **given)
        self.placed = i

    def expire(self, plan: Plan, i: int) -> None:
        if np.isfinite(plan.expiry) and i - self.placed >= plan.expiry:
            for order in self.orders:
                if order.parent_trade is None:  # a waiting entry
                    order.cancel()

    def scale_out(self, plan: Plan, i: int) -> None:
        if not len(plan.size) or not np.isfinite(plan.size[i]):
            return
        for trade in self.trades:
            held = abs(trade.size) / plan.units
            if plan.size[i] < held - 1e-9:
                trade.close(1.0 - plan.size[i] / held)


class ScriptedTrailing(Scripted, TrailingStrategy):
    """The plan with TrailingStrategy's stop: n_atr mean true ranges of `periods` bars."""

    n_atr: float = 6.0
    periods: int = 100

    def init(self):
        super().init()
        self.set_atr_periods(self.periods)
        self.set_trailing_sl(self.n_atr)


# ---------------------------------------------------------------- comparing


def closing_fills(trades: pd.DataFrame, *, ours: bool) -> pd.DataFrame:
    """Both engines' closing fills in one shape: entry_bar, side, exit_bar, prices, units."""
    if ours:
        trades = trades[trades["exit_reason"] != "end"]
        side = np.where(trades["direction"] == "long", 1, -1)
        units = side * np.round(trades["size"].to_numpy(), 6)
        names = ["entry_bar", "exit_bar", "entry_price", "exit_price"]
        frame = trades[names].copy()
    else:
        side, units = np.sign(trades["Size"]).astype(int), trades["Size"].astype(float)
        frame = trades[["EntryBar", "ExitBar", "EntryPrice", "ExitPrice"]].copy()
        frame.columns = ["entry_bar", "exit_bar", "entry_price", "exit_price"]
    return frame.assign(side=np.asarray(side), units=np.asarray(units))


def by_position(fills: pd.DataFrame) -> dict[Key, list[tuple]]:
    """Each position's fills (exit bar, entry price, exit price, signed units), sorted."""
    grouped: dict[Key, list[tuple]] = {}
    for row in fills.itertuples(index=False):
        key = (int(row.entry_bar), int(row.side))
        fill = (int(row.exit_bar), float(row.entry_price), float(row.exit_price), row.units)
        grouped.setdefault(key, []).append(fill)
    return {key: sorted(value) for key, value in grouped.items()}


def compare(ours: BacktestResult, theirs: pd.Series) -> tuple[set[Key], set[Key]]:
    """(positions whose fills differ or exist on one side only, positions that agree)."""
    mine = by_position(closing_fills(ours.trades, ours=True))
    ref = by_position(closing_fills(theirs["_trades"], ours=False))
    different = {k for k in set(mine) | set(ref) if mine.get(k) != ref.get(k)}
    return different, set(mine) - different


def keys_of(trades: pd.DataFrame) -> list[Key]:
    """Our rows' positions, as (entry bar, side)."""
    side = np.where(trades["direction"] == "long", 1, -1)
    return list(zip(trades["entry_bar"].astype(int), side.astype(int), strict=True))


def positions(trades: pd.DataFrame, mask: np.ndarray | pd.Series) -> set[Key]:
    return set(keys_of(trades[np.asarray(mask)]))


def rows_of(trades: pd.DataFrame, keys: set[Key]) -> pd.DataFrame:
    return trades[[k in keys for k in keys_of(trades)]]


def assert_same_equity(ours: BacktestResult, theirs: pd.Series, different: set[Key]) -> None:
    """The equity curves agree up to the first position that differs (profit in USD)."""
    first = min((bar for bar, _ in different), default=len(ours.equity))
    mine = ours.equity.to_numpy()[:first] - CASH
    ref = theirs["_equity_curve"]["Equity"].to_numpy()[:first] - CASH
    np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- the by-design cases


def path_takes_tp(trades: pd.DataFrame, bars: pd.DataFrame) -> np.ndarray:
    """Rows whose exit bar reached both the stop-loss and the take-profit, the take-profit
    first on the path (difference 1): the open passed it, or the open passed neither and the
    extreme on its side is nearer the open (the low on a tie)."""
    bar = trades["exit_bar"].to_numpy()
    both = _reached(trades, bars, bar, "sl") & _reached(trades, bars, bar, "tp")
    o, h, low = (bars[c].to_numpy()[bar] for c in ("open", "high", "low"))
    long = (trades["direction"] == "long").to_numpy()
    high_first = (h - o) < (o - low) - 1e-9 * o
    at_open = {
        n: np.where(long == (n == "sl"), o <= trades[n], o >= trades[n]) for n in ("sl", "tp")
    }
    tp_first = at_open["tp"] | (high_first == long)
    return both & ~at_open["sl"] & tp_first


def bracket_in_fill_bar(trades: pd.DataFrame, bars: pd.DataFrame) -> np.ndarray:
    """Rows whose fill bar reached the stop-loss or the take-profit (difference 3)."""
    bar = trades["entry_bar"].to_numpy()
    return _reached(trades, bars, bar, "sl") | _reached(trades, bars, bar, "tp")


def _reached(trades: pd.DataFrame, bars: pd.DataFrame, bar: np.ndarray, name: str) -> np.ndarray:
    high, low = bars["high"].to_numpy()[bar], bars["low"].to_numpy()[bar]
    level = trades[name].to_numpy()
    below = (trades["direction"] == "long").to_numpy() == (name == "sl")
    return np.where(below, low <= level, high >= level)


def refused_moves(trades: pd.DataFrame, bars: pd.DataFrame, plan: Plan, sl: np.ndarray):
    """Rows of positions during which a moved stop was on the wrong side of the next open
    (difference 2)."""
    asked = np.round(np.concatenate(([NAN], sl[:-1])), plan.digits)  # decided the bar before
    side = np.concatenate(([0], plan.side[:-1]))
    with np.errstate(invalid="ignore"):
        refused = np.isfinite(asked) & (side * (bars["open"].to_numpy() - asked) <= 0)
    count = np.concatenate(([0], np.cumsum(refused)))
    entry, exit_ = trades["entry_bar"].to_numpy(), trades["exit_bar"].to_numpy()
    return count[exit_ + 1] - count[entry + 1] > 0


def zero_length(trades: pd.DataFrame) -> np.ndarray:
    """Rows of a waiting entry filled by the open where the decision changed (difference 4)."""
    same_bar = trades["entry_bar"] == trades["exit_bar"]
    return (same_bar & (trades["exit_reason"] == "signal")).to_numpy()


def stop_gapped(trades: pd.DataFrame, bars: pd.DataFrame) -> np.ndarray:
    """Rows closed by a stop-loss at the open (with a partial exit there: difference 5)."""
    opens = bars["open"].to_numpy()[trades["exit_bar"].to_numpy()]
    return ((trades["exit_reason"] == "sl") & (trades["exit_price"] == opens)).to_numpy()


# ---------------------------------------------------------------- (a) stops given at the entry


@pytest.mark.parametrize(("symbol", "seed"), [("EURUSD", 1), ("USDJPY", 2), ("XAUUSD", 3)])
@pytest.mark.parametrize("moving", [False, True], ids=["plain", "managed"])
def test_stops_given_at_the_entry_fill_as_in_backtesting_py(symbol, seed, moving):
    bars = generate_bars(symbol, "H1", 6000, seed=seed)
    plan = cross_plan(bars, symbol)
    plan = replace(plan, sl=away(plan, bars, -1.0), tp=away(plan, bars, 1.5))
    ours = run_ours(bars, symbol, plan.ours(), moving=moving)  # managed: the other code path
    different, same = compare(ours, run_reference(bars, plan))
    trades = ours.trades
    assert different == positions(trades, path_takes_tp(trades, bars))  # difference 1
    agreed = rows_of(trades, same)["exit_reason"].value_counts()
    assert len(same) > 150 and agreed["sl"] > 50 and agreed["tp"] > 50


# ---------------------------------------------------------------- (b) a trailing stop


def trailing_column(bars: pd.DataFrame, plan: Plan, n_atr: float, periods: int) -> np.ndarray:
    """TrailingStrategy's stop as our moving `sl` column. From the entry's bar on (the bar
    after the decision) the close less n_atr mean true ranges of `periods` bars for a long
    (plus, for a short), never loosened; NaN where that is not on the losing side of the
    close, which happens only once the position is gone (the stop in force was reached)."""
    close = bars["close"].to_numpy()
    mean_range = sma(true_range(bars["high"], bars["low"], close), periods)
    hold = holdings(plan.side, plan.act)
    held = (hold >= 0) & ~plan.act  # theirs trails a trade from its entry bar
    signed = np.where(held, plan.side * close - n_atr * mean_range, -np.inf)
    best = pd.Series(signed).groupby(hold).cummax().to_numpy()
    usable = held & np.isfinite(best) & (plan.side * close > best)
    return np.where(usable, plan.side * np.where(usable, best, 0.0), NAN)


def with_initial_stop(bars: pd.DataFrame, plan: Plan, trailing: np.ndarray) -> np.ndarray:
    """The plan's stop-loss on the deciding bar, then the tighter of it and `trailing` (as
    TrailingStrategy keeps the higher of a long's stop and its trailing level)."""
    carried = pd.Series(plan.sl).groupby(holdings(plan.side, plan.act)).ffill().to_numpy()
    level = tightest(plan.side, carried, trailing)
    close = bars["close"].to_numpy()
    with np.errstate(invalid="ignore"):
        losing_side = plan.side * close > plan.side * level
    return np.where(plan.act, plan.sl, np.where(losing_side, level, NAN))


def final_stops(trades: pd.DataFrame, *, ours: bool) -> dict[Key, float]:
    """Ours: the stop-loss that closed each position so closed. Theirs: each position's last
    stop-loss (for a position the decision closes, one set at the deciding bar's close that
    never acts: ours does not report that one, so only stopped positions are compared)."""
    if ours:
        last = trades[trades["exit_reason"] == "sl"]
        return dict(zip(keys_of(last), last["sl"], strict=True))
    last = trades[trades["SL"].notna()]  # a partial close's row carries no stop
    keys = zip(last["EntryBar"].astype(int), np.sign(last["Size"]).astype(int), strict=True)
    return dict(zip(keys, last["SL"].astype(float), strict=True))


@pytest.mark.parametrize(
    ("symbol", "seed", "n_atr", "periods", "initial", "partial"),
    [
        ("EURUSD", 5, 2.0, 100, None, False),
        ("GBPUSD", 6, 3.0, 20, None, False),
        ("XAUUSD", 7, 1.5, 50, 2.5, True),
        ("EURUSD", 31, 2.0, 50, 2.5, True),
    ],
)
def test_a_trailing_stop_moves_and_fills_as_trailing_strategy(
    symbol, seed, n_atr, periods, initial, partial
):
    bars = generate_bars(symbol, "H1", 6000, seed=seed)
    plan = cross_plan(bars, symbol)
    sl = trailing_column(bars, plan, n_atr, periods)
    if initial:
        plan = replace(plan, sl=away(plan, bars, -initial))
        sl = with_initial_stop(bars, plan, sl)
    if partial:
        plan = replace(plan, size=scale_out_sizes(bars, plan, ((1.0, 0.5),)))
    ours = run_ours(bars, symbol, plan.ours(sl=sl), moving=True)
    theirs = run_reference(bars, plan, trailing=(n_atr, periods))
    different, same = compare(ours, theirs)
    trades = ours.trades
    expected = refused_moves(trades, bars, plan, sl) | (partial & stop_gapped(trades, bars))
    assert different <= positions(trades, expected)  # differences 2 and 5
    mine, ref = final_stops(trades, ours=True), final_stops(theirs["_trades"], ours=False)
    assert {k: ref[k] for k in same & mine.keys()} == {k: mine[k] for k in same & mine.keys()}
    first_level = sl[trades["entry_bar"].to_numpy()]  # set on the entry's bar
    moved = (trades["exit_reason"] == "sl") & (trades["sl"] != first_level)
    assert len(same) > 150 and rows_of(trades[moved], same).shape[0] > 50
    assert_same_equity(ours, theirs, different)


# ---------------------------------------------------------------- (c) limit and stop entries


@pytest.mark.parametrize(
    ("symbol", "seed", "kind", "distance", "expiry"),
    [
        ("EURUSD", 11, "limit", -0.5, NAN),
        ("EURUSD", 12, "limit", -0.3, 4),
        ("USDJPY", 13, "stop", 0.5, NAN),
        ("XAUUSD", 14, "stop", 0.3, 6),
    ],
)
def test_limit_and_stop_entries_fill_as_in_backtesting_py(symbol, seed, kind, distance, expiry):
    bars = generate_bars(symbol, "H1", 6000, seed=seed)
    plan = cross_plan(bars, symbol)
    plan = replace(plan, kind=kind, price=away(plan, bars, distance), expiry=expiry)
    ours = run_ours(bars, symbol, plan.ours())
    different, same = compare(ours, run_reference(bars, plan))
    trades = ours.trades
    assert different == positions(trades, zero_length(trades))  # difference 4
    assert len(same) > 150
    _assert_pending_entries_waited_and_filled_inside_bars(trades, bars, plan)


def _assert_pending_entries_waited_and_filled_inside_bars(trades, bars, plan) -> None:
    price = plan.price[trades["signal_bar"].to_numpy()]
    opens = bars["open"].to_numpy()[trades["entry_bar"].to_numpy()]
    at_price = trades["entry_price"].to_numpy() == price
    assert (at_price & (price != opens)).sum() > 50  # inside the bar, at the order's price
    assert (trades["entry_bar"] - trades["signal_bar"] > 1).sum() > 20  # waited a bar or more
    assert plan.act.sum() - trades["position"].nunique() > 10  # expired or cancelled unfilled


@pytest.mark.parametrize(
    ("symbol", "seed", "kind", "distance", "expiry"),
    [("EURUSD", 15, "limit", -0.4, 5), ("GBPUSD", 16, "stop", 0.4, NAN)],
)
def test_limit_and_stop_entries_with_a_bracket(symbol, seed, kind, distance, expiry):
    bars = generate_bars(symbol, "H1", 6000, seed=seed)
    plan = cross_plan(bars, symbol)
    price = away(plan, bars, distance)
    sl, tp = away(plan, bars, -1.0, base=price), away(plan, bars, 1.5, base=price)
    plan = replace(plan, kind=kind, price=price, expiry=expiry, sl=sl, tp=tp)
    ours = run_ours(bars, symbol, plan.ours())
    different, same = compare(ours, run_reference(bars, plan))
    trades = ours.trades
    expected = path_takes_tp(trades, bars) | bracket_in_fill_bar(trades, bars)
    expected |= zero_length(trades)
    assert different <= positions(trades, expected)  # differences 1, 3 and 4
    assert len(different) > 10  # difference 3 is common with a bracket 1 ATR away
    agreed = rows_of(trades, same)["exit_reason"].value_counts()
    assert len(same) > 120 and agreed["sl"] > 30 and agreed["tp"] > 30


# ---------------------------------------------------------------- (d) partial exits


def scale_out_sizes(
    bars: pd.DataFrame, plan: Plan, steps: tuple[tuple[float, float], ...]
) -> np.ndarray:
    """The fraction held: 1 from the decision; each step (gain in ATRs of the deciding bar
    over the fill at the entry bar's open, fraction kept) from the first close reaching it."""
    hold = holdings(plan.side, plan.act)
    first = np.flatnonzero(plan.act)
    fill, unit = np.full(len(hold), NAN), np.full(len(hold), NAN)
    fill[first] = bars["open"].to_numpy()[np.minimum(first + 1, len(hold) - 1)]
    unit[first] = wilder_atr(bars)[first]
    fill, unit = (pd.Series(a).groupby(hold).ffill().to_numpy() for a in (fill, unit))
    close = bars["close"].to_numpy()
    gained = np.where((hold >= 0) & ~plan.act, plan.side * (close - fill), -np.inf)
    best = pd.Series(gained).groupby(hold).cummax().to_numpy()
    size = np.where(hold >= 0, 1.0, NAN)
    for multiple, kept in steps:
        size = np.where(best >= multiple * unit, np.minimum(size, kept), size)
    return size


@pytest.mark.parametrize(("symbol", "seed"), [("EURUSD", 21), ("GBPUSD", 22), ("XAUUSD", 23)])
def test_partial_exits_fill_as_trade_close_in_backtesting_py(symbol, seed):
    bars = generate_bars(symbol, "H1", 6000, seed=seed)
    plan = cross_plan(bars, symbol)
    size = scale_out_sizes(bars, plan, ((1.0, 0.5), (2.0, 0.25)))
    plan = replace(plan, sl=away(plan, bars, -2.0), size=size)
    ours = run_ours(bars, symbol, plan.ours())
    theirs = run_reference(bars, plan)
    different, same = compare(ours, theirs)
    trades = ours.trades
    assert different <= positions(trades, stop_gapped(trades, bars))  # difference 5
    agreed = rows_of(trades, same)
    fills_per_position = agreed.groupby("position").size()
    stopped_after_partial = agreed[agreed["exit_reason"] == "sl"]["position"].isin(
        agreed[agreed["exit_reason"] == "partial"]["position"]
    )
    assert len(same) > 150 and (agreed["exit_reason"] == "partial").sum() > 100
    assert (fills_per_position == 3).sum() > 30  # both steps: a half, then a quarter
    assert stopped_after_partial.sum() > 10
    assert_same_equity(ours, theirs, different)


# ---------------------------------------------------------------- the differences, one by one


def hand_plan(side: list[int], **arrays: list[float]) -> Plan:
    """A plan on hand-built EURUSD bars: enter where `side` changes to long or short."""
    held = np.array(side, dtype=np.int8)
    act = (held != np.concatenate(([0], held[:-1]))) & (held != 0)
    nothing = np.full(len(held), NAN)
    levels = {"sl": nothing, "tp": nothing}
    levels |= {name: np.array(values, dtype=float) for name, values in arrays.items()}
    return Plan(act, held, units=100_000.0, digits=5, **levels)


def both(bars, plan, *, sl=None, trailing=None):
    """(our fills by position, theirs, our trades) on hand-built bars."""
    frame = plan.ours() if sl is None else plan.ours(sl=sl)
    ours = run_ours(bars, "EURUSD", frame, moving=sl is not None).trades
    theirs = run_reference(bars, plan, trailing=trailing)["_trades"]
    mine = by_position(closing_fills(ours, ours=True))
    return mine, by_position(closing_fills(theirs, ours=False)), ours


def test_difference_1_stop_loss_and_take_profit_in_one_bar():
    rows = flat_bars(6)
    rows[3] = (1.1005, 1.1025, 1.0975, 1.1)  # the high is nearer the open: reached first
    plan = hand_plan([0, 1, 1, 1, 1, 1], sl=[NAN, 1.098] + [NAN] * 4, tp=[NAN, 1.102] + [NAN] * 4)
    ours, theirs, _ = both(make_bars(rows), plan)
    assert ours == {(2, 1): [(3, 1.1, 1.102, 100_000.0)]}
    assert theirs == {(2, 1): [(3, 1.1, 1.098, 100_000.0)]}


def test_difference_2_a_moved_stop_the_next_open_has_passed():
    rows = [(1.1, 1.101, 1.099, 1.1)] * 3 + [(1.0985, 1.0995, 1.0982, 1.099)]
    rows += [(1.099, 1.0995, 1.0985, 1.099)] * 3
    bars, plan = make_bars(rows), hand_plan([0, 1, 1, 1, 1, 1, 1])
    sl = trailing_column(bars, plan, 0.5, 1)
    assert sl[2] == pytest.approx(1.099)  # set on bar 2; bar 3 opens below it, at 1.0985
    ours, theirs, trades = both(bars, plan, sl=sl, trailing=(0.5, 1))
    assert theirs == {(2, 1): [(3, 1.1, 1.0985, 100_000.0)]}
    assert ours == {} and trades["exit_reason"].tolist() == ["end"]  # refused; held on


def test_difference_3_a_limit_entry_and_its_stop_loss_in_the_fill_bar():
    rows = flat_bars(6)
    rows[2] = (1.1, 1.1005, 1.0955, 1.097)  # up, then down through 1.098 (fill), 1.096 (SL)
    rows[3] = (1.097, 1.0975, 1.0955, 1.096)
    plan = hand_plan([0, 1, 1, 1, 1, 1], sl=[NAN, 1.096] + [NAN] * 4)
    plan = replace(plan, kind="limit", price=np.array([NAN, 1.098] + [NAN] * 4))
    ours, theirs, _ = both(make_bars(rows), plan)
    assert ours == {(2, 1): [(2, 1.098, 1.096, 100_000.0)]}
    assert theirs == {(2, 1): [(3, 1.098, 1.096, 100_000.0)]}  # the bracket waits a bar


def test_difference_4_a_waiting_entry_and_an_open_that_gaps_through_it_as_it_is_cancelled():
    rows = flat_bars(6)
    rows[4] = (1.097, 1.0975, 1.0965, 1.097)
    plan = hand_plan([0, 1, 1, -1, -1, -1])
    plan = replace(plan, kind="limit", price=np.array([NAN, 1.098, NAN, 1.103, NAN, NAN]))
    ours, theirs, _ = both(make_bars(rows), plan)
    assert ours == {(4, 1): [(4, 1.097, 1.097, 100_000.0)]}  # filled and closed at the open
    assert theirs == {}


def test_difference_5_a_partial_exit_and_a_stop_loss_gapped_at_the_same_open():
    rows = flat_bars(6)
    rows[3] = (1.097, 1.0975, 1.0965, 1.097)
    plan = hand_plan([0, 1, 1, 1, 1, 1], sl=[NAN, 1.098] + [NAN] * 4)
    plan = replace(plan, size=np.array([NAN, 1.0, 0.5, NAN, NAN, NAN]))
    ours, theirs, _ = both(make_bars(rows), plan)
    assert ours == {(2, 1): [(3, 1.1, 1.097, 100_000.0)]}
    assert theirs == {(2, 1): [(3, 1.1, 1.097, 50_000.0)] * 2}
