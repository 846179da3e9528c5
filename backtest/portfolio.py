"""Portfolio backtest: one strategy on several symbols sharing one account.

Each symbol's bars go through the single-symbol engine first. The account then takes every
symbol's entries in time order, as the live trader's loop takes them (at a bar's open the
symbols in the order given, each one's exit before its entry; stops and targets inside the
bar, after every open), and refuses those that would break a limit: open positions, total
lots, used margin as % of equity. A refused entry is not taken later: the symbol stays flat
until the strategy's next action, as live. Symbols with refused entries are run again with
those entries refused, so every trade kept is the engine's own.

Money is in the account currency: a symbol quoted in it (EURUSD) directly, one based on it
(USDJPY) through its own price, a cross (EURGBP) through the pair of its profit currency and
the account currency (GBPUSD or USDGBP) from the data given: closed P/L at the rate of its
exit, floating P/L at the rate of the moment. Without that pair the run stops, naming it.
Equity is summed over the union of the symbols' bar times.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from backtest.engine import run_backtest
from backtest.errors import BacktestError
from backtest.informative import informative_for
from backtest.metrics import compute_stats
from backtest.results import BacktestConfig, BacktestResult
from backtest.sizing import Sizing, SizingError
from backtest.strategy import Strategy, compute_signals
from backtest.symbols import SymbolSpec
from backtest.trading_windows import ensure_broker_time, refuse_entries

INSIDE_BAR = ("sl", "tp", "end")  # exits during a bar, after every symbol's open


class PortfolioError(BacktestError, ValueError):
    """Data a portfolio cannot be run on; the message names the symbol and its file."""


@dataclass(frozen=True)
class Limits:
    """The live trader's portfolio limits (0 = none) and the account's leverage (margin)."""

    max_open_positions: int = 0
    max_total_lots: float = 0.0
    max_margin_pct: float = 0.0
    leverage: float = 100.0


@dataclass(frozen=True)
class Member:
    """One symbol of the portfolio: its bars (where they came from, for messages), its spec,
    the strategy instance that trades it, and the first bar acted on (the bars before only
    warm it up, as for a trader started there)."""

    symbol: str
    bars: pd.DataFrame
    spec: SymbolSpec
    strategy: Strategy
    source: str = ""
    trade_from: int = 0


@dataclass
class PortfolioResult:
    """Per symbol results (entries refused by the limits already taken out), the account's
    equity and each symbol's contribution over the union of bar times, every trade with
    its symbol, the statistics, a per-symbol breakdown, the correlation of the symbols'
    daily P/L and the refused entries with their reasons."""

    results: dict[str, BacktestResult]
    equity: pd.Series
    contributions: pd.DataFrame
    trades: pd.DataFrame
    stats: dict[str, float | int | str | None]
    breakdown: pd.DataFrame
    correlation: pd.DataFrame
    refused: list[dict[str, object]] = field(default_factory=list)


def run_portfolio(
    members: list[Member],
    config: BacktestConfig,
    limits: Limits = Limits(),
    other_bars: dict[str, pd.DataFrame] | None = None,
) -> PortfolioResult:
    """Backtest `members` on one account of `config.cash` (see the module docstring). A
    strategy reading other symbols (`informative`) gets the members' bars, and `other_bars`
    for symbols it reads but does not trade."""
    _check_overlap(members)
    rates = {m.symbol: _conversion(m, members, config.account_currency) for m in members}
    others = {**(other_bars or {}), **{m.symbol: m.bars for m in members}}
    signals = {m.symbol: _signals(m, config, others) for m in members}
    by_lot = config.sizing.mode != "fixed"  # risk sizing: run 1 lot, size at the account
    run_config = replace(config, sizing=Sizing.fixed(1.0)) if by_lot else config
    first = {m.symbol: _run(m, signals[m.symbol], run_config) for m in members}
    refused, lots = _take_entries(members, first, rates, config, limits)
    results = {}
    for member in members:
        blocked = [r["signal_bar"] for r in refused if r["symbol"] == member.symbol]
        result = first[member.symbol]
        if blocked:
            mask = np.zeros(len(member.bars), dtype=bool)
            mask[blocked] = True
            again = refuse_entries(signals[member.symbol], mask)
            result = _run(member, again, run_config)
        if by_lot:
            result = _sized(result, lots, member, config.cash)
        results[member.symbol] = result
    return _combine(members, results, rates, config, refused)


# ---------------------------------------------------------------- data checks and money


def _check_overlap(members: list[Member]) -> None:
    """Every symbol's bars must share time with the others' common span."""
    spans = [(m.bars["time"].iloc[0], m.bars["time"].iloc[-1]) for m in members]
    for k, member in enumerate(members):
        others = [span for j, span in enumerate(spans) if j != k]
        if not others:
            continue
        start, end = max(s for s, _ in others), min(e for _, e in others)
        first, last = spans[k]
        if last < start or first > end or start > end:
            names = ", ".join(f"{m.symbol} ({m.source})" for j, m in enumerate(members) if j != k)
            raise PortfolioError(
                f"{member.symbol} ({member.source}): its bars ({first:%Y-%m-%d} to "
                f"{last:%Y-%m-%d}) do not overlap those of {names}, {start:%Y-%m-%d} to "
                f"{end:%Y-%m-%d}"
            )


def _conversion(member: Member, members: list[Member], currency: str) -> pd.Series | None:
    """Account currency per unit of the member's profit currency, by time (None: the run
    itself converts, or nothing to convert)."""
    spec = member.spec
    if currency in (spec.currency_profit, spec.currency_base):
        return None
    by_name = {m.symbol.upper(): m for m in members}
    for name, inverse in ((f"{spec.currency_profit}{currency}", False),
                          (f"{currency}{spec.currency_profit}", True)):  # fmt: skip
        pair = by_name.get(name)
        if pair is not None:
            close = pair.bars.set_index("time")["close"].astype(float)
            return 1.0 / close if inverse else close
    raise PortfolioError(
        f"{member.symbol} ({member.source}): no conversion rate from {spec.currency_profit} "
        f"to {currency}: add {spec.currency_profit}{currency} or {currency}"
        f"{spec.currency_profit} bars to the portfolio's data"
    )


def _rate_at(rate: pd.Series | None, times: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """The rate in force at each time (the last one at or before it; the first before it)."""
    if rate is None:
        return np.ones(len(times))
    at = np.searchsorted(rate.index.asi8, pd.DatetimeIndex(times).asi8, side="right") - 1
    return rate.to_numpy()[np.maximum(at, 0)]


def _signals(member: Member, config: BacktestConfig, others: dict[str, pd.DataFrame]):
    bars = ensure_broker_time(member.bars, config.rules.zone)
    where = f"{member.symbol} ({member.source})"
    informative = informative_for(member.strategy, bars, config.rules.zone, where, others)
    return compute_signals(member.strategy, bars, informative=informative)


def _run(member: Member, signals, config: BacktestConfig) -> BacktestResult:
    """The member's run; in its profit currency when the portfolio converts it (a cross)."""
    spec = member.spec
    if config.account_currency not in (spec.currency_profit, spec.currency_base):
        config = replace(config, account_currency=spec.currency_profit)
    return run_backtest(
        member.bars,
        member.strategy,
        spec=spec,
        config=config,
        signals=signals,
        trade_from=member.trade_from,
    )


