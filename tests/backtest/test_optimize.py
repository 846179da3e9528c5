"""Parameter grids: parsing, parallel runs equal to single runs, ranking, skipping, Dask."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.cluster import ClusterError
from backtest.engine import BacktestConfig, run_backtest
from backtest.optimize import GridError, metric_direction, parse_grid, run_grid, table_heading
from backtest.strategy import StrategyError, get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parents[2]
SmaCross = get_strategy_from_file(ROOT / "backtest" / "strategies" / "sma_cross.py")
SPEC = get_symbol_spec("EURUSD")
CONFIG = BacktestConfig(spread_points=0)


@pytest.fixture(scope="module")
def bars():
    return generate_bars("EURUSD", "H1", 3000, seed=12)


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["fast=5:20:5"], {"fast": [5, 10, 15, 20]}),
        (["fast=5, 7,9", "slow=30:40:10"], {"fast": [5, 7, 9], "slow": [30, 40]}),
        (["fast=3:3:1"], {"fast": [3]}),
    ],
)
def test_parse_grid(specs, expected):
    assert parse_grid(SmaCross, specs) == expected


def test_float_ranges_have_no_drift():
    RsiReversion = get_strategy_from_file(ROOT / "backtest" / "strategies" / "rsi_reversion.py")
    assert parse_grid(RsiReversion, ["sl_atr=0.1:0.5:0.1"])["sl_atr"] == [0.1, 0.2, 0.3, 0.4, 0.5]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
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
    ],
)
def test_bad_grids_name_the_spec(specs, message):
    with pytest.raises(GridError, match=message.replace("(", r"\(")):
        parse_grid(SmaCross, specs)


def test_grid_equals_single_runs_sorted_by_metric(bars):
    grid = {"fast": [5, 10, 40], "slow": [20, 30]}
    table = run_grid(
        bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="sharpe", workers=1, progress=False
    )
    assert len(table) == 4 and table.attrs["skipped"] == 2  # fast=40 is not below slow
    sharpe = table["sharpe"].tolist()
    assert sharpe == sorted(sharpe, reverse=True)
    for row in table.itertuples():
        single = run_backtest(
            bars, SmaCross(fast=row.fast, slow=row.slow), spec=SPEC, config=CONFIG
        ).stats
        assert row.sharpe == pytest.approx(single["sharpe"])
        assert row.n_trades == single["n_trades"]


def test_two_workers_give_the_same_table_as_one(bars):
    grid = {"fast": [3, 5, 8, 13], "slow": [21, 34, 55]}
    one = run_grid(
        bars,
        SmaCross,
        grid,
        spec=SPEC,
        config=CONFIG,
        metric="total_return_pct",
        workers=1,
        progress=False,
    )
    two = run_grid(
        bars,
        SmaCross,
        grid,
        spec=SPEC,
        config=CONFIG,
        metric="total_return_pct",
        workers=2,
        progress=False,
    )
    pd.testing.assert_frame_equal(one, two)


def test_unknown_metric_lists_the_valid_ones(bars):
    with pytest.raises(GridError, match=r"metric 'sharp' is unknown; use one of: .*sharpe"):
        run_grid(
            bars, SmaCross, {"fast": [5]}, spec=SPEC, config=CONFIG, metric="sharp", progress=False
        )


def test_all_invalid_combinations_is_an_error(bars):
    with pytest.raises(GridError, match="none of the 1 combinations"):
        run_grid(
            bars,
            SmaCross,
            {"fast": [50], "slow": [20]},
            spec=SPEC,
            config=CONFIG,
            metric="sharpe",
            workers=1,
            progress=False,
        )


@pytest.mark.slow
def test_dask_cluster_gives_the_same_table(bars):
    from dask.distributed import LocalCluster

    grid = {"fast": [5, 10], "slow": [20, 30, 50]}
    local = run_grid(
        bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="sharpe", workers=1, progress=False
    )
    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = run_grid(
            bars,
            SmaCross,
            grid,
            spec=SPEC,
            config=CONFIG,
            metric="sharpe",
            cluster=cluster.scheduler_address,
            progress=False,
        )
    pd.testing.assert_frame_equal(local, remote)


@pytest.mark.slow
def test_unreachable_cluster_is_a_clear_error(bars):
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        run_grid(
            bars,
            SmaCross,
            {"fast": [5], "slow": [20]},
            spec=SPEC,
            config=CONFIG,
            metric="sharpe",
            cluster="tcp://127.0.0.1:1",
            progress=False,
        )


def test_max_drawdown_days_ranks_lowest_first_and_others_highest(bars):
    grid = {"fast": [3, 5, 8, 13], "slow": [21, 34, 55]}
    for metric, lowest_first in (
        ("max_drawdown_days", True),
        ("max_drawdown_pct", False),
        ("profit_factor", False),
    ):
        assert metric_direction(metric) == ("lowest" if lowest_first else "highest")
        table = run_grid(
            bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric=metric, workers=1, progress=False
        )
        values = table[metric].dropna().tolist()
        assert len(set(values)) > 3, metric  # the order is not trivial
        assert values == sorted(values, reverse=not lowest_first), metric
        assert table.columns[2] == metric


@pytest.mark.parametrize(
    ("metric", "what"),
    [
        ("start", "is not a number to rank by"),
        ("end", "is not a number to rank by"),
        ("drawdown", "is unknown"),
    ],
)
def test_a_metric_that_cannot_rank_is_refused_naming_the_valid_ones(metric, what, bars):
    with pytest.raises(GridError) as info:
        run_grid(
            bars, SmaCross, {"fast": [5]}, spec=SPEC, config=CONFIG, metric=metric, progress=False
        )
    message = str(info.value)
    assert message.startswith(f"metric {metric!r} {what}; use one of: ")
    valid = message.split("use one of: ")[1].split(", ")
    assert "sharpe" in valid and "max_drawdown_days" in valid
    assert "start" not in valid and "end" not in valid


def test_a_parameter_both_fixed_and_searched_is_refused(bars):
    with pytest.raises(GridError, match="'slow' is given both as --param slow=30 and as --grid"):
        run_grid(
            bars,
            SmaCross,
            {"slow": [20, 40]},
            spec=SPEC,
            config=CONFIG,
            metric="sharpe",
            fixed_params={"slow": 30},
            progress=False,
        )


FAULTY_GRID = """
from backtest.indicators import sma
from backtest.strategy import Strategy

