"""Live versus backtest: the trades the trader recorded beside the trades the backtest makes on
the same bars and parameters, matched one to one, with slippage per fill, missed and extra
trades and the P/L difference; printed as a table and written as a self-contained HTML page.

    python -m live.compare [--db data/audit.db] (--data FILE.csv | --sim) [--symbol EURUSD]
        [--from 2024-01-01] [--to 2024-02-01] [--html compare.html] [--config .env]

--db defaults to AUDIT_DB of the settings (.env), as the trader reads them; the database is
only read. --sim regenerates the bars of a run on the built-in simulator (from the simulator
settings in the trader's start-up record, else the SIM_* settings). The strategy and its
parameters are read from the trader's startup event unless --strategy and --param say
otherwise. The backtest acts on the bars the trader decided on (its first to its last signal),
and leaves a position still open at the end open, as the trader does. MT5 bars are bid prices,
so backtest buys fill at the bar price plus its spread. Matched backtest trades are scaled to
their live partner's volume, missed ones to the volume the trader would have used.

This module is the command; the matching is in compare_match, the inputs in compare_inputs
and the report in compare_report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from backtest.data import DataError, infer_timeframe, load_csv, timeframe_seconds
from backtest.engine import BacktestConfig, run_backtest
from backtest.strategy import StrategyError
from backtest.symbols import get_symbol_spec
from live.audit_reader import AuditReader
from live.compare_inputs import (
    decision_span,
    entry_window,
    live_trades,
    simulator_bars,
    strategy_from_db,
    traded_symbol,
    trader_rules,
    trader_volume,
)
from live.compare_match import Comparison, compare
from live.compare_report import html_report, summary_lines, table_text
from live.config import LiveConfig
from live.errors import ConfigError

EXIT_USAGE = 2


def utc_time(text: str) -> pd.Timestamp:
    """A --from/--to value: a date or date and time, UTC unless it names its offset."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise argparse.ArgumentTypeError(
            f"not a date or time: {text!r} (e.g. 2024-01-31 or 2024-01-31T12:00)"
        )
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m live.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--db", help="audit database (default: AUDIT_DB of the settings)")
    parser.add_argument("--config", help="settings file (default .env, as the trader)")
    bars = parser.add_mutually_exclusive_group()
    bars.add_argument("--data", help="bars CSV the trader traded")
    bars.add_argument(
        "--sim",
        action="store_true",
        help="the run was on the built-in simulator: make its bars again",
    )
    parser.add_argument(
        "--sim-seed",
        type=int,
        help="with --sim: the simulator's seed, when "
        "neither the start-up record nor SIM_SEED has it",
    )
    parser.add_argument("--symbol", help="symbol (default: the only one traded)")
    parser.add_argument(
        "--from",
        dest="since",
        type=utc_time,
        metavar="TIME",
        help="first entry time (UTC), e.g. 2024-01-31",
    )
    parser.add_argument(
        "--to", dest="until", type=utc_time, metavar="TIME", help="last entry time (UTC)"
    )
    parser.add_argument("--strategy", help="strategy file (default: the one the trader ran)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--spread", type=float, help="backtest spread in points (default: the CSV's)"
    )
    parser.add_argument("--html", help="write the HTML report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.data and not args.sim:
        parser.error(
            "give the bars the trader traded: --data FILE.csv, or --sim for a run "
            "on the built-in simulator"
        )
    try:
        result = run(args)
    except (ConfigError, DataError, StrategyError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(summary_lines(result)))
    print(table_text(result))
    if args.html:
        Path(args.html).write_text(html_report(result), encoding="utf-8")
        print(f"report written to {args.html}")
    return 0


def run(args: argparse.Namespace) -> Comparison:
    config = LiveConfig.load(args.config)  # read for AUDIT_DB and SIM_*, as the trader would
    reader = AuditReader(args.db or config.audit_db)
    symbol = traded_symbol(reader, args.symbol)
    strategy = strategy_from_db(reader, args.strategy, args.param)
    if args.sim:
        bars, bars_note = simulator_bars(reader, symbol, config, args.sim_seed)
    else:
        bars, bars_note = load_csv(args.data), str(args.data)
    first, last = decision_span(reader, bars, symbol)
    bars = bars.iloc[: last + 2].reset_index(drop=True)  # + the bar whose open fills the last
    spec = get_symbol_spec(symbol)
    # MT5 bars are bid prices: buys fill at bid + spread, as on the terminal
    backtest = run_backtest(
        bars,
        strategy,
        spec=spec,
        config=BacktestConfig(
            close_at_end=False,
            spread_points=args.spread,
            spread_mode="bid",
            rules=trader_rules(config, sim=args.sim),
        ),
        trade_from=first,
    ).trades
    seconds = timeframe_seconds(infer_timeframe(bars))
    live = live_trades(reader, symbol, args.since, args.until)
    volume, volume_note = trader_volume(reader, symbol, live)
    result = compare(
        live,
        entry_window(backtest, args.since, args.until),
        spec=spec,
        bar_seconds=seconds,
        symbol=symbol,
        strategy=strategy.label(),
        volume=volume,
        volume_note=volume_note,
    )
    result.bars_note = bars_note
    return result


if __name__ == "__main__":
    sys.exit(main())