# ---------------------------------------------------------------- the account's entries


@dataclass
class _Open:
    symbol: str
    lots: float
    margin: float
    units: float  # signed, for the floating P/L
    price: float


def _take_entries(
    members: list[Member],
    runs: dict[str, BacktestResult],
    rates: dict[str, pd.Series | None],
    config: BacktestConfig,
    limits: Limits,
) -> tuple[list[dict[str, object]], dict[tuple[str, int], float]]:
    """Walk every position's entry and exit in the live loop's order: the entries refused,
    and with risk sizing the lots of each one taken, by (symbol, entry bar), sized on the
    account's equity at its entry."""
    by_lot = config.sizing.mode != "fixed"
    limited = limits.max_open_positions or limits.max_total_lots or limits.max_margin_pct
    if not (limited or by_lot):
        return [], {}
    events = _events(members, runs)
    prices = {m.symbol: m.bars.set_index("time") for m in members}
    specs = {m.symbol: m.spec for m in members}
    held: dict[tuple[str, int], _Open] = {}
    sized: dict[tuple[str, int], float] = {}
    refused: list[dict[str, object]] = []
    balance, currency = config.cash, config.account_currency
    for event in events.itertuples(index=False):
        key, rate = (event.symbol, int(event.entry_bar)), rates[event.symbol]
        if event.kind == "exit":
            if key in sized:
                held.pop(key, None)
                balance += event.pnl * sized[key] / event.lots * _rate_at(rate, [event.time])[0]
            continue
        spec = specs[event.symbol]
        equity = balance  # with the open positions' floating P/L, when sizing or margin asks
        if by_lot or limits.max_margin_pct:
            equity += sum(_floating(o, event.time, prices, specs, rates, currency)
                          for o in held.values())  # fmt: skip
        lots = _risk_lots(event, spec, equity, rate, config) if by_lot else float(event.lots)
        margin = _margin(event, lots, spec, rate, currency, limits.leverage)
        reason = _refusal(lots, margin, held, equity, limits)
        if reason:
            refused.append({"symbol": event.symbol, "time": event.time.isoformat(),
                            "signal_bar": int(event.signal_bar), "reason": reason})  # fmt: skip
            continue
        sized[key] = lots
        held[key] = _Open(event.symbol, lots, margin, event.side * lots * spec.contract_size,
                          event.price)  # fmt: skip
    return refused, sized


