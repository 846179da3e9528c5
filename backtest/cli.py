"""Command line of the backtest module: run, optimize, walkforward, lookahead.

User errors (missing files, bad parameters or grids, strategies that raise, bad data) print one
clear line on stderr and exit with code 2; nothing is half-written (outputs are written atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from backtest.atomic import write_atomic
from backtest.broker_clock import BrokerZone, BrokerZoneError, parse_zone
from backtest.challenge import ChallengeReport
from backtest.cli_challenge import (
    add_rules_option,
    challenge_of,
    grid_challenge,
    pass_probability_of,
    preset_from_args,
)
from backtest.cli_portfolio import add_portfolio_options, other_bars_of, run_portfolio_command
from backtest.cli_search import add_search_options, search_of
from backtest.cli_windows import add_window_options, rules_from_args
from backtest.engine import BacktestConfig, BacktestResult, fill_decimals, run_backtest
from backtest.errors import BacktestError, UsageError
from backtest.informative import check_informative
from backtest.metrics import format_number, stats_for_output, stats_table
from backtest.sizing import Sizing
from backtest.strategy import (
    Strategy,
    create_strategy,
    get_strategy_from_file,
    parse_param_overrides,
    strategy_warmup,
)
from backtest.symbols import DEFAULT_SYMBOLS, SymbolSpec, get_symbol_spec
from backtest.trading_windows import with_broker_time

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m backtest`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (BacktestError, OSError) as exc:  # a refusal, or a file that cannot be read
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backtest",
        description="Backtest, optimise and check strategies on bar data (CSV or generated).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="backtest one parameter set")
    _add_common(run, portfolio=True)
    add_rules_option(run)
    run.add_argument("--json", type=Path, help="write stats and trades as JSON to this file")
    run.add_argument("--report", type=Path, help="write a self-contained HTML report")
    run.add_argument(
        "--show-trades", type=int, default=0, metavar="N", help="print the last N trades"
    )
    run.set_defaults(handler=cmd_run)

    optimize = commands.add_parser("optimize", help="run a parameter grid on all cores")
    _add_common(optimize)
    _add_grid_options(optimize)
    add_search_options(optimize)
    add_rules_option(optimize, ranks=True)
    optimize.add_argument("--top", type=int, default=10, help="rows to print (default 10)")
    optimize.add_argument("--csv", type=Path, help="write every grid result to this CSV")
    optimize.set_defaults(handler=cmd_optimize)

    walk = commands.add_parser("walkforward", help="optimise in-sample, trade out-of-sample")
    _add_common(walk)
    _add_grid_options(walk)
    add_search_options(walk)
    walk.add_argument("--train", type=int, required=True, help="bars per training window")
    walk.add_argument("--test", type=int, required=True, help="bars per test window")
    walk.add_argument(
        "--mode",
        choices=("anchored", "rolling"),
        default="rolling",
        help="anchored: training grows from the start; rolling: fixed length",
    )
    walk.add_argument(
        "--json", type=Path, help="write windows, stats and the out-of-sample equity as JSON"
    )
    walk.add_argument("--report", type=Path, help="write a self-contained HTML report")
    walk.set_defaults(handler=cmd_walkforward)

    look = commands.add_parser("lookahead", help="check a strategy for look-ahead bias")
    _add_data_options(look)
    look.add_argument("--strategy", required=True, help="strategy file (path[:ClassName])")
    look.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    look.add_argument(
        "--checkpoints",
        type=int,
        default=50,
        help="number of truncation points to compare (default 50)",
    )
    look.set_defaults(handler=cmd_lookahead)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
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
    return source


def _add_common(parser: argparse.ArgumentParser, *, portfolio: bool = False) -> None:
    parser.add_argument("--strategy", required=True, help="strategy file (path[:ClassName])")
    source = _add_data_options(parser)
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


def _add_grid_options(parser: argparse.ArgumentParser) -> None:
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


# ---------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    if args.symbols or args.data_dir:
        return _run_portfolio(args)
    bars, spec = load_bars_from_args(args)
    strategy_cls, params = load_strategy_from_args(args)
    check_informative(strategy_cls, bars, _data_name(args, spec))
    others = other_bars_of(strategy_cls, args, _broker_zone(args), folder=_folder(args))
    strategy = create_strategy(strategy_cls, params)
    preset = preset_from_args(args)  # a bad preset stops us before any output
    config = config_from_args(args)  # with the preset's windows
    _warn_if_too_short(bars, strategy)
    result = run_backtest(bars, strategy, spec=spec, config=config, other_bars=others)
    print(format_stats(result))
    challenge = challenge_of(preset, result, bars, spec, config)
    if challenge is not None:
        chances = pass_probability_of(args, preset, result, bars, spec, config)
        challenge.monte_carlo = None if chances is None else chances.as_dict()
        print("\n".join(challenge.lines() + ([chances.line()] if chances else [])))
    if args.show_trades:
        print(result.trades.tail(args.show_trades).loc[:, _TRADE_PREVIEW].to_string(index=False))
    if args.json:
        write_atomic(args.json, result_json_text(result, strategy, config, spec, challenge))
        print(f"wrote {args.json}")
    if args.report:
        from backtest.report import strategy_overlays, write_report  # late: only for reports

        overlays = strategy_overlays(strategy, bars)
        write_report(result, bars, args.report, config=config, overlays=overlays)
        print(f"wrote {args.report}")
    return EXIT_OK


def _warn_if_too_short(bars: pd.DataFrame, strategy: Strategy) -> None:
    """0 trades because the data ends inside the warm-up is no result: say so."""
    warmup = strategy_warmup(strategy)
    if len(bars) <= warmup:
        print(
            f"warning: {len(bars)} bars, but {strategy.label()} needs {warmup} to warm up and "
            "one more to fill an order: it could not trade; give more data",
            file=sys.stderr,
        )


def _run_portfolio(args: argparse.Namespace) -> int:
    strategy_cls, params = load_strategy_from_args(args)
    config = config_from_args(args)
    run_portfolio_command(args, strategy_cls, params, config, _broker_zone(args), write_atomic)
    return EXIT_OK


def cmd_optimize(args: argparse.Namespace) -> int:
    from backtest.optimize import parse_grid, run_grid, table_heading

    bars, spec = load_bars_from_args(args)
    strategy_cls, fixed = load_strategy_from_args(args)
    check_informative(strategy_cls, bars, _data_name(args, spec))
    grid = parse_grid(strategy_cls, args.grid)
    search = search_of(args, grid)
    challenge = grid_challenge(args)  # before the config: the preset's windows count
    options = {"spec": spec, "config": config_from_args(args), "metric": args.metric,
               "fixed_params": fixed, "workers": args.workers or None,
               "cluster": args.cluster, "challenge": challenge}  # fmt: skip
    if search is None:
        table = run_grid(bars, strategy_cls, grid, progress=not args.no_progress, **options)
    else:
        table = search.run(bars, strategy_cls, grid, **options)
    print(table_heading(table, len(bars), args.metric))
    print(table.head(args.top).to_string(index=False, float_format=format_number))
    if args.csv:
        write_atomic(args.csv, table.to_csv(index=False))
        print(f"wrote {args.csv}")
    return EXIT_OK


def cmd_walkforward(args: argparse.Namespace) -> int:
    from backtest.optimize import parse_grid
    from backtest.walkforward import run_walkforward

    bars, spec = load_bars_from_args(args)
    strategy_cls, fixed = load_strategy_from_args(args)
    check_informative(strategy_cls, bars, _data_name(args, spec))
    grid = parse_grid(strategy_cls, args.grid)
    result = run_walkforward(
        bars,
        strategy_cls,
        grid,
        spec=spec,
        config=config_from_args(args),
        metric=args.metric,
        train=args.train,
        test=args.test,
        mode=args.mode,
        fixed_params=fixed,
        workers=args.workers or None,
        cluster=args.cluster,
        progress=not args.no_progress,
        search=search_of(args, grid),
    )
    print(result.summary())
    if args.json:
        write_atomic(args.json, result.json_text())
        print(f"wrote {args.json}")
    if args.report:
        from backtest.report_runs import write_walkforward_report

        title = f"Walk-forward: {strategy_cls.__name__} on {spec.name}"
        write_walkforward_report(
            result, args.report, title=title, subtitle=_walkforward_subtitle(args, bars, grid)
        )
        print(f"wrote {args.report}")
    return EXIT_OK


def _walkforward_subtitle(
    args: argparse.Namespace, bars: pd.DataFrame, grid: dict[str, list]
) -> str:
    searched = ", ".join(
        f"{name} {values[0]}..{values[-1]} ({len(values)})" for name, values in grid.items()
    )
    return (
        f"{bars['time'].iloc[0]:%Y-%m-%d} to {bars['time'].iloc[-1]:%Y-%m-%d} · "
        f"{len(bars):,} bars · {args.mode} windows: train {args.train:,}, test "
        f"{args.test:,} bars · best {args.metric} of {searched} · cash {args.cash:,.0f}"
    )


def cmd_lookahead(args: argparse.Namespace) -> int:
    from backtest.lookahead import check_lookahead

    if args.checkpoints < 1:
        raise UsageError(f"--checkpoints must be at least 1, got {args.checkpoints}")
    bars, spec = load_bars_from_args(args)
    strategy_cls, params = load_strategy_from_args(args)
    zone = _broker_zone(args)
    report = check_lookahead(
        create_strategy(strategy_cls, params),
        bars,
        checkpoints=args.checkpoints,
        zone=zone,
        where=_data_name(args, spec),
        other_bars=other_bars_of(strategy_cls, args, zone, folder=_folder(args)),
    )
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILURE


# ---------------------------------------------------------------- shared helpers


def load_bars_from_args(args: argparse.Namespace) -> tuple[pd.DataFrame, SymbolSpec]:
    """Read or generate the bars the command line asks for, with the symbol's spec."""
    from backtest.data import DataError, load_csv, resample_bars

    symbol = args.symbol or _symbol_from_path(args.data) or "EURUSD"
    spec = get_symbol_spec(symbol)
    try:
        if args.data is not None:
            bars = load_csv(args.data, tz=args.tz)
            if args.timeframe:
                bars = resample_bars(bars, args.timeframe, _broker_zone(args))
        else:
            from backtest.synthetic import generate_bars

            if args.synthetic < 2:
                raise UsageError(f"--synthetic needs at least 2 bars, got {args.synthetic}")
            bars = generate_bars(
                symbol, args.timeframe or "H1", args.synthetic, seed=args.seed, spec=spec
            )
    except DataError as exc:
        raise UsageError(str(exc)) from None
    bars = with_broker_time(_slice_dates(bars, args.date_from, args.date_to), _broker_zone(args))
    return bars, spec


