"""The backtest command line's vocabulary: every option of `run`, `optimize`, `walkforward`
and `lookahead`, declared here with argparse alone, so building the parser imports nothing
heavy (each command's module is imported only when that command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_data_options(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="bars CSV (generic or MT5 export)")
    source.add_argument(
        "--synthetic",
        type=int,
        metavar="N_BARS",
        help="generate N bars offline instead of reading a file",
    )
    parser.add_argument("--symbol", help="symbol name (default: from the file name, else EURUSD)")
    parser.add_argument(
        "--timeframe",
        help="resample to this timeframe (e.g. H4); with "
        "--synthetic, the generated timeframe (default H1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --synthetic (default 0)")
    parser.add_argument(
        "--tz", default="UTC", help="timezone of naive times in the file (default UTC)"
    )
    parser.add_argument("--from", dest="date_from", help="first bar time to use (UTC)")
    parser.add_argument("--to", dest="date_to", help="last bar time to use (UTC)")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="parse the CSV even when it was parsed before (see BACKTEST_CACHE_DIR)",
    )
    return source


def add_common_options(parser: argparse.ArgumentParser, *, portfolio: bool = False) -> None:
    parser.add_argument("--strategy", required=True, help="strategy file (path[:ClassName])")
    source = add_data_options(parser)
    if portfolio:
        add_portfolio_options(parser, source)
    add_window_options(parser)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a strategy parameter (repeatable)",
    )
    parser.add_argument("--cash", type=float, default=10_000.0, help="initial balance")
    parser.add_argument(
        "--commission",
        type=float,
        default=0.0,
        help="commission per lot per side, account currency (default 0)",
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=None,
        metavar="POINTS",
        help="constant spread in points (default: the data's spread column, 0 if it has none)",
    )
    parser.add_argument(
        "--spread-mode",
        choices=("half", "bid"),
        default="half",
        help="half: bars are mid prices, each side pays half the spread; "
        "bid: bars are bid prices as in MT5, buys pay the whole spread",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--lots", type=float, help="fixed volume per trade (default 0.1)")
    size.add_argument(
        "--risk",
        type=float,
        metavar="PERCENT",
        help="risk this %% of equity per trade (needs a stop-loss)",
    )


def add_grid_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=START:STOP:STEP",
        help="parameter range (inclusive) or list NAME=a,b,c (repeatable)",
    )
    parser.add_argument(
        "--metric",
        default="sharpe",
        help="statistic to optimise (default sharpe), e.g. total_return_pct; "
        "the highest wins, except for max_drawdown_days (the lowest)",
    )
    parser.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    parser.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT",
        help="run the grid on an existing Dask distributed scheduler",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_window_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "broker time and trading windows (as the live trader's settings of the same names)"
    )
    group.add_argument(
        "--broker-tz",
        metavar="ZONE",
        help="the broker's server time zone (Europe/Athens, UTC+2, NY+7...): D1/W1 bars are "
        "cut at its midnight, strategies get a broker_time column (default: --tz)",
    )
    group.add_argument(
        "--sessions",
        default="",
        metavar="TABLE",
        help="session table in broker time, e.g. 'EURUSD=Mon 00:00-Fri 23:55 break "
        "23:57-00:02' (default: forex, Sun 17:00-Fri 17:00 New York)",
    )
    group.add_argument(
        "--trade-hours",
        default="",
        metavar="HH:MM-HH:MM[,...]",
        help="enter only between these broker hours",
    )
    minutes = {
        "--no-entry-after-open": "no entries in a session's first MIN minutes",
        "--no-entry-before-close": "no entries in a session's last MIN minutes",
        "--news-before": "no entries from MIN minutes before a calendar event...",
        "--news-after": "...until MIN minutes after it",
    }
    for option, text in minutes.items():
        dest = option.removeprefix("--").replace("-", "_") + "_min"
        group.add_argument(option, dest=dest, type=float, default=0.0, metavar="MIN", help=text)
    group.add_argument(
        "--flat-before-weekend",
        dest="flat_before_weekend_min",
        type=float,
        default=None,
        metavar="MIN",
        help="be flat this many minutes before the weekly close",
    )
    group.add_argument(
        "--min-trade-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep a position at least this long: a strategy exit sooner waits for the first "
        "bar open that late (stops and flat windows do not)",
    )
    group.add_argument("--calendar", metavar="CSV", help="economic calendar for news blackouts")
    group.add_argument(
        "--calendar-tz", default="UTC", help="zone of a ForexFactory export's times (default UTC)"
    )
    group.add_argument(
        "--news-impact",
        default="high",
        help="impacts that black out, comma-separated (default high)",
    )
    group.add_argument(
        "--news-flatten",
        dest="news_flatten",
        action="store_true",
        help="also close positions in a blackout",
    )


def add_search_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("search (the grid's space, searched with Optuna's TPE)")
    group.add_argument(
        "--search",
        choices=("grid", "optuna"),
        default="grid",
        help="grid: every combination (default); optuna: --trials of them, chosen by a search",
    )
    group.add_argument(
        "--trials",
        type=int,
        help="distinct combinations an optuna search runs, never more (default: a tenth of "
        "the grid)",
    )
    group.add_argument(
        "--search-seed", type=int, default=0, help="seed of the optuna search (default 0)"
    )
    group.add_argument(
        "--study", help="SQLite file keeping the optuna study: run again to resume it"
    )
    group.add_argument(
        "--min-trades",
        type=int,
        default=0,
        metavar="N",
        help="an optuna trial with fewer trades never wins (default 0)",
    )


def add_rules_option(parser: argparse.ArgumentParser, *, ranks: bool = False) -> None:
    """--rules, --mc, --mc-seed; `ranks`: for a grid, whose rows gain pass_rate."""
    what = (
        "judge each combination by an account-protection preset (adds pass_rate and the "
        "verdict; rank with --metric pass_rate)"
        if ranks
        else "evaluate an account-protection preset on the run"
    )
    parser.add_argument(
        "--rules",
        metavar="PRESET",
        help=f"{what}: a name in presets/ (static_5_10, higher_of_5_10, one_step_eod_trailing, "
        "futures_trailing) or a .toml file",
    )
    parser.add_argument(
        "--mc",
        type=int,
        default=0,
        metavar="PATHS",
        help="with --rules: the pass probability over this many bootstrap paths of the trades",
    )
    parser.add_argument("--mc-seed", type=int, default=0, help="seed of --mc (default 0)")


def add_portfolio_options(parser: argparse.ArgumentParser, source: object) -> None:
    """The portfolio options; --data-dir joins the data `source` group (--data, ...)."""
    source.add_argument(
        "--data-dir", type=Path, help="folder of the --symbols' CSVs (EURUSD_H1.csv, ...)"
    )
    group = parser.add_argument_group("portfolio (several symbols, one account)")
    group.add_argument("--symbols", help="comma-separated symbols traded together on one account")
    group.add_argument("--max-open-positions", type=int, default=0, metavar="N",
                       help="open positions allowed over all symbols (0 = no limit)")  # fmt: skip
    group.add_argument("--max-total-lots", type=float, default=0.0, metavar="LOTS",
                       help="total open volume allowed (0 = no limit)")  # fmt: skip
    group.add_argument("--max-margin-pct", type=float, default=0.0, metavar="PCT",
                       help="used margin allowed as %% of equity (0 = no limit)")  # fmt: skip
    group.add_argument("--leverage", type=float, default=100.0,
                       help="the account's leverage, for margin (default 100)")  # fmt: skip
