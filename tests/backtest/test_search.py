"""The Optuna search: on the grid's space it finds the grid's best in a tenth of its runs,
never runs a combination twice nor more than its budget, starts across each axis and ends
walking from its best, is seeded, resumes a study kept in SQLite, prunes refused
combinations and those with too few trades, and walk-forward and the command line use it."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.cli import main
from backtest.engine import BacktestConfig
from backtest.optimize import GridError, parse_grid, prepare_job, run_grid
from backtest.search import REFINE_SHARE, START_SHARE, run_search, study_name
from backtest.sizing import Sizing
from backtest.strategies.sma_cross import SmaCross
from backtest.strategy import get_strategy_from_file
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars

SMA = Path(__file__).resolve().parents[2] / "backtest" / "strategies" / "sma_cross.py"
SPEC = get_symbol_spec("EURUSD")
RUNS: list[tuple[int, int]] = []


class CountedSma(SmaCross):
    """SmaCross noting each combination it runs with (one worker: in this process)."""

    def signals(self, bars):
        RUNS.append((self.fast, self.slow))
        return super().signals(bars)


@pytest.fixture(scope="module")
def case():
    cls = get_strategy_from_file(SMA)
    grid = parse_grid(cls, ["fast=2:40:2", "slow=10:200:10"])  # fast >= slow refused
    return generate_bars("EURUSD", "H1", 6_000, seed=3), cls, grid


def name_of(case) -> str:
    """The study name of `search(case)` with its default settings."""
    bars, cls, grid = case
    return study_name(
        cls, grid, "sharpe", *prepare_job(bars, cls, SPEC, BacktestConfig(), None, None)
    )


def search(case, **options):
    bars, cls, grid = case
    settings = {"spec": SPEC, "config": BacktestConfig(), "metric": "sharpe", "trials": 36,
                "seed": 1, "workers": 1, **options}  # fmt: skip
    return run_search(bars, cls, grid, **settings)


def test_a_tenth_of_the_grid_comes_within_ten_percent_of_its_best(case):
    bars, cls, grid = case
    full = run_grid(bars, cls, grid, spec=SPEC, config=BacktestConfig(), metric="sharpe",
                    workers=1, progress=False)  # fmt: skip
    found = search(case)
    assert found.attrs["trials"] == 36 and len(full) > 300
    assert found["sharpe"].iloc[0] >= 0.9 * full["sharpe"].iloc[0]
    assert (found["fast"] < found["slow"]).all()  # refused combinations never appear


def test_no_combination_runs_twice_and_the_budget_is_never_exceeded():
    bars = generate_bars("EURUSD", "H1", 3_000, seed=5)
    grid = parse_grid(CountedSma, ["fast=5:20:5", "slow=30:60:10"])  # 16, all valid
    options = {"spec": SPEC, "config": BacktestConfig(), "metric": "sharpe", "workers": 1}
    RUNS.clear()
    found = run_search(bars, CountedSma, grid, trials=12, **options)
    assert len(RUNS) == 12 == len(set(RUNS)) == found.attrs["trials"] == len(found)
    RUNS.clear()  # more trials than combinations: each of them once, the grid's own table
    whole = run_search(bars, CountedSma, grid, trials=40, seed=3, **options)
    assert len(RUNS) == 16 == len(set(RUNS)) == whole.attrs["trials"]
    full = run_grid(bars, CountedSma, grid, progress=False, **options)
    assert whole[["fast", "slow", "sharpe"]].equals(full[["fast", "slow", "sharpe"]])


def test_it_starts_across_each_axis_and_ends_walking_from_its_best(case, tmp_path):
    import optuna

    db = tmp_path / "study.db"
    search(case, study_path=db)
    grid = case[2]
    name = name_of(case)
    trials = optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials
    run = [t.user_attrs["params"] for t in trials if "again" not in t.user_attrs]
    assert len(run) == 36
    start, walk = round(START_SHARE * 36), round(REFINE_SHARE * 36)
    assert start >= 4 and walk >= 8
    for axis, values in grid.items():  # the start tries both ends of every axis
        assert {values[0], values[-1]} <= {combo[axis] for combo in run[:start]}

    def one_move(a, b):  # a step along one axis, or to its end
        moved = [axis for axis in grid if a[axis] != b[axis]]
        if len(moved) != 1:
            return False
        values, axis = grid[moved[0]], moved[0]
        at, to = values.index(a[axis]), values.index(b[axis])
        return abs(at - to) == 1 or to in (0, len(values) - 1)

    for i in range(len(run) - walk, len(run)):
        assert any(one_move(before, run[i]) for before in run[:i]), run[i]


def test_it_is_seeded(case):
    once, again, other = search(case), search(case), search(case, seed=2)
    assert once.equals(again)
    assert not once[["fast", "slow"]].equals(other[["fast", "slow"]])


def test_a_study_in_sqlite_is_resumed(case, tmp_path):
    import optuna

    db = tmp_path / "study.db"
    first = search(case, trials=10, study_path=db)
    assert first.attrs["trials"] == 10
    bars, cls, grid = case
    name = name_of(case)
    before = [
        t.params for t in optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials
    ]
    resumed = search(case, trials=15, study_path=db)
    after = optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials
    assert resumed.attrs["trials"] == 15 and [t.params for t in after[: len(before)]] == before
    other_metric = search(case, trials=5, study_path=db, metric="total_return_pct")
    assert other_metric.attrs["trials"] == 5  # another request: another study in the file
    assert search(case, trials=4, study_path=db, min_trades=50).attrs["trials"] == 4
    # what a trial's result depends on makes another study: costs, sizing, the prices
    for settings in (BacktestConfig(commission_per_lot=7.0), BacktestConfig(sizing=Sizing(lots=2))):
        assert search(case, trials=4, study_path=db, config=settings).attrs["trials"] == 4
    mirrored = bars.assign(**{c: 2 * bars[c].mean() - bars[c] for c in ("open", "close")},
                           high=2 * bars["high"].mean() - bars["low"],
                           low=2 * bars["high"].mean() - bars["high"])  # fmt: skip
    mirrored_case = (mirrored, cls, grid)
    assert search(mirrored_case, trials=4, study_path=db).attrs["trials"] == 4
    assert search(case, trials=15, study_path=db).attrs["trials"] == 15  # still itself


def test_a_resumed_study_runs_no_combination_again(tmp_path):
    bars = generate_bars("EURUSD", "H1", 3_000, seed=5)
    grid = parse_grid(CountedSma, ["fast=5:20:5", "slow=30:80:10"])
    options = {"spec": SPEC, "config": BacktestConfig(), "metric": "sharpe", "workers": 1,
               "study_path": tmp_path / "study.db"}  # fmt: skip
    RUNS.clear()
    run_search(bars, CountedSma, grid, trials=6, **options)
    resumed = run_search(bars, CountedSma, grid, trials=14, **options)
    assert len(RUNS) == 14 == len(set(RUNS)) == resumed.attrs["trials"]


def test_too_few_trades_never_win_and_nothing_left_is_an_error(case):
    found = search(case, min_trades=150)
    assert (found["n_trades"] >= 150).all()
    with pytest.raises(GridError) as info:
        search(case, min_trades=10**6)
    said = str(info.value)  # what happened to each of them
    assert said.startswith("none of the 36 combinations run can be ranked: ")
    assert "refused by the strategy (e.g. SmaCross" in said and "need 1 <= fast < slow" in said
    assert "with fewer than --min-trades 1000000 trades" in said
    with pytest.raises(GridError, match="--trials must be at least 1"):
        search(case, trials=0)


def test_a_study_file_is_made_where_asked_or_refused_in_one_line(case, tmp_path):
    made = tmp_path / "new" / "folder" / "study.db"
    assert search(case, trials=4, study_path=made).attrs["trials"] == 4 and made.is_file()
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("these are my notes, not a database\n" * 100)
    for bad in (not_sqlite, tmp_path):  # a file of something else, a folder
        with pytest.raises(GridError, match=f"--study {bad}: cannot keep an Optuna study there"):
            search(case, trials=4, study_path=bad)
    assert not_sqlite.read_text().startswith("these are my notes")  # left as it was


def test_the_command_line_and_walk_forward_use_it(tmp_path, capsys):
    args = ["--strategy", str(SMA), "--synthetic", "3000", "--grid", "fast=5:20:5",
            "--grid", "slow=30:90:10", "--no-progress", "--workers", "1"]  # fmt: skip
    assert main(["optimize", *args, "--search", "optuna", "--trials", "8"]) == 0
    assert "combinations on 3000 bars, best by sharpe" in capsys.readouterr().out
    out = tmp_path / "wf.json"
    assert main(["walkforward", *args, "--train", "1500", "--test", "500", "--search",
                 "optuna", "--trials", "6", "--json", str(out)]) == 0  # fmt: skip
    assert out.is_file()
    capsys.readouterr()
    for trials in ("8", "0"):  # any --trials, 0 too, is a mistake without --search optuna
        assert main(["optimize", *args, "--trials", trials]) == 2
        assert "--trials needs --search optuna" in capsys.readouterr().err
