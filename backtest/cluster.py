"""Running an optimisation grid on an existing Dask distributed cluster (an optional extra:
`pip install "dask[distributed]"`).

Workers need only the requirements installed, not this project: the client uploads the
`backtest` package to them as a zip (a Dask UploadFile worker plugin), and the strategy
travels as the text of its file, not as a path that exists only on the client. The bars are
sent once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from backtest.errors import BacktestError
from backtest.grid_job import evaluate_params, strategy_class
from backtest.strategy import StrategyError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
PACKAGE_DIR = Path(__file__).resolve().parent
# (scheduler address, package digest) already shipped by this process: walk-forward runs one
# grid per window and need not upload the same package each time
_UPLOADED: set[tuple[str, str]] = set()


class ClusterError(BacktestError):
    """The cluster cannot be used: missing extra, unreachable scheduler, failed task."""


def _remote_evaluate(bars: pd.DataFrame, job: Any, params: dict[str, Any]) -> tuple:
    return params, evaluate_params(bars, strategy_class(job.strategy_ref), params, job)


def run_on_cluster(
    address: str,
    bars: pd.DataFrame,
    job: Any,
    combos: list[dict[str, Any]],
    *,
    progress: bool = True,
) -> list[tuple]:
    """Evaluate `combos` on the scheduler at `address` (e.g. tcp://10.0.0.5:8786)."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ClusterError(
            '--cluster needs the Dask extra: pip install "dask[distributed]"'
        ) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        ship_package(client, address)
        return _gather(client, address, bars, job, combos, progress)
    finally:
        client.close()


def _gather(
    client: Any,
    address: str,
    bars: pd.DataFrame,
    job: Any,
    combos: list[dict[str, Any]],
    progress: bool,
) -> list[tuple]:
    from dask.distributed import as_completed

    remote_bars = client.scatter(bars, broadcast=True)
    remote_job = client.scatter(job, broadcast=True)  # once: it may hold other symbols' bars
    futures = [
        client.submit(_remote_evaluate, remote_bars, remote_job, params, pure=False)
        for params in combos
    ]
    done = as_completed(futures)
    if progress:
        from tqdm import tqdm

        done = tqdm(done, total=len(futures), desc=f"backtests on {address}", unit="run")
    try:
        return [future.result() for future in done]
    except StrategyError:
        raise
    except Exception as exc:  # a worker's failure arrives re-raised here
        raise ClusterError(f"a task failed on the cluster: {type(exc).__name__}: {exc}") from exc


def ship_package(client: Any, address: str) -> None:
    """Upload the backtest package to every worker (and to workers that join later).

    Skipped for workers running inside this very process (an in-process LocalCluster): they
    already import it, and re-importing it from a zip would swap this process's modules.
    """
    files = _package_files()
    digest = _package_digest(files)
    if (address, digest) in _UPLOADED:  # walk-forward: one grid per window, one upload
        return
    pids = client.run(os.getpid)
    if pids and all(pid == os.getpid() for pid in pids.values()):
        return
    with tempfile.TemporaryDirectory(prefix="backtest-upload-") as folder:
        archive = _write_zip(Path(folder), files, digest)
        try:
            _upload_to_workers(client, archive)
        except Exception as exc:  # the worker's import error arrives re-raised here
            raise ClusterError(
                f"could not install the backtest package on the workers at "
                f"{address}: {type(exc).__name__}: {exc}"
            ) from exc
    _UPLOADED.add((address, digest))


def _upload_to_workers(client: Any, archive: Path) -> None:
    """The zip to the workers only (and to those that join later). Not Client.upload_file:
    it also loads the zip into the scheduler, which for a LocalCluster runs in this process
    and would swap this process's backtest modules for the zip's, deleted after the run."""
    from distributed.diagnostics.plugin import UploadFile

    client.register_plugin(UploadFile(str(archive)), name=f"backtest-package-{archive.stem}")


def package_zip(folder: Path) -> tuple[Path, str]:
    """backtest/*.py zipped into `folder`, named by a digest of its content.

    A new name for new content matters: a worker keeps a zip on its import path open, and
    overwriting it in place would break its imports.
    """
    files = _package_files()
    digest = _package_digest(files)
    return _write_zip(folder, files, digest), digest


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _package_digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _write_zip(folder: Path, files: list[Path], digest: str) -> Path:
    archive = folder / f"backtest-{digest}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in files:
            bundle.write(path, Path("backtest") / path.relative_to(PACKAGE_DIR))
    return archive
