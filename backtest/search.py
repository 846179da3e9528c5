"""Optuna search over a strategy's parameters: the space of a grid (the same `--grid` specs),
explored by TPE in a fraction of the grid's evaluations instead of all of them.

- Seeded: the same seed, space and data give the same trials.
- The study can be kept in SQLite (`study_path`): a run stopped or finished is resumed by
  running it again, and adds trials until the study holds `trials` complete ones. Its name
  carries the strategy, the space, the metric and the data, so another request in the same
  file is another study.
- Trials are asked for in batches and run as the grid's combinations are (this machine's
  cores, or the Dask cluster), then told in the order they were asked, so a batch's results
  arriving in any order change nothing.
- A combination the strategy refuses, or one with fewer than `min_trades` trades (a metric
  of a handful of trades means little), is pruned: it never wins.

The result is a grid's table: one row per trial kept, best first.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.engine import BacktestConfig
from backtest.metrics import LOWER_IS_BETTER
from backtest.optimize import (
    Challenge,
    GridError,
    check_request,
    evaluate_combinations,
    prepare_job,
    results_table,
)
from backtest.strategy import Strategy
from backtest.symbols import SymbolSpec

logger = logging.getLogger(__name__)


def run_search(
    bars: pd.DataFrame,
    strategy_cls: type[Strategy],
    grid: dict[str, list[Any]],
    *,
    spec: SymbolSpec,
    config: BacktestConfig,
    metric: str,
    trials: int,
    seed: int = 0,
    fixed_params: dict[str, Any] | None = None,
    workers: int | None = None,
    cluster: str | None = None,
    challenge: Challenge | None = None,
    study_path: str | Path | None = None,
    min_trades: int = 0,
) -> pd.DataFrame:
    """Search `grid`'s space with `trials` trials (see the module docstring)."""
    import optuna

    if trials < 1:
        raise GridError(f"--trials must be at least 1, got {trials}")
    check_request(grid, fixed_params, metric, challenge)
    bars, job = prepare_job(bars, strategy_cls, spec, config, fixed_params, challenge)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name(strategy_cls, grid, fixed_params, metric, bars, spec),
        storage=f"sqlite:///{Path(study_path).resolve()}" if study_path else None,
        load_if_exists=True,
        direction="minimize" if metric in LOWER_IS_BETTER else "maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    batch = 2 * max(1, workers or 1)  # a pool's start-up shared by a few trials per worker
    known: dict[str, Any] = {}  # TPE asks for a combination again: it is run once
    while (left := trials - _finished(study)) > 0:
        asked = [study.ask() for _ in range(min(batch, left))]
        combos = [{name: _suggest(t, name, values) for name, values in grid.items()}
                  for t in asked]  # fmt: skip
        new = [c for c in _distinct(combos) if _key(c) not in known]
        rows = evaluate_combinations(
            bars, job, new, workers=workers, cluster=cluster, progress=False
        ) if new else []  # fmt: skip
        known.update(_by_params(rows))
        for trial, params in zip(asked, combos, strict=True):
            _tell(study, trial, params, known[_key(params)], metric, min_trades)
    kept = {_key(t.user_attrs["params"]): (t.user_attrs["params"], t.user_attrs["stats"])
            for t in study.trials if "stats" in t.user_attrs}  # fmt: skip
    if not kept:
        raise GridError(f"none of the {len(study.trials)} trials gave a {metric} to rank by")
    table = results_table(list(kept.values()), list(grid), metric, len(kept))  # each once
    table.attrs["trials"] = len(study.trials)
    return table


def study_name(
    strategy_cls: type[Strategy],
    grid: dict[str, list[Any]],
    fixed: dict[str, Any] | None,
    metric: str,
    bars: pd.DataFrame,
    spec: SymbolSpec,
) -> str:
    """The study's name in its file: the strategy and metric readable, the space, the fixed
    parameters and the data (symbol, count, first and last bar) as a digest."""
    request = {
        "grid": grid,
        "fixed": fixed or {},
        "bars": [spec.name, len(bars), str(bars["time"].iloc[0]), str(bars["time"].iloc[-1])],
    }
    digest = hashlib.sha1(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    return f"{strategy_cls.__name__}-{metric}-{digest[:12]}"


def _suggest(trial, name: str, values: list[Any]) -> Any:
    """One of the grid's values: along the axis for evenly spaced numbers (so TPE sees
    which are neighbours), by category otherwise."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    steps = {round(b - a, 12) for a, b in itertools.pairwise(numbers)}
    if len(numbers) != len(values) or len(numbers) < 3 or len(steps) != 1:
        return trial.suggest_categorical(name, values)
    if all(isinstance(v, int) for v in numbers):
        return trial.suggest_int(name, numbers[0], numbers[-1], step=numbers[1] - numbers[0])
    picked = trial.suggest_float(name, numbers[0], numbers[-1], step=steps.pop())
    return min(numbers, key=lambda v: abs(v - picked))  # the grid's own value, no float noise


def _finished(study) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(t.state in done for t in study.trials)


def _tell(study, trial, params: dict[str, Any], stats, metric: str, min_trades: int) -> None:
    import optuna

    pruned = optuna.trial.TrialState.PRUNED
    if isinstance(stats, str):  # the strategy refused these values
        study.tell(trial, state=pruned)
        return
    value = stats.get(metric)
    if value is None or not math.isfinite(float(value)) or stats.get("n_trades", 0) < min_trades:
        study.tell(trial, state=pruned)
        return
    # the grid's own values (a float axis snapped to them), not the sampler's raw floats
    trial.set_user_attr("params", {k: _plain(v) for k, v in params.items()})
    trial.set_user_attr("stats", {k: _plain(v) for k, v in stats.items()})
    study.tell(trial, float(value))


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _distinct(combos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each combination once (TPE may ask for the same one twice in a batch)."""
    return list({_key(c): c for c in combos}.values())


def _by_params(rows: list[tuple]) -> dict[str, Any]:
    return {_key(params): stats for params, stats in rows}


def _plain(value: Any) -> Any:
    """JSON-ready (the study's storage keeps user attributes as JSON)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
