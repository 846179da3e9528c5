"""The Dask path: the strategy travels as its file's text, so workers need no copy of the file,
and the backtest package travels as a zip to workers in other processes."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from backtest.cluster import package_zip
from backtest.engine import BacktestConfig
from backtest.optimize import run_grid
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parents[2]
SPEC = get_symbol_spec("EURUSD")
CONFIG = BacktestConfig(spread_points=0)
GRID = {"fast": [5, 10], "slow": [20, 40]}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bars():
    return generate_bars("EURUSD", "H1", 2000, seed=21)


@pytest.fixture
def deleted_strategy(tmp_path):
    """SmaCross loaded from a copy that no longer exists when the grid runs."""
    copy = tmp_path / "sma_copy.py"
    copy.write_text((ROOT / "backtest" / "strategies" / "sma_cross.py").read_text())
    cls = get_strategy_from_file(copy)
    copy.unlink()
    return cls


def local_table(bars):
    shipped = get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")
    return run_grid(
        bars, shipped, GRID, spec=SPEC, config=CONFIG, metric="sharpe", workers=1, progress=False
    )


@pytest.mark.parametrize("processes", [False, True], ids=["in-process", "worker-process"])
def test_a_cluster_runs_a_strategy_whose_file_is_gone(processes, deleted_strategy, bars):
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=processes,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        remote = run_grid(
            bars,
            deleted_strategy,
            GRID,
            spec=SPEC,
            config=CONFIG,
            metric="sharpe",
            cluster=cluster.scheduler_address,
            progress=False,
        )
    pd.testing.assert_frame_equal(local_table(bars), remote)
    # this process's package is still the project's: the zip went to the workers only (the
    # scheduler of a LocalCluster runs here, and loading it there swapped our modules)
    import backtest

    assert [Path(p) for p in backtest.__path__] == [ROOT / "backtest"]
    assert importlib.util.find_spec("backtest.cli_portfolio").origin == str(
        ROOT / "backtest" / "cli_portfolio.py"
    )


def test_the_package_zip_holds_every_module(tmp_path):
    archive, digest = package_zip(tmp_path)
    names = set(zipfile.ZipFile(archive).namelist())
    assert {
        "backtest/__init__.py",
        "backtest/strategy.py",
        "backtest/optimize.py",
        "backtest/cluster.py",
        "backtest/strategies/sma_cross.py",
    } <= names
    assert archive.name == f"backtest-{digest}.zip"
    again = tmp_path / "again"
    again.mkdir()
    assert package_zip(again)[1] == digest  # the name depends on the content only


def test_an_optuna_search_on_a_cluster_equals_the_one_on_this_machine(bars):
    """The search sends its batches where the grid sends its combinations: on a Dask
    scheduler it asks the same trials, seeded, and gets the same results."""
    from dask.distributed import LocalCluster

    from backtest.walkforward import Search

    shipped = get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")
    grid = {"fast": [3, 5, 8, 10, 12], "slow": [20, 30, 40, 50]}
    options = {"spec": SPEC, "config": CONFIG, "metric": "sharpe"}
    here = Search(trials=8, seed=3).run(bars, shipped, grid, workers=1, **options)
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
        host="127.0.0.1", dashboard_address=None,
    ) as cluster:  # fmt: skip
        remote = Search(trials=8, seed=3).run(
            bars, shipped, grid, cluster=cluster.scheduler_address, **options
        )
        ran_there = cluster.scheduler.transition_counter
    assert ran_there > 0, "the trials must run on the cluster"
    assert 0 < len(here) <= 8  # a combination TPE asks twice is run once
    pd.testing.assert_frame_equal(here, remote)
