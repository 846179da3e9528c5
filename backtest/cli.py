"""Command line of the backtest module: run, optimize, walkforward, lookahead.

User errors (missing files, bad parameters or grids, strategies that raise, bad data) print one
clear line on stderr and exit with code 2; nothing is half-written (outputs are written atomically).
The parser imports nothing heavy; each command's module (`cli_run`, `cli_grid`) is imported when
that command runs, so a plain `run` never loads the grid, the search or the report.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
from pathlib import Path

from backtest.cli_options import (
    add_common_options,
    add_data_options,
    add_grid_options,
    add_rules_option,
    add_search_options,
)
from backtest.errors import BacktestError, UsageError

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m backtest`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_outputs(args)
        return _handler(args.handler)(args)
    except (BacktestError, OSError) as exc:  # a refusal, or a file that cannot be read
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


OUTPUT_OPTIONS = ("json", "report", "csv")


def check_outputs(args: argparse.Namespace) -> None:
    """UsageError before any work when an output asked for cannot be written there (its
    folder cannot be made, or takes no new file), so a failed run leaves no output behind."""
    for option in OUTPUT_OPTIONS:
        path = getattr(args, option, None)
        if path is None:
            continue
        path = Path(path)
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        try:
            if path.is_dir():
                raise IsADirectoryError(21, "it is a folder")
            if blocking is not None:
                raise NotADirectoryError(20, f"{blocking} is a file, not a folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(f"cannot write {path}: {reason} (--{option})") from None


def _handler(name: str):
    """'cli_run:cmd_run' -> backtest.cli_run.cmd_run."""
    module, function = name.split(":")
    return getattr(importlib.import_module(f"backtest.{module}"), function)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backtest",
        description="Backtest, optimise and check strategies on bar data (CSV or generated).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="backtest one parameter set")
    add_common_options(run, portfolio=True)
    add_rules_option(run)
    run.add_argument("--json", type=Path, help="write stats and trades as JSON to this file")
    run.add_argument("--report", type=Path, help="write a self-contained HTML report")
    run.add_argument(
        "--show-trades", type=int, default=0, metavar="N", help="print the last N trades"
    )
    run.set_defaults(handler="cli_run:cmd_run")

    optimize = commands.add_parser("optimize", help="run a parameter grid on all cores")
    add_common_options(optimize)
    add_grid_options(optimize)
    add_search_options(optimize)
    add_rules_option(optimize, ranks=True)
    optimize.add_argument("--top", type=int, default=10, help="rows to print (default 10)")
    optimize.add_argument("--csv", type=Path, help="write every grid result to this CSV")
    optimize.set_defaults(handler="cli_grid:cmd_optimize")

    walk = commands.add_parser("walkforward", help="optimise in-sample, trade out-of-sample")
    add_common_options(walk)
    add_grid_options(walk)
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
    walk.set_defaults(handler="cli_grid:cmd_walkforward")

    look = commands.add_parser("lookahead", help="check a strategy for look-ahead bias")
    add_data_options(look)
    look.add_argument("--strategy", required=True, help="strategy file (path[:ClassName])")
    look.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    look.add_argument(
        "--checkpoints",
        type=int,
        default=50,
        help="number of truncation points to compare (default 50)",
    )
    look.set_defaults(handler="cli_run:cmd_lookahead")
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"file not found: {exc.filename}"
    return " ".join(text.split())
