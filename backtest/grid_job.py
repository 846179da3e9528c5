"""What a grid runs for one combination, wherever it runs (a worker process of this machine,
a node of a Dask cluster): the job (how to find the strategy class, the symbol, the
settings, the fixed parameters, an account-rules preset, the bars of other symbols the
strategy reads) and the evaluation of one parameter set. `backtest.optimize` and
`backtest.cluster` both use it; neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from backtest.engine import BacktestConfig, run_backtest
from backtest.prop_rules import Preset
from backtest.strategy import (
    InvalidParameters,
    Strategy,
    StrategyError,
    create_strategy,
    load_strategy_code,
)
from backtest.symbols import SymbolSpec

PASS_RATE = "pass_rate"  # the metric a Challenge adds: 1/0 by the verdict, or the MC share
CHALLENGE_STATS = (PASS_RATE, "challenge")


@dataclass(frozen=True)
class Challenge:
    """A preset judged on every combination: `mc_paths` 0 gives pass_rate 1 or 0 from the
    run's verdict, more the seeded bootstrap's pass probability."""

    preset: Preset
    mc_paths: int = 0
    mc_seed: int = 0


# How a worker finds the strategy class: (file text, file name, class name) for classes
# loaded from a file, so workers need neither the file nor the client's paths; the class
# itself (pickled by reference) for classes defined in importable modules.
StrategyRef = tuple[str, str, str] | type[Strategy]


@dataclass(frozen=True)
class GridJob:
    """What a worker needs besides the bars: how to find the class and run it."""

    strategy_ref: StrategyRef
    spec: SymbolSpec
    config: BacktestConfig
    fixed: dict[str, Any]
    challenge: Challenge | None = None
    other_bars: Mapping[str, pd.DataFrame] | None = None  # by symbol, for `informative`


def strategy_class(ref: StrategyRef) -> type[Strategy]:
    return load_strategy_code(*ref) if isinstance(ref, tuple) else ref


def evaluate_params(
    bars: pd.DataFrame, cls: type[Strategy], params: dict[str, Any], job: GridJob
) -> dict[str, Any] | str:
    """The stats of one combination, or the strategy's reason for refusing it (a str).

    Any other failure of the strategy's code stops the grid with a StrategyError that
    names the combination.
    """
    values = {**job.fixed, **params}
    try:
        strategy = create_strategy(cls, values)
        result = run_backtest(
            bars, strategy, spec=job.spec, config=job.config, other_bars=job.other_bars
        )
        if job.challenge is None:
            return result.stats
        return {**result.stats, **_challenge_stats(job, result, bars)}
    except InvalidParameters as exc:
        return str(exc)  # e.g. fast >= slow: not a valid combination, just skipped
    except StrategyError as exc:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        raise StrategyError(f"{exc} (parameters {shown})") from None


def _challenge_stats(job: GridJob, result: Any, bars: pd.DataFrame) -> dict[str, Any]:
    """The verdict of the job's preset on one run, and its pass rate."""
    from backtest.challenge import evaluate
    from backtest.challenge_mc import pass_probability

    challenge, config = job.challenge, job.config
    zone = config.rules.zone
    report = evaluate(challenge.preset, result, bars, job.spec, cash=config.cash, broker_zone=zone)
    rate = float(report.outcome == "passed")
    if challenge.mc_paths:
        rate = pass_probability(
            challenge.preset, result, bars, job.spec, cash=config.cash, broker_zone=zone,
            paths=challenge.mc_paths, seed=challenge.mc_seed,
        ).probability  # fmt: skip
    return {PASS_RATE: rate, "challenge": report.outcome}
