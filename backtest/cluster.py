"""Running an optimisation grid on an existing Dask distributed cluster (an optional extra:
`pip install "dask[distributed]"`). The bars are sent to the workers once."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from backtest.strategy import StrategyError, get_strategy_from_file

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5


class ClusterError(StrategyError):
    """The cluster cannot be used: missing extra, unreachable scheduler, failed task."""


def _remote_evaluate(bars: pd.DataFrame, job: Any, params: dict[str, Any]) -> tuple:
    from backtest.optimize import evaluate_params

    ref = job.strategy_ref
    cls = get_strategy_from_file(ref) if isinstance(ref, str) else ref
    return params, evaluate_params(bars, cls, params, job)


def run_on_cluster(address: str, bars: pd.DataFrame, job: Any, combos: list[dict[str, Any]],
                   *, progress: bool = True) -> list[tuple]:
    """Evaluate `combos` on the scheduler at `address` (e.g. tcp://10.0.0.5:8786)."""
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ClusterError('--cluster needs the Dask extra: pip install "dask[distributed]"'
                           ) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        remote_bars = client.scatter(bars, broadcast=True)
        futures = [client.submit(_remote_evaluate, remote_bars, job, params, pure=False)
                   for params in combos]
        done = as_completed(futures)
        if progress:
            from tqdm import tqdm

            done = tqdm(done, total=len(futures), desc=f"backtests on {address}", unit="run")
        try:
            return [future.result() for future in done]
        except StrategyError:
            raise
        except Exception as exc:  # a worker's failure arrives re-raised here
            raise ClusterError(f"a task failed on the cluster: {exc}") from exc
    finally:
        client.close()
