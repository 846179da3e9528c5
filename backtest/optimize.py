"""Parameter grids: parsing `name=start:stop:step` specs and running every combination on all
cores (or on a Dask distributed cluster), ranked by one statistic, or by the pass rate of an
account-protection preset (`Challenge`: its verdict, or its bootstrap pass probability)."""

from __future__ import annotations

import difflib
import itertools
import logging
import multiprocessing
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from backtest.engine import BacktestConfig
from backtest.errors import BacktestError
from backtest.grid_job import (
    CHALLENGE_STATS,
    PASS_RATE,
    Challenge,
    GridJob,
    StrategyRef,
    evaluate_params,
    strategy_class,
)
from backtest.metrics import LOWER_IS_BETTER, NUMERIC_STATS, STAT_LABELS
from backtest.strategy import (
    Parameter,
    Strategy,
    StrategyError,
)
from backtest.symbols import SymbolSpec
from backtest.trading_windows import ensure_broker_time

logger = logging.getLogger(__name__)

MAX_COMBINATIONS = 100_000
TABLE_STATS = (
    "total_return_pct",
    "cagr_pct",
    "sharpe",
    "sortino",
    "max_drawdown_pct",
    "max_drawdown_days",
    "exposure_pct",
    "win_rate_pct",
    "profit_factor",
    "n_trades",
    "expectancy",
)


class GridError(BacktestError):
    """A grid spec that cannot be used; the message names the spec and why."""


def parse_grid(strategy_cls: type[Strategy], specs: list[str]) -> dict[str, list[Any]]:
    """`["fast=5:30:5", "slow=20,40,60"]` -> {"fast": [5, 10, ...], "slow": [20, 40, 60]}."""
    if not specs:
        raise GridError("give at least one --grid NAME=START:STOP:STEP (or NAME=a,b,c)")
    declared = strategy_cls.parameters()
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, body = spec.partition("=")
        name = name.strip()
        if not sep or not body.strip():
            raise GridError(f"grid {spec!r} must look like name=start:stop:step or name=a,b,c")
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise GridError(
                f"grid {spec!r}: {strategy_cls.__name__} has no parameter "
                f"{name!r}{hint} (parameters: {', '.join(declared)})"
            )
        if name in grid:
            raise GridError(f"grid {spec!r}: parameter {name!r} is given twice")
        grid[name] = _values(declared[name], body.strip(), spec)
    total = int(np.prod([len(v) for v in grid.values()]))
    if total > MAX_COMBINATIONS:
        raise GridError(
            f"the grid has {total:,} combinations; the limit is "
            f"{MAX_COMBINATIONS:,} (narrow a range or coarsen a step)"
        )
    return grid


