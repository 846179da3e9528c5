"""The backtest commands that run one parameter set: `run` (statistics, the --rules verdict,
--json, --report; with --symbols a portfolio) and `lookahead`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from backtest.atomic import atomic_file, write_atomic
from backtest.cli_common import (
    broker_zone,
    config_from_args,
    data_name,
    load_bars_from_args,
    load_strategy_from_args,
    other_bars_from_args,
)
from backtest.engine import BacktestConfig, BacktestResult, fill_decimals, run_backtest
from backtest.errors import UsageError
from backtest.informative import check_informative
from backtest.metrics import stats_for_output, stats_table
from backtest.results import TRADE_SUMMARY_COLUMNS
from backtest.strategy import Strategy, create_strategy, strategy_warmup
from backtest.symbols import SymbolSpec

if TYPE_CHECKING:
    from backtest.challenge_report import ChallengeReport
    from backtest.prop_rules import Preset

EXIT_OK, EXIT_FAILURE = 0, 1


def cmd_run(args: argparse.Namespace) -> int:
    if args.symbols or args.data_dir:
        return _run_portfolio(args)
    bars, spec = load_bars_from_args(args)
    strategy_cls, params = load_strategy_from_args(args)
    check_informative(strategy_cls, bars, data_name(args, spec))
    others = other_bars_from_args(strategy_cls, args)
    strategy = create_strategy(strategy_cls, params)
    preset = _preset(args)  # a bad preset stops us before any output
    config = config_from_args(args)  # with the preset's windows
    _warn_if_too_short(bars, strategy)
    result = run_backtest(bars, strategy, spec=spec, config=config, other_bars=others)
    print(format_stats(result))
    challenge = None if preset is None else _verdict(args, preset, result, bars, spec, config)
    if args.show_trades:
        print(
            result.trades.tail(args.show_trades)
            .loc[:, list(TRADE_SUMMARY_COLUMNS)]
            .to_string(index=False)
        )
    if args.json:
        write_result_json(args.json, result, strategy, config, spec, challenge)
        print(f"wrote {args.json}")
    if args.report:
        from backtest.report import strategy_overlays, write_report  # late: only for reports

        overlays = strategy_overlays(strategy, bars)
        write_report(result, bars, args.report, config=config, overlays=overlays)
        print(f"wrote {args.report}")
    return EXIT_OK


# The modules of presets and verdicts load only for runs that use them: a plain run starts
# sooner.


def _preset(args: argparse.Namespace) -> Preset | None:
    if not args.rules:
        return None
    from backtest.cli_challenge import preset_from_args

    return preset_from_args(args)


def _verdict(
    args: argparse.Namespace,
    preset: Preset,
    result: BacktestResult,
    bars: pd.DataFrame,
    spec: SymbolSpec,
    config: BacktestConfig,
) -> ChallengeReport | None:
    """The --rules verdict (and --mc's pass probability), printed and returned."""
    from backtest.cli_challenge import challenge_of, pass_probability_of

    challenge = challenge_of(preset, result, bars, spec, config)
    if challenge is not None:
        chances = pass_probability_of(args, preset, result, bars, spec, config)
        challenge.monte_carlo = None if chances is None else chances.as_dict()
        print("\n".join(challenge.lines() + ([chances.line()] if chances else [])))
    return challenge


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
    from backtest.cli_portfolio import run_portfolio_command

    strategy_cls, params = load_strategy_from_args(args)
    config = config_from_args(args)
    run_portfolio_command(args, strategy_cls, params, config, broker_zone(args), write_atomic)
    return EXIT_OK


def cmd_lookahead(args: argparse.Namespace) -> int:
    from backtest.lookahead import check_lookahead

    if args.checkpoints < 1:
        raise UsageError(f"--checkpoints must be at least 1, got {args.checkpoints}")
    bars, spec = load_bars_from_args(args)
    strategy_cls, params = load_strategy_from_args(args)
    report = check_lookahead(
        create_strategy(strategy_cls, params),
        bars,
        checkpoints=args.checkpoints,
        zone=broker_zone(args),
        where=data_name(args, spec),
        other_bars=other_bars_from_args(strategy_cls, args),
    )
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILURE


def write_result_json(
    path: Path,
    result: BacktestResult,
    strategy: Strategy,
    config: BacktestConfig,
    spec: SymbolSpec,
    challenge: ChallengeReport | None = None,
) -> None:
    """The `--json` document, written atomically: setup and stats, then the trades (ISO-8601
    times, size in units), encoded column-wise by pandas a slice at a time, so a run of
    millions of bars never holds its whole text.

    Prices are rounded to the fill precision (the symbol's digits, one more when half-spreads
    split a point), money to cents.
    """
    head = json.dumps(
        {
            "symbol": result.symbol,
            "strategy": result.strategy,
            "params": strategy.params,
            "config": config.describe(),
            "stats": stats_for_output(result.stats),
            **({"challenge": challenge.as_dict()} if challenge is not None else {}),
        },
        indent=1,
    )
    with atomic_file(path) as handle:
        handle.write(head[:-2] + ',\n "trades": [')
        for index, piece in enumerate(result.trades_json_pieces(fill_decimals(spec, config))):
            handle.write("," if index else "")
            handle.write(piece)
        handle.write("]\n}\n")


def format_stats(result: BacktestResult) -> str:
    """The stats as an aligned two-column table."""
    return stats_table(f"{result.strategy} on {result.symbol}", result.stats)