def _broker_zone(args: argparse.Namespace) -> BrokerZone:
    """The zone bars are cut on: --broker-tz, else the file's --tz (an MT5 export is
    stamped in its server's time)."""
    try:
        return parse_zone(getattr(args, "broker_tz", None) or args.tz or "UTC", "--broker-tz")
    except BrokerZoneError as exc:
        raise UsageError(str(exc)) from None


def load_strategy_from_args(args: argparse.Namespace) -> tuple[type[Strategy], dict[str, object]]:
    strategy_cls = get_strategy_from_file(args.strategy)
    return strategy_cls, parse_param_overrides(strategy_cls, args.param)


def config_from_args(args: argparse.Namespace) -> BacktestConfig:
    if args.risk is not None:
        sizing = Sizing.risk(args.risk)
    else:
        sizing = Sizing.fixed(args.lots if args.lots is not None else 0.1)
    return BacktestConfig(
        cash=args.cash,
        commission_per_lot=args.commission,
        spread_points=args.spread,
        spread_mode=args.spread_mode,
        sizing=sizing,
        rules=rules_from_args(args),
    )


def result_json_text(
    result: BacktestResult,
    strategy: Strategy,
    config: BacktestConfig,
    spec: SymbolSpec,
    challenge: ChallengeReport | None = None,
) -> str:
    """The `--json` document: setup and stats, then the trades (ISO-8601 times, size in units).

    Prices are rounded to the fill precision (the symbol's digits, one more when half-spreads
    split a point), money to cents. The trades array is encoded column-wise by pandas, which
    keeps a million-bar run fast.
    """
    setup = {k: v for k, v in vars(config).items() if k not in ("sizing", "rules")}
    setup["sizing"] = config.sizing.describe()
    setup["rules"] = config.rules.describe()
    head = json.dumps(
        {
            "symbol": result.symbol,
            "strategy": result.strategy,
            "params": strategy.params,
            "config": setup,
            "stats": stats_for_output(result.stats),
            **({"challenge": challenge.as_dict()} if challenge is not None else {}),
        },
        indent=1,
    )
    trades = result.trades_json(fill_decimals(spec, config))
    return head[:-2] + ',\n "trades": ' + trades + "\n}\n"