def _risk_lots(event, spec: SymbolSpec, equity: float, rate, config: BacktestConfig) -> float:
    """Lots risking the sizing's % of `equity` if the entry's stop-loss is hit."""
    distance = abs(float(event.price) - float(event.sl))
    if not (distance > 0 and np.isfinite(distance)):
        raise SizingError(
            f"risk sizing needs a stop-loss: {event.symbol}'s entry at {event.time} has none; "
            "give the strategy a stop-loss or use fixed lots"
        )
    if not equity > 0:
        raise SizingError(f"cannot size {event.symbol}'s entry at {event.time}: equity {equity}")
    loss = _to_account(distance * spec.contract_size, spec, event.price, event.time, rate,
                       config.account_currency)  # fmt: skip
    return spec.clamp_volume(equity * config.sizing.risk_percent / 100.0 / loss)


def _events(members: list[Member], runs: dict[str, BacktestResult]) -> pd.DataFrame:
    """One entry and one exit per position, in the live loop's order."""
    frames = []
    for order, member in enumerate(members):
        trades = runs[member.symbol].trades
        if trades.empty:
            continue
        by_position = trades.groupby("position", sort=False)
        first, last = by_position.head(1).set_index("position"), by_position.tail(1)
        pnl = by_position["pnl"].sum()
        lots = by_position["volume"].sum()
        last = last.set_index("position")
        side = np.where(first["direction"] == "long", 1.0, -1.0)
        entries = pd.DataFrame({
            "time": first["entry_time"], "phase": 0, "order": order, "kind": "entry",
            "symbol": member.symbol, "position": first.index, "lots": lots.loc[first.index],
            "price": first["entry_price"], "side": side, "signal_bar": first["signal_bar"],
            "pnl": 0.0, "sl": first["sl"], "entry_bar": first["entry_bar"],
        })  # fmt: skip
        inside = last["exit_reason"].astype(str).isin(INSIDE_BAR).to_numpy()
        exits = pd.DataFrame({
            "time": last["exit_time"], "phase": np.where(inside, 1, 0), "order": order,
            "kind": "exit", "symbol": member.symbol, "position": last.index,
            "lots": lots.loc[last.index], "price": last["exit_price"], "side": side,
            "signal_bar": last["signal_bar"], "pnl": pnl.loc[last.index], "sl": np.nan,
            "entry_bar": first["entry_bar"].loc[last.index],
        })  # fmt: skip
        frames += [exits, entries]
    if not frames:
        return pd.DataFrame(columns=["time", "kind"])
    events = pd.concat(frames, ignore_index=True)
    events["rank"] = np.where(events["kind"] == "exit", 0, 1)
    return events.sort_values(["time", "phase", "order", "rank"], kind="stable")


def _margin(event, lots, spec: SymbolSpec, rate, currency: str, leverage: float) -> float:
    """Margin of `lots` at the entry in the account currency, as the terminal computes it:
    the lots' units over the leverage, valued at the entry price."""
    units = lots * spec.contract_size / max(leverage, 1.0)
    if spec.currency_base == currency:
        return units
    return _to_account(units * event.price, spec, event.price, event.time, rate, currency)