class Picky(Strategy):
    fast: int = 5
    slow: int = 20

    def validate(self):
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        if self.fast == 7:
            raise TypeError("a bug for fast=7")

    def signals(self, bars):
        return (sma(bars["close"], self.fast) > sma(bars["close"], self.slow)).astype(int)
"""


@pytest.fixture
def picky(tmp_path):
    path = tmp_path / "picky.py"
    path.write_text(FAULTY_GRID)
    return get_strategy_from_file(path), path


def test_invalid_combinations_are_skipped_and_counted(picky, bars):
    cls, _ = picky
    table = run_grid(
        bars,
        cls,
        {"fast": [5, 10, 30], "slow": [20, 40]},
        spec=SPEC,
        config=CONFIG,
        metric="sharpe",
        workers=1,
        progress=False,
    )
    assert sorted(zip(table["fast"], table["slow"], strict=True)) == [
        (5, 20),
        (5, 40),
        (10, 20),
        (10, 40),
        (30, 40),
    ]
    assert (table.attrs["skipped"], table.attrs["combinations"]) == (1, 6)
    assert table_heading(table, len(bars), "sharpe") == (
        "6 combinations on 3000 bars (1 rejected by the strategy, 5 ranked), best by sharpe "
        "(highest first):"
    )


def test_heading_without_refusals():
    table = pd.DataFrame({"fast": [5, 10], "max_drawdown_days": [1.0, 2.0]})
    table.attrs.update(skipped=0, combinations=2)
    assert table_heading(table, 500, "max_drawdown_days") == (
        "2 combinations on 500 bars, best by max_drawdown_days (lowest first):"
    )


def test_any_other_strategy_fault_stops_the_grid_naming_the_combination(picky, bars):
    cls, path = picky
    with pytest.raises(StrategyError) as info:
        run_grid(
            bars,
            cls,
            {"fast": [5, 7], "slow": [20]},
            spec=SPEC,
            config=CONFIG,
            metric="sharpe",
            workers=1,
            progress=False,
        )
    assert not isinstance(info.value, GridError)
    assert str(info.value) == (
        f"Picky ({path}): validate() raised TypeError: a bug for fast=7 "
        "(parameters fast=7, slow=20)"
    )


def test_worker_processes_rebuild_the_class_without_its_file(tmp_path, bars):
    copy = tmp_path / "sma_copy.py"
    copy.write_text((ROOT / "backtest" / "strategies" / "sma_cross.py").read_text())
    cls = get_strategy_from_file(copy)
    copy.unlink()  # workers get the file's text, not its path
    grid = {"fast": [3, 5, 8], "slow": [21, 34]}
    two = run_grid(
        bars, cls, grid, spec=SPEC, config=CONFIG, metric="sharpe", workers=2, progress=False
    )
    one = run_grid(
        bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="sharpe", workers=1, progress=False
    )
    pd.testing.assert_frame_equal(one, two)


def test_a_preset_ranks_the_grid_by_pass_rate(bars):
    """Each row's pass rate is the bootstrap probability of that combination's own run
    (the same seed gives the same number), its verdict the single run's; best first."""
    from backtest.broker_clock import UTC_ZONE
    from backtest.challenge import evaluate
    from backtest.challenge_mc import pass_probability
    from backtest.optimize import Challenge
    from backtest.prop_rules import load_preset

    preset = load_preset("static_5_10")
    grid = {"fast": [5, 10], "slow": [20, 40]}
    table = run_grid(
        bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="pass_rate", workers=1,
        progress=False, challenge=Challenge(preset, mc_paths=200, mc_seed=4),
    )  # fmt: skip
    assert list(table["pass_rate"]) == sorted(table["pass_rate"], reverse=True)
    for row in table.itertuples():
        result = run_backtest(
            bars, SmaCross(fast=row.fast, slow=row.slow), spec=SPEC, config=CONFIG
        )
        odds = pass_probability(
            preset, result, bars, SPEC, cash=CONFIG.cash, broker_zone=UTC_ZONE, paths=200, seed=4
        )
        verdict = evaluate(preset, result, bars, SPEC, cash=CONFIG.cash, broker_zone=UTC_ZONE)
        assert row.pass_rate == odds.probability and row.challenge == verdict.outcome
    with pytest.raises(GridError, match="needs a preset"):
        run_grid(bars, SmaCross, grid, spec=SPEC, config=CONFIG, metric="pass_rate", workers=1)


