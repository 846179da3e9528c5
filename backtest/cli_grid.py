"""The backtest commands that search parameters: `optimize` (the grid or an Optuna search,
on all cores or a Dask cluster) and `walkforward`, which may search each window with
Optuna's TPE (`backtest.search`)."""

from __future__ import annotations

import argparse

import pandas as pd

from backtest.atomic import write_atomic
from backtest.cli_challenge import grid_challenge
from backtest.cli_common import (
    config_from_args,
    data_name,
    load_bars_from_args,
    load_strategy_from_args,
    other_bars_from_args,
)
from backtest.errors import UsageError
from backtest.informative import check_informative
from backtest.metrics import format_number
from backtest.optimize import combinations, parse_grid, run_grid, table_heading
from backtest.walkforward import Search, run_walkforward

EXIT_OK = 0


def cmd_optimize(args: argparse.Namespace) -> int:
    bars, spec = load_bars_from_args(args)
    strategy_cls, fixed = load_strategy_from_args(args)
    check_informative(strategy_cls, bars, data_name(args, spec))
    grid = parse_grid(strategy_cls, args.grid)
    search = search_of(args, grid)
    challenge = grid_challenge(args)  # before the config: the preset's windows count
    options = {"spec": spec, "config": config_from_args(args), "metric": args.metric,
               "fixed_params": fixed, "workers": args.workers or None,
               "cluster": args.cluster, "challenge": challenge,
               "other_bars": other_bars_from_args(strategy_cls, args)}  # fmt: skip
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
    bars, spec = load_bars_from_args(args)
    strategy_cls, fixed = load_strategy_from_args(args)
    check_informative(strategy_cls, bars, data_name(args, spec))
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
        other_bars=other_bars_from_args(strategy_cls, args),
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


def search_of(args: argparse.Namespace, grid: dict[str, list]) -> Search | None:
    """The Optuna search asked for (None: run the grid); UsageError naming the option."""
    if args.search == "grid":
        given = [f"--{n}" for n in ("trials", "study") if getattr(args, n) is not None]
        if given or args.min_trades:
            raise UsageError(f"{', '.join(given) or '--min-trades'} needs --search optuna")
        return None
    size = sum(1 for _ in combinations(grid))
    trials = args.trials if args.trials is not None else max(10, size // 10)
    if trials < 1 or args.min_trades < 0:
        raise UsageError("--trials must be at least 1 and --min-trades at least 0")
    return Search(trials, args.search_seed, args.study, args.min_trades)