def _values(param: Parameter, body: str, spec: str) -> list[Any]:
    if ":" not in body:
        try:
            return [param.parse(item.strip()) for item in body.split(",") if item.strip()]
        except StrategyError as exc:
            raise GridError(f"grid {spec!r}: {exc}") from None
    parts = body.split(":")
    if len(parts) != 3 or param.type not in (int, float):
        raise GridError(f"grid {spec!r}: a range needs start:stop:step on a numeric parameter")
    try:
        start, stop, step = (Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        raise GridError(f"grid {spec!r}: start, stop and step must be numbers") from None
    if step <= 0:
        raise GridError(f"grid {spec!r}: step must be > 0")
    if start > stop:
        raise GridError(f"grid {spec!r}: start {start} is above stop {stop}")
    count = int((stop - start) / step) + 1
    values = [start + i * step for i in range(count)]  # exact decimal steps, no float drift
    if param.type is int:
        if any(v != v.to_integral_value() for v in values):
            raise GridError(f"grid {spec!r}: {param.name} is an integer parameter")
        return [int(v) for v in values]
    return [float(v) for v in values]


def combinations(grid: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    names = list(grid)
    for values in itertools.product(*(grid[n] for n in names)):
        yield dict(zip(names, values, strict=True))


def check_request(
    grid: dict[str, list[Any]],
    fixed: dict[str, Any] | None,
    metric: str,
    challenge: Challenge | None = None,
) -> None:
    """Refuse a metric that cannot rank, and a parameter both fixed and searched."""
    if metric == PASS_RATE and challenge is None:
        raise GridError(f"metric {PASS_RATE!r} needs a preset: add --rules PRESET")
    if metric not in NUMERIC_STATS and metric != PASS_RATE:
        what = "is not a number to rank by" if metric in STAT_LABELS else "is unknown"
        raise GridError(f"metric {metric!r} {what}; use one of: {', '.join(NUMERIC_STATS)}")
    both = [name for name in grid if name in (fixed or {})]
    if both:
        name = both[0]
        raise GridError(
            f"parameter {name!r} is given both as --param {name}="
            f"{fixed[name]} and as --grid {name}=...; keep one of them"
        )


def table_heading(table: pd.DataFrame, n_bars: int, metric: str) -> str:
    """'20 combinations on 400 bars (2 rejected by the strategy, 18 ranked), best by sharpe
    (highest first):' -- the count matches the progress bar's total."""
    total = table.attrs.get("combinations", len(table))
    skipped = table.attrs.get("skipped", 0)
    ranked = f" ({skipped} rejected by the strategy, {len(table)} ranked)" if skipped else ""
    return (
        f"{total} combinations on {n_bars} bars{ranked}, best by {metric} "
        f"({metric_direction(metric)} first):"
    )


def metric_direction(metric: str) -> str:
    """'lowest' for statistics where less is better (drawdown duration), else 'highest'."""
    return "lowest" if metric in LOWER_IS_BETTER else "highest"


_WORKER: dict[str, Any] = {}


def _init_worker(job: GridJob, bars: pd.DataFrame | None) -> None:
    if bars is not None:  # spawned workers get the bars once, here
        _WORKER["bars"] = bars
    _WORKER["cls"] = strategy_class(job.strategy_ref)
    _WORKER["job"] = job


def _evaluate(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | str]:
    job: GridJob = _WORKER["job"]
    return params, evaluate_params(_WORKER["bars"], _WORKER["cls"], params, job)


def run_grid(
    bars: pd.DataFrame,
    strategy_cls: type[Strategy],
    grid: dict[str, list[Any]],
    *,
    spec: SymbolSpec,
    config: BacktestConfig,
    metric: str,
    fixed_params: dict[str, Any] | None = None,
    workers: int | None = None,
    cluster: str | None = None,
    progress: bool = True,
    challenge: Challenge | None = None,
    other_bars: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Backtest every combination; one row each, best `metric` first (undefined ones last).

    Best is the highest value, or the lowest for LOWER_IS_BETTER statistics. With a
    `challenge`, each row also has `pass_rate` and `challenge` (the verdict), and
    `metric` may be `pass_rate`. `other_bars`: the bars of the other symbols the strategy
    reads (`informative`), by symbol, as for `run_backtest`.
    """
    check_request(grid, fixed_params, metric, challenge)
    bars, job = prepare_job(bars, strategy_cls, spec, config, fixed_params, challenge, other_bars)
    combos = list(combinations(grid))
    rows = evaluate_combinations(bars, job, combos, workers=workers, cluster=cluster,
                                 progress=progress)  # fmt: skip
    return results_table(rows, list(grid), metric, len(combos))


def prepare_job(
    bars: pd.DataFrame,
    strategy_cls: type[Strategy],
    spec: SymbolSpec,
    config: BacktestConfig,
    fixed_params: dict[str, Any] | None,
    challenge: Challenge | None,
    other_bars: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, GridJob]:
    """The bars with their broker time (once, not per combination) and the workers' job."""
    if not isinstance(bars.get("time"), pd.Series) or len(bars) < 2:
        raise GridError("the grid needs at least 2 bars")
    bars = ensure_broker_time(bars, config.rules.zone)
    fixed, others = dict(fixed_params or {}), dict(other_bars or {}) or None
    job = GridJob(_reference(strategy_cls), spec, config, fixed, challenge, others)
    return bars, job


def evaluate_combinations(
    bars: pd.DataFrame,
    job: GridJob,
    combos: list[dict[str, Any]],
    *,
    workers: int | None = None,
    cluster: str | None = None,
    progress: bool = True,
) -> list[tuple]:
    """(params, stats or the strategy's refusal) for each combination, in any order: on
    this machine's cores, or on the Dask scheduler at `cluster`."""
    if cluster:
        from backtest.cluster import run_on_cluster

        return run_on_cluster(cluster, bars, job, combos, progress=progress)
    return _run_local(bars, job, combos, workers, progress)


def _reference(strategy_cls: type[Strategy]) -> StrategyRef:
    if strategy_cls.source_code:
        return strategy_cls.source_code, strategy_cls.source_file, strategy_cls.__name__
    return strategy_cls


def _run_local(
    bars: pd.DataFrame,
    job: GridJob,
    combos: list[dict[str, Any]],
    workers: int | None,
    progress: bool,
) -> list[tuple]:
    workers = max(1, min(workers or os.cpu_count() or 1, len(combos)))
    if workers == 1:
        _init_worker(job, bars)
        return list(_progress(map(_evaluate, combos), len(combos), progress))
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "fork":
        _WORKER["bars"] = bars  # inherited by the forked workers without copying
    init_bars = None if method == "fork" else bars
    chunk = max(1, len(combos) // (workers * 8))
    with context.Pool(workers, initializer=_init_worker, initargs=(job, init_bars)) as pool:
        results = pool.imap_unordered(_evaluate, combos, chunksize=chunk)
        return list(_progress(results, len(combos), progress))


def _progress(items: Iterable[Any], total: int, show: bool) -> Iterable[Any]:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc="backtests", unit="run", file=sys.stderr, mininterval=0.5)


def results_table(rows: list[tuple], names: list[str], metric: str, total: int) -> pd.DataFrame:
    """One row per valid combination, best `metric` first (refusals counted, not shown)."""
    records, refusals = [], []
    for params, stats in rows:
        if isinstance(stats, str):
            refusals.append(stats)
            continue
        record = dict(params)
        for key in (metric, *[s for s in (*CHALLENGE_STATS, *TABLE_STATS) if s != metric]):
            if key in stats or key not in CHALLENGE_STATS:
                record[key] = stats.get(key)
        records.append(record)
    skipped = total - len(records)
    if skipped:
        logger.info("%d of %d combinations skipped (rejected by the strategy)", skipped, total)
    if not records:
        raise GridError(
            f"none of the {total} combinations is valid for this strategy; "
            f"for example: {refusals[0] if refusals else 'no reason given'}"
        )
    table = pd.DataFrame(records)
    table[metric] = pd.to_numeric(table[metric], errors="coerce")
    best_first = metric_direction(metric) == "highest"
    ordered = table.sort_values(
        [metric, *names],
        ascending=[not best_first] + [True] * len(names),
        na_position="last",
        kind="stable",
    )
    ordered.attrs["skipped"] = skipped
    ordered.attrs["combinations"] = total
    return ordered.reset_index(drop=True)