def _to_account(amount, spec: SymbolSpec, price, time, rate, currency: str) -> float:
    """An amount in the symbol's profit currency, in the account currency."""
    if spec.currency_profit == currency:
        return amount
    if spec.currency_base == currency:
        return amount / price if price > 0 else amount
    return amount * _rate_at(rate, [time])[0]


def _refusal(lots: float, margin: float, held: dict, equity: float, limits: Limits) -> str | None:
    """Why an entry of `lots` needing `margin` breaks a limit, with `held` open and the
    account at `equity`; None when it does not."""
    if limits.max_open_positions and len(held) >= limits.max_open_positions:
        return f"MAX_OPEN_POSITIONS {limits.max_open_positions} reached"
    open_lots = sum(o.lots for o in held.values())
    if limits.max_total_lots and open_lots + lots > limits.max_total_lots + 1e-9:
        return f"MAX_TOTAL_LOTS {limits.max_total_lots:g} would be exceeded ({open_lots:g} open)"
    if limits.max_margin_pct:
        used = sum(o.margin for o in held.values()) + margin
        if equity > 0 and 100.0 * used / equity > limits.max_margin_pct:
            return (
                f"MAX_MARGIN_PCT {limits.max_margin_pct:g}% would be exceeded "
                f"({100.0 * used / equity:.1f}% of equity)"
            )
    return None


def _floating(position: _Open, time, prices, specs, rates, currency: str) -> float:
    """The open position's P/L at `time`: at its symbol's open when it has a bar then,
    else at its last close."""
    bars = prices[position.symbol]
    at = max(int(bars.index.searchsorted(time, side="right")) - 1, 0)
    price = float(bars["open"].iloc[at] if bars.index[at] == time else bars["close"].iloc[at])
    move = position.units * (price - position.price)
    spec = specs[position.symbol]
    return _to_account(move, spec, price, time, rates[position.symbol], currency)


# ---------------------------------------------------------------- the account's result


def _sized(
    result: BacktestResult, lots: dict[tuple[str, int], float], member: Member, cash: float
) -> BacktestResult:
    """A 1-lot run with each position at the lots the account gave it: each closing fill's
    volume on the symbol's step (the last one closes the rest), money scaled with it."""
    trades = result.trades.copy()
    if trades.empty:
        return result
    spec = member.spec
    scale = np.array([lots[(member.symbol, int(bar))] for bar in trades["entry_bar"]])
    volume = trades["volume"].to_numpy(dtype=float)
    sized = np.array([spec.floor_volume(v * k) for v, k in zip(volume, scale, strict=True)])
    last = ~trades["position"].duplicated(keep="last").to_numpy()
    earlier = pd.Series(np.where(last, 0.0, sized)).groupby(trades["position"].to_numpy()).sum()
    sized[last] = np.round(scale[last] - earlier.loc[trades["position"][last]].to_numpy(), 8)
    factor = np.divide(sized, volume, out=np.zeros_like(sized), where=volume > 0)
    n = len(result.equity)
    exits = trades["exit_bar"].to_numpy(dtype=np.int64)
    closed_by_lot = np.cumsum(np.bincount(exits, trades["pnl"].to_numpy(), n + 1)[:n])
    trades["volume"], trades["size"] = sized, sized * spec.contract_size
    for column in ("pnl", "commission"):
        trades[column] = np.round(trades[column].to_numpy() * factor, 2)
    closed = np.cumsum(np.bincount(exits, trades["pnl"].to_numpy(), n + 1)[:n])
    held = np.zeros(n)  # the lots of the position open on each bar
    for start, stop, k in zip(trades["entry_bar"], exits, scale, strict=True):
        held[int(start) : int(stop) + 1] = k
    floating = result.equity.to_numpy() - cash - closed_by_lot  # 1 lot, 0 when flat
    equity = cash + closed + floating * held
    positions = trades.groupby("position", sort=True)["pnl"].sum().to_numpy()
    stats = compute_stats(
        equity=equity,
        times=result.equity.index,
        trade_pnl=positions,
        cash=cash,
        exposure_bars=round(result.stats["exposure_pct"] * n / 100),
        trade_durations=trades["exit_time"] - trades["entry_time"],
    )
    return replace(
        result,
        trades=trades,
        equity=pd.Series(equity, index=result.equity.index, name="equity"),
        stats=stats,
        trade_arrays=None,
    )