@pytest.mark.slow
def test_a_strategy_reading_other_symbols_gets_their_bars_on_every_path(tmp_path, capsys):
    """The grid (this machine's workers and a Dask cluster), the Optuna search and
    walk-forward hand the other symbols' bars to every combination: each row equals a
    plain backtest given the same bars, and the command line finds them beside the data."""
    from dask.distributed import LocalCluster

    from backtest.cli import main
    from backtest.data import save_csv
    from backtest.search import run_search
    from backtest.walkforward import run_walkforward

    basket = get_strategy_from_file(ROOT / "backtest" / "strategies" / "usd_basket_sma.py")
    own = generate_bars("EURUSD", "H1", 2000, seed=1)
    others = {"GBPUSD": generate_bars("GBPUSD", "H1", 2000, seed=2),
              "USDJPY": generate_bars("USDJPY", "H1", 2000, seed=3)}  # fmt: skip
    grid = {"fast": [5, 10], "lookback": [12, 48]}
    options = {"spec": SPEC, "config": CONFIG, "metric": "sharpe", "other_bars": others}
    table = run_grid(own, basket, grid, workers=2, progress=False, **options)
    for row in table.itertuples():
        alone = run_backtest(own, basket(fast=row.fast, lookback=row.lookback), spec=SPEC,
                             config=CONFIG, other_bars=others)  # fmt: skip
        assert row.sharpe == pytest.approx(alone.stats["sharpe"], nan_ok=True)
    assert table["sharpe"].nunique() == 4  # the basket's lookback matters: the bars arrived
    found = run_search(own, basket, grid, trials=4, workers=1, **options)
    pd.testing.assert_frame_equal(found[table.columns], table, check_like=True)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as cluster:  # fmt: skip
        remote = run_grid(own, basket, grid, cluster=cluster.scheduler_address, **options)
    pd.testing.assert_frame_equal(remote, table)
    windows = run_walkforward(own, basket, grid, train=1000, test=500, progress=False, **options)
    assert len(windows.windows) == 2 and len(windows.oos_trades) > 0

    for symbol, frame in {"EURUSD": own, **others}.items():
        save_csv(frame, tmp_path / f"{symbol}_H1.csv")
    args = ["optimize", "--strategy", str(ROOT / "backtest" / "strategies" / "usd_basket_sma.py"),
            "--data", str(tmp_path / "EURUSD_H1.csv"), "--spread", "0", "--grid", "fast=5,10",
            "--grid", "lookback=12,48", "--no-progress", "--workers", "1", "--csv",
            str(tmp_path / "table.csv")]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    written = pd.read_csv(tmp_path / "table.csv")
    assert written["sharpe"].to_list() == pytest.approx(table["sharpe"].to_list())
