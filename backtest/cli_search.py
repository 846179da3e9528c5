"""The backtest CLI's search options for `optimize` and `walkforward`: the grid run whole
(the default) or an Optuna search of the same space (`backtest.search`)."""

from __future__ import annotations

import argparse

from backtest.errors import UsageError
from backtest.optimize import combinations
from backtest.walkforward import Search


def add_search_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("search (the grid's space by Optuna's TPE)")
    group.add_argument(
        "--search",
        choices=("grid", "optuna"),
        default="grid",
        help="grid: every combination (default); optuna: --trials of them, chosen by TPE",
    )
    group.add_argument(
        "--trials", type=int, help="trials of an optuna search (default: a tenth of the grid)"
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


def search_of(args: argparse.Namespace, grid: dict[str, list]) -> Search | None:
    """The Optuna search asked for (None: run the grid); UsageError naming the option."""
    if args.search == "grid":
        given = [f"--{n.replace('_', '-')}" for n in ("trials", "study") if getattr(args, n)]
        if given or args.min_trades:
            raise UsageError(f"{', '.join(given) or '--min-trades'} needs --search optuna")
        return None
    size = sum(1 for _ in combinations(grid))
    trials = args.trials if args.trials is not None else max(10, size // 10)
    if trials < 1 or args.min_trades < 0:
        raise UsageError("--trials must be at least 1 and --min-trades at least 0")
    return Search(trials, args.search_seed, args.study, args.min_trades)
