"""Parameter grids: parsing, parallel runs equal to single runs, ranking, skipping, Dask."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.cluster import ClusterError
from backtest.engine import BacktestConfig, run_backtest
from backtest.optimize import GridError, parse_grid, run_grid
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parents[2]
SmaCross = get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")
SPEC = get_symbol_spec("EURUSD")
CONFIG = BacktestConfig(spread_points=0)


@pytest.fixture(scope="module")
def bars():
    return generate_bars("EURUSD", "H1", 3000, seed=12)


@pytest.mark.parametrize(("specs", "expected"), [
    (["fast=5:20:5"], {"fast": [5, 10, 15, 20]}),
    (["fast=5, 7,9", "slow=30:40:10"], {"fast": [5, 7, 9], "slow": [30, 40]}),
    (["fast=3:3:1"], {"fast": [3]}),
])
def test_parse_grid(specs, expected):
    assert parse_grid(SmaCross, specs) == expected


def test_float_ranges_have_no_drift():
    RsiReversion = get_strategy_from_file(ROOT / "backtest" / "strategies" / "rsi_reversion.py")
    assert parse_grid(RsiReversion, ["sl_atr=0.1:0.5:0.1"])["sl_atr"] == [0.1, 0.2, 0.3, 0.4,
                                                                          0.5]


@pytest.mark.parametrize(("specs", "message"), [
    ([], "at least one --grid"),
    (["fsat=1:5:1"], "did you mean 'fast'"),
    (["fast"], "must look like name=start:stop:step"),
    (["fast=1:x:1"], "must be numbers"),
    (["fast=5:1:1"], "start 5 is above stop 1"),
    (["fast=1:5:0"], "step must be > 0"),
    (["fast=1:5:0.5"], "integer parameter"),
    (["fast=1:5:1", "fast=2,3"], "given twice"),
    (["fast=a,b"], "expects int"),
    (["fast=1:100000:1", "slow=1:100:1"], "the grid has 10,000,000 combinations"),
])
def test_bad_grids_name_the_spec(specs, message):
    with pytest.raises(GridError, match=message.replace("(", r"\(")):
        parse_grid(SmaCross, specs)


def test_grid_equals_single_runs_sorted_by_metric(bars):
    grid = {"fast": [5, 10, 40], "slow": [20, 30]}
    table = run_grid(bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="sharpe",
                     workers=1, progress=False)
    assert len(table) == 4 and table.attrs["skipped"] == 2  # fast=40 is not below slow
    sharpe = table["sharpe"].tolist()
    assert sharpe == sorted(sharpe, reverse=True)
    for row in table.itertuples():
        single = run_backtest(bars, SmaCross(fast=row.fast, slow=row.slow), spec=SPEC,
                              config=CONFIG).stats
        assert row.sharpe == pytest.approx(single["sharpe"])
        assert row.n_trades == single["n_trades"]


def test_two_workers_give_the_same_table_as_one(bars):
    grid = {"fast": [3, 5, 8, 13], "slow": [21, 34, 55]}
    one = run_grid(bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="total_return_pct",
                   workers=1, progress=False)
    two = run_grid(bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="total_return_pct",
                   workers=2, progress=False)
    pd.testing.assert_frame_equal(one, two)


def test_unknown_metric_lists_the_valid_ones(bars):
    with pytest.raises(GridError, match=r"metric 'sharp' is unknown; use one of: .*sharpe"):
        run_grid(bars, SmaCross, {"fast": [5]}, spec=SPEC, config=CONFIG, metric="sharp",
                 progress=False)


def test_all_invalid_combinations_is_an_error(bars):
    with pytest.raises(GridError, match="none of the 1 combinations"):
        run_grid(bars, SmaCross, {"fast": [50], "slow": [20]}, spec=SPEC, config=CONFIG,
                 metric="sharpe", workers=1, progress=False)


@pytest.mark.slow
def test_dask_cluster_gives_the_same_table(bars):
    from dask.distributed import LocalCluster

    grid = {"fast": [5, 10], "slow": [20, 30, 50]}
    local = run_grid(bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="sharpe",
                     workers=1, progress=False)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = run_grid(bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="sharpe",
                          cluster=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(local, remote)


@pytest.mark.slow
def test_unreachable_cluster_is_a_clear_error(bars):
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        run_grid(bars, SmaCross, {"fast": [5], "slow": [20]}, spec=SPEC, config=CONFIG,
                 metric="sharpe", cluster="tcp://127.0.0.1:1", progress=False)