def _combine(members, results, rates, config: BacktestConfig, refused) -> PortfolioResult:
    stamps = np.unique(np.concatenate([pd.DatetimeIndex(m.bars["time"]).asi8 for m in members]))
    times = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True))
    contributions = pd.DataFrame(index=times)
    frames, held = [], {}
    for member in members:
        result, rate = results[member.symbol], rates[member.symbol]
        trades = result.trades.assign(symbol=member.symbol)
        trades["pnl"] = trades["pnl"] * _rate_at(rate, trades["exit_time"])
        frames.append(trades)
        contributions[member.symbol] = _contribution(result, rate, config.cash, times)
        held[member.symbol] = _held_on(result.trades, times)
    equity = config.cash + contributions.sum(axis=1)
    trades = pd.concat(frames, ignore_index=True).sort_values("entry_time", kind="stable")
    positions = trades.groupby(["symbol", "position"], sort=False)["pnl"].sum().to_numpy()
    stats = compute_stats(
        equity=equity.to_numpy(),
        times=times,
        trade_pnl=positions,
        cash=config.cash,
        exposure_bars=int(np.logical_or.reduce(list(held.values())).sum()),
        trade_durations=trades["exit_time"] - trades["entry_time"],
    )
    return PortfolioResult(
        results=results,
        equity=equity.rename("equity"),
        contributions=contributions,
        trades=trades.reset_index(drop=True),
        stats=stats,
        breakdown=_breakdown(members, trades, refused, held),
        correlation=_daily_pnl(contributions).corr(),
        refused=refused,
    )


def _contribution(result, rate, cash, times) -> np.ndarray:
    """The symbol's P/L in the account currency on the union of times: closed P/L at the
    rate of each exit, floating at the rate of the moment; held flat where it has no bar."""
    own = result.equity.index
    equity = result.equity.to_numpy() - cash
    if rate is not None:
        trades = result.trades.sort_values("exit_time", kind="stable")
        pnl = trades["pnl"].to_numpy()
        at = np.searchsorted(pd.DatetimeIndex(trades["exit_time"]).asi8, own.asi8, "right")
        closed = np.concatenate(([0.0], np.cumsum(pnl)))[at]  # by each bar, as run
        in_account = pnl * _rate_at(rate, trades["exit_time"])  # at the rate of each exit
        converted = np.concatenate(([0.0], np.cumsum(in_account)))[at]
        equity = converted + (equity - closed) * _rate_at(rate, own)
    where = np.searchsorted(own.asi8, times.asi8, side="right") - 1
    return np.where(where >= 0, equity[np.maximum(where, 0)], 0.0)


def _held_on(trades: pd.DataFrame, times: pd.DatetimeIndex) -> np.ndarray:
    """Whether a position of these trades is open at each of `times`."""
    starts = np.searchsorted(times.asi8, pd.DatetimeIndex(trades["entry_time"]).asi8)
    ends = np.searchsorted(times.asi8, pd.DatetimeIndex(trades["exit_time"]).asi8)
    change = np.zeros(len(times) + 1)
    np.add.at(change, starts, 1)
    np.add.at(change, ends, -1)
    return np.cumsum(change[:-1]) > 0


def _breakdown(members, trades, refused, held: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for member in members:
        own = trades[trades["symbol"] == member.symbol]
        pnl = own.groupby("position")["pnl"].sum()
        rows.append({
            "symbol": member.symbol,
            "trades": len(pnl),
            "pnl": round(float(pnl.sum()), 2),
            "win_rate_pct": round(100.0 * float((pnl > 0).mean()), 1) if len(pnl) else None,
            "exposure_pct": round(100.0 * held[member.symbol].mean(), 1),
            "refused": sum(r["symbol"] == member.symbol for r in refused),
        })  # fmt: skip
    return pd.DataFrame(rows)


def _daily_pnl(contributions: pd.DataFrame) -> pd.DataFrame:
    daily = contributions.groupby(contributions.index.floor("D")).last()
    return daily.diff().iloc[1:]
