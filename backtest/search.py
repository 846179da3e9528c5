"""Optuna search over a strategy's parameters: the space of a grid (the same `--grid` specs),
explored in a fraction of the grid's evaluations instead of all of them.

- The budget is `trials` distinct combinations run: none is run twice (one TPE asks for
  again is told its known result and costs nothing), so the budget is never exceeded.
- Three phases share it. A spread start (`START_SHARE`): each axis's values from one end
  to the other, shuffled per axis by the seed, so every axis's ends are tried (grid optima
  often sit there). Then Optuna's TPE. The last `REFINE_SHARE` walks the grid from the
  best combination found: its neighbours not yet run (one step either way along each
  axis, and each axis's two ends), then those of the new best, and so on; where TPE only
  asks again for what it has seen, a round of this walk takes its place.
- Seeded: the same seed, space and data give the same trials.
- The study can be kept in SQLite (`study_path`): a run stopped or finished is resumed by
  running it again, and adds combinations until the study holds `trials` of them. Its name
  carries the strategy, the space, the metric, `min_trades` and the data, so another
  request in the same file is another study.
- Trials are asked for in batches and run as the grid's combinations are (this machine's
  cores, or the Dask cluster), then told in the order they were asked, so a batch's results
  arriving in any order change nothing.
- A combination the strategy refuses, or one with fewer than `min_trades` trades (a metric
  of a handful of trades means little), is pruned: it never wins.

The result is a grid's table: one row per combination kept, best first; `attrs["trials"]`
is the number of combinations run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.engine import BacktestConfig
from backtest.metrics import LOWER_IS_BETTER
from backtest.optimize import (
    Challenge,
    GridError,
    GridJob,
    check_request,
    evaluate_combinations,
    prepare_job,
    results_table,
)
from backtest.strategy import Strategy
from backtest.symbols import SymbolSpec

logger = logging.getLogger(__name__)

START_SHARE = 0.2  # of the budget: the spread start, before TPE learns anything
REFINE_SHARE = 0.3  # of the budget: the walk from the best, last
Combination = dict[str, Any]


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
    other_bars: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Search `grid`'s space running `trials` of its combinations (see the module
    docstring)."""
    if trials < 1:
        raise GridError(f"--trials must be at least 1, got {trials}")
    check_request(grid, fixed_params, metric, challenge)
    bars, job = prepare_job(bars, strategy_cls, spec, config, fixed_params, challenge, other_bars)
    budget = min(trials, math.prod(len(values) for values in grid.values()))
    start = max(2, round(START_SHARE * budget))
    name = study_name(strategy_cls, grid, metric, bars, job, min_trades)
    study = _open_study(name, study_path, metric, seed, start)
    goal = _Goal(metric, min_trades)
    plan = _Plan(grid, budget, start, budget - round(REFINE_SHARE * budget),
                 batch=2 * max(1, workers or 1), seed=seed)  # fmt: skip
    known, held = _known(study), len(study.trials)  # held: asked again included
    stalled = False
    while len(known) < budget:
        asked = _ask(study, grid, plan.next_round(known, held, stalled, goal))
        held += len(asked)
        new = _distinct([combo for _, combo in asked if _key(combo) not in known])
        rows = evaluate_combinations(
            bars, job, new, workers=workers, cluster=cluster, progress=False
        ) if new else []  # fmt: skip
        _tell_round(study, asked, rows, known, goal)
        stalled = not new and not stalled  # TPE asked only for what it had: walk a round
    kept = [(attrs["params"], attrs["stats"]) for attrs in known.values() if goal.met(attrs)]
    if not kept:
        raise GridError(_nothing_ranked(known, goal))
    table = results_table(kept, list(grid), metric, len(kept))
    table.attrs["trials"] = len(known)
    return table