def format_stats(result: BacktestResult) -> str:
    """The stats as an aligned two-column table."""
    return stats_table(f"{result.strategy} on {result.symbol}", result.stats)


_TRADE_PREVIEW = [
    "entry_time",
    "exit_time",
    "direction",
    "volume",
    "entry_price",
    "exit_price",
    "pnl",
    "exit_reason",
]


def _folder(args: argparse.Namespace) -> Path | None:
    """Where the other symbols a strategy reads are looked for: beside --data (None: they
    are generated, as --synthetic bars are)."""
    return Path(args.data).parent if args.data is not None else None


def _data_name(args: argparse.Namespace, spec: SymbolSpec) -> str:
    """'EURUSD (data/EURUSD_H1.csv)': the symbol and where its bars came from, for messages."""
    return f"{spec.name} ({args.data if args.data is not None else 'generated bars'})"


def _symbol_from_path(path: Path | None) -> str | None:
    if path is None:
        return None
    stem = path.stem.upper()
    return next((name for name in DEFAULT_SYMBOLS if name in stem), None)


def _slice_dates(bars: pd.DataFrame, date_from: str | None, date_to: str | None) -> pd.DataFrame:
    mask = pd.Series(True, index=bars.index)
    for text, keep in (
        (date_from, lambda t: bars["time"] >= t),
        (date_to, lambda t: bars["time"] <= t),
    ):
        if text:
            mask &= keep(_parse_utc(text))
    sliced = bars.loc[mask].reset_index(drop=True)
    if len(sliced) < 2:
        raise UsageError(f"fewer than 2 bars between --from {date_from} and --to {date_to}")
    return sliced


def _parse_utc(text: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise UsageError(
            f"cannot read date {text!r}; use e.g. 2024-01-31 or 2024-01-31T12:00"
        ) from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"file not found: {exc.filename}"
    return " ".join(text.split())
