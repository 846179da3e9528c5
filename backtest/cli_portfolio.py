"""The backtest CLI's portfolio run: `run --symbols EURUSD,GBPUSD --data-dir DIR`, one
strategy on several symbols sharing one account (`backtest.portfolio`).

Each symbol's bars are the CSV in DIR whose name starts with the symbol (EURUSD_H1.csv, as
`live.history` writes them; with --timeframe, SYMBOL_TF.csv first). The live trader's limits
come under the names of its settings (--max-open-positions ...).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from backtest.cli_common import bar_cache_of
from backtest.data import DataError, load_csv, resample_bars, timeframe_seconds
from backtest.engine import BacktestConfig
from backtest.errors import UsageError
from backtest.informative import check_informative, declared_symbols
from backtest.metrics import stats_table
from backtest.portfolio import Limits, Member, PortfolioResult
from backtest.strategy import Strategy, create_strategy
from backtest.symbols import get_symbol_spec
from backtest.trading_windows import bar_seconds, with_broker_time


def run_portfolio_command(
    args: argparse.Namespace,
    strategy_cls: type[Strategy],
    params: dict[str, object],
    config: BacktestConfig,
    zone: object,
    write: Callable[[Path, str], None],
) -> None:
    """Run --symbols on one account and print it; `write` saves --json and --report
    atomically. ValueError (exit 2) for what a portfolio run does not take yet."""
    from backtest.portfolio import run_portfolio

    unused = [f"--{name.replace('_', '-')}" for name in ("rules", "show_trades")
              if getattr(args, name, None)]  # fmt: skip
    if unused:
        raise UsageError(f"{', '.join(unused)}: not available with --symbols yet")
    members = members_of(args, strategy_cls, params, zone)
    for member in members:
        check_informative(strategy_cls, member.bars, f"{member.symbol} ({member.source})")
    skip = tuple(m.symbol for m in members)
    others = other_bars_of(strategy_cls, args, zone, folder=args.data_dir, skip=skip)
    result = run_portfolio(members, config, limits_of(args), others)
    title = f"{members[0].strategy.label()} on {', '.join(skip)}"
    print(portfolio_text(result, title))
    if args.json:
        write(args.json, json.dumps(portfolio_document(result), indent=1, default=str))
        print(f"wrote {args.json}")
    if args.report:
        from backtest.report_runs import render_portfolio_report

        subtitle = f"{len(result.equity):,} bar times, {len(result.trades):,} trades"
        write(args.report, render_portfolio_report(result, title=title, subtitle=subtitle))
        print(f"wrote {args.report}")


def symbols_of(args: argparse.Namespace) -> list[str]:
    """The --symbols list, checked: ValueError (exit 2) naming what is wrong."""
    symbols = [s.strip().upper() for s in str(args.symbols or "").split(",") if s.strip()]
    if not symbols or len(set(symbols)) != len(symbols):
        raise UsageError(f"--symbols: give distinct symbols with --data-dir, got {args.symbols!r}")
    if args.data_dir is None or not Path(args.data_dir).is_dir():
        raise UsageError(f"--symbols needs --data-dir, a folder of CSVs (got {args.data_dir})")
    return symbols


def limits_of(args: argparse.Namespace) -> Limits:
    for name in ("max_open_positions", "max_total_lots", "max_margin_pct"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0")
    if args.leverage < 1:
        raise UsageError(f"--leverage must be at least 1, got {args.leverage:g}")
    return Limits(args.max_open_positions, args.max_total_lots, args.max_margin_pct, args.leverage)


def members_of(
    args: argparse.Namespace,
    strategy_cls: type[Strategy],
    params: dict[str, object],
    zone: object,
) -> list[Member]:
    """Each symbol's bars from --data-dir (resampled to --timeframe, on the broker's clock),
    its spec and its own strategy instance."""
    members = []
    for symbol in symbols_of(args):
        path = _file_for(Path(args.data_dir), symbol, args.timeframe)
        bars = _read(path, symbol, args, zone, resample=True)
        strategy = create_strategy(strategy_cls, params)
        members.append(Member(symbol, bars, get_symbol_spec(symbol), strategy, str(path)))
    return members


def other_bars_of(
    strategy_cls: type[Strategy],
    args: argparse.Namespace,
    zone: object,
    *,
    folder: Path | None,
    skip: tuple[str, ...] = (),
) -> dict[str, pd.DataFrame]:
    """The bars of the other symbols the strategy reads (`informative`): from `folder` (the
    data file's, or --data-dir), or generated beside --synthetic bars."""
    bars = {}
    for k, symbol in enumerate(s for s in declared_symbols(strategy_cls) if s not in skip):
        if folder is None:
            from backtest.synthetic import generate_bars

            frame = generate_bars(
                symbol, args.timeframe or "H1", args.synthetic, seed=args.seed + k + 1
            )
            bars[symbol] = with_broker_time(frame, zone)
        else:
            path = _file_for(folder, symbol, args.timeframe)
            bars[symbol] = _read(path, symbol, args, zone, resample=False)
    return bars


def _read(
    path: Path, symbol: str, args: argparse.Namespace, zone: object, *, resample: bool
) -> pd.DataFrame:
    """A symbol's CSV with its broker time (resampled to --timeframe when asked);
    UsageError naming the symbol and the file."""
    try:
        bars = load_csv(path, tz=args.tz, cache=bar_cache_of(args))
        if resample and args.timeframe and bar_seconds(bars) != timeframe_seconds(args.timeframe):
            bars = resample_bars(bars, args.timeframe, zone)
    except DataError as exc:
        raise UsageError(f"{symbol} ({path}): {exc}") from None
    return with_broker_time(bars, zone)


def _file_for(folder: Path, symbol: str, timeframe: str | None) -> Path:
    found = sorted(p for p in folder.glob("*.csv") if p.stem.upper().startswith(symbol))
    if timeframe:
        exact = [p for p in found if p.stem.upper() == f"{symbol}_{timeframe.upper()}"]
        found = exact or found
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"{symbol}: no bars in {folder} (looked for {symbol}*.csv)")
    names = ", ".join(p.name for p in found)
    raise UsageError(f"{symbol}: several files in {folder} ({names}): give --timeframe")


def portfolio_text(result: PortfolioResult, title: str) -> str:
    """Statistics, the per-symbol breakdown, the correlation of daily P/L and the entries
    the limits refused, as text."""
    lines = [stats_table(title, result.stats), "", "per symbol:"]
    lines.append(result.breakdown.to_string(index=False))
    if len(result.correlation) > 1:
        lines += ["", "correlation of daily P/L:", result.correlation.round(2).to_string()]
    if result.refused:
        lines += ["", f"entries refused by the limits: {len(result.refused)}"]
        lines += [f"  {r['time']} {r['symbol']}: {r['reason']}" for r in result.refused[:10]]
    return "\n".join(lines)


def portfolio_document(result: PortfolioResult) -> dict[str, object]:
    """The --json document's portfolio parts."""
    equity = result.equity
    return {
        "stats": result.stats,
        "breakdown": result.breakdown.to_dict(orient="records"),
        "correlation": result.correlation.round(6).to_dict(),
        "refused": result.refused,
        "trades": len(result.trades),
        "equity_final": float(equity.iloc[-1]) if len(equity) else None,
        "contributions_final": {
            symbol: round(float(values.iloc[-1]), 2)
            for symbol, values in result.contributions.items()
        },
        "start": pd.Timestamp(equity.index[0]).isoformat() if len(equity) else None,
    }