def study_name(
    strategy_cls: type[Strategy],
    grid: dict[str, list[Any]],
    metric: str,
    bars: pd.DataFrame,
    job: GridJob,
    min_trades: int = 0,
) -> str:
    """The study's name in its file: the strategy and metric readable, then a digest of
    everything a trial's result depends on: the space, the fixed parameters, the settings
    (costs, sizing, trading rules, an account-rules preset), the minimum of trades (when
    set) and the data (the symbol, and every bar's time and prices, its own and those of
    the other symbols it reads). A study resumed is the same request on the same data."""
    request = {
        "grid": grid,
        "fixed": job.fixed,
        "settings": job.config.describe(),
        "challenge": repr(job.challenge) if job.challenge is not None else None,
        "bars": [job.spec.name, _bars_digest(bars)],
        "other_bars": {s: _bars_digest(b) for s, b in sorted((job.other_bars or {}).items())},
    }
    if min_trades:
        request["min_trades"] = min_trades
    digest = hashlib.sha1(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    return f"{strategy_cls.__name__}-{metric}-{digest[:12]}"


def _bars_digest(bars: pd.DataFrame) -> str:
    """A digest of the bars' times and prices (a million bars: about 0.1 s)."""
    digest = hashlib.sha1(pd.DatetimeIndex(bars["time"]).asi8.tobytes())
    for column in ("open", "high", "low", "close"):
        digest.update(np.ascontiguousarray(bars[column].to_numpy(dtype=float)).view(np.uint8))
    return digest.hexdigest()


def _open_study(name: str, study_path: str | Path | None, metric: str, seed: int, start: int):
    """The study `name`, in memory or in the SQLite file `study_path` (resumed if there),
    sampled by TPE once `start` trials are in."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # multivariate TPE is experimental in Optuna 4
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=start)
    try:
        if study_path:
            Path(study_path).resolve().parent.mkdir(parents=True, exist_ok=True)
        return optuna.create_study(
            study_name=name,
            storage=f"sqlite:///{Path(study_path).resolve()}" if study_path else None,
            load_if_exists=True,
            direction="minimize" if metric in LOWER_IS_BETTER else "maximize",
            sampler=sampler,
        )
    except Exception as exc:  # SQLAlchemy's and Optuna's storage errors, OSError
        reason = " ".join(str(exc).split("\n")[0].split())[:200]
        raise GridError(
            f"--study {study_path}: cannot keep an Optuna study there: {reason}"
        ) from None


def _nothing_ranked(known: dict[str, dict[str, Any]], goal: _Goal) -> str:
    """Why none of the combinations run can be ranked: refused, too few trades, no value."""
    refused = [attrs["refused"] for attrs in known.values() if "refused" in attrs]
    stats = [attrs["stats"] for attrs in known.values() if "stats" in attrs]
    few = sum((s.get("n_trades") or 0) < goal.min_trades for s in stats)
    reasons = [f"{len(refused)} refused by the strategy (e.g. {refused[0]})"] if refused else []
    if few:
        reasons.append(f"{few} with fewer than --min-trades {goal.min_trades} trades")
    if len(stats) - few:
        reasons.append(f"{len(stats) - few} without a {goal.metric}")
    return f"none of the {len(known)} combinations run can be ranked: " + "; ".join(reasons)


@dataclass(frozen=True)
class _Goal:
    """What wins: a finite `metric` of at least `min_trades` trades."""

    metric: str
    min_trades: int

    @property
    def sign(self) -> float:
        """Sorts the best first."""
        return 1.0 if self.metric in LOWER_IS_BETTER else -1.0

    def met(self, attrs: dict[str, Any]) -> bool:
        stats = attrs.get("stats")
        if not isinstance(stats, dict) or stats.get(self.metric) is None:
            return False
        value = float(stats[self.metric])
        return math.isfinite(value) and (stats.get("n_trades") or 0) >= self.min_trades

    def value(self, attrs: dict[str, Any]) -> float:
        return float(attrs["stats"][self.metric])


@dataclass(frozen=True)
class _Plan:
    """How the budget is spent: the spread start, TPE until `explore_until` combinations
    have run, then the walk."""

    grid: dict[str, list[Any]]
    budget: int
    start: int
    explore_until: int
    batch: int  # a pool's start-up shared by a few trials per worker
    seed: int

    def next_round(
        self, known: dict[str, dict], held: int, stalled: bool, goal: _Goal
    ) -> list[Combination]:
        """The combinations to ask for next (`{}`: TPE's choice)."""
        left = self.budget - len(known)
        spread = _spread(self.grid, self.start, self.seed) if held < self.start else []
        if design := [combo for combo in spread if _key(combo) not in known]:
            return design[: min(self.batch, left)]
        if len(known) < self.explore_until and not stalled:
            return [{}] * min(self.batch, left, self.explore_until - len(known))
        return _walk(self.grid, known, goal)[:left] or _unrun(self.grid, known, left)


def _spread(grid: dict[str, list[Any]], count: int, seed: int) -> list[Combination]:
    """`count` combinations taking each axis's values evenly from its first to its last,
    in an order shuffled per axis by `seed`."""
    shuffle = random.Random(seed).shuffle
    columns = []
    for values in grid.values():
        column = [values[round(i * (len(values) - 1) / max(1, count - 1))] for i in range(count)]
        shuffle(column)
        columns.append(column)
    return [dict(zip(grid, row, strict=True)) for row in zip(*columns, strict=True)]


def _walk(grid: dict[str, list[Any]], known: dict[str, dict], goal: _Goal) -> list[Combination]:
    """The neighbours not yet run of the best combination that has any."""
    winners = [attrs for attrs in known.values() if goal.met(attrs)]
    for attrs in sorted(winners, key=lambda attrs: goal.sign * goal.value(attrs)):
        fresh = [c for c in _neighbours(grid, attrs["params"]) if _key(c) not in known]
        if fresh:
            return _distinct(fresh)
    return []


def _neighbours(grid: dict[str, list[Any]], combo: Combination) -> list[Combination]:
    """One step either way along each axis, and each axis's two ends."""
    found = []
    for name, values in grid.items():
        at = values.index(combo[name])
        for index in dict.fromkeys((at - 1, at + 1, 0, len(values) - 1)):
            if 0 <= index < len(values) and index != at:
                found.append({**combo, name: values[index]})
    return found


def _unrun(grid: dict[str, list[Any]], known: dict[str, dict], count: int) -> list[Combination]:
    """The first `count` combinations not yet run, in the grid's order (the walk has none
    left only when every winner's neighbourhood has been run)."""
    combos = (dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values()))
    return list(itertools.islice((c for c in combos if _key(c) not in known), count))


def _ask(study, grid: dict[str, list[Any]], combos: list[Combination]) -> list[tuple]:
    """A trial for each combination (`{}`: TPE's choice), with the grid's values it holds."""
    for combo in combos:
        if combo:
            study.enqueue_trial(combo)
    asked = [study.ask() for _ in combos]
    return [(t, {name: _suggest(t, name, values) for name, values in grid.items()}) for t in asked]


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


def _known(study) -> dict[str, dict[str, Any]]:
    """The combinations the study has run, by key: what was recorded of each."""
    return {
        _key(t.user_attrs["params"]): t.user_attrs
        for t in study.trials
        if "params" in t.user_attrs and "again" not in t.user_attrs
    }


def _record(trial, params: Combination, stats: dict[str, Any] | str) -> dict[str, Any]:
    """Keep the grid's own values (a float axis snapped to them) and the run's statistics,
    or the strategy's refusal, on the trial."""
    attrs: dict[str, Any] = {"params": {k: _plain(v) for k, v in params.items()}}
    if isinstance(stats, str):
        attrs["refused"] = stats
    else:
        attrs["stats"] = {k: _plain(v) for k, v in stats.items()}
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return attrs


def _tell_round(study, asked: list[tuple], rows: list[tuple], known: dict, goal: _Goal) -> None:
    """Tell each trial asked its result, in the order asked: a new run's (recorded in
    `known`), or the known one of a combination asked again."""
    fresh = {_key(params): stats for params, stats in rows}
    for trial, combo in asked:
        key = _key(combo)
        if key in fresh:
            known[key] = _record(trial, combo, fresh.pop(key))
        else:
            trial.set_user_attr("again", True)
        _tell(study, trial, known[key], goal)


def _tell(study, trial, attrs: dict[str, Any], goal: _Goal) -> None:
    import optuna

    if goal.met(attrs):
        study.tell(trial, goal.value(attrs))
    else:  # refused, undefined or too few trades: never wins, TPE counts it with the worst
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def _key(params: Combination) -> str:
    return json.dumps({k: _plain(v) for k, v in params.items()}, sort_keys=True, default=str)


def _distinct(combos: list[Combination]) -> list[Combination]:
    """Each combination once (TPE may ask for the same one twice in a batch)."""
    return list({_key(c): c for c in combos}.values())


def _plain(value: Any) -> Any:
    """JSON-ready (the study's storage keeps user attributes as JSON)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
