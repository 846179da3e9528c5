"""`python -m backtest`: the four commands end to end, and user errors (exit 2, one line)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from backtest.atomic import write_atomic
from backtest.cli import main
from backtest.data import load_csv, save_csv
from backtest.metrics import MONEY_STATS
from backtest.report import CHARTS_JS, LIBRARY, STYLE
from backtest.synthetic import generate_bars
from tests.backtest.conftest import PERIODS_STRATEGY

ROOT = Path(__file__).resolve().parents[2]
SMA = str(ROOT / "backtest" / "strategies" / "sma_cross.py")
RSI = str(ROOT / "backtest" / "strategies" / "rsi_reversion.py")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "EURUSD_H1.csv"
    save_csv(generate_bars("EURUSD", "H1", 3000, seed=8), path)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backtest", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_prints_stats_and_writes_the_json_schema(data_file, tmp_path):
    out = tmp_path / "result.json"
    result = run_cli(
        "run",
        "--strategy",
        SMA,
        "--data",
        str(data_file),
        "--param",
        "fast=10",
        "--param",
        "slow=30",
        "--spread",
        "0",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "SmaCross(fast=10,slow=30) on EURUSD" in result.stdout
    assert "Sharpe ratio (ann.)" in result.stdout
    document = json.loads(out.read_text())
    assert set(document["stats"]) >= {
        "total_return_pct",
        "sharpe",
        "max_drawdown_pct",
        "n_trades",
        "win_rate_pct",
        "profit_factor",
    }
    trade = document["trades"][0]
    assert set(trade) >= {
        "entry_time",
        "exit_time",
        "entry_price",
        "exit_price",
        "direction",
        "size",
        "pnl",
        "exit_reason",
    }
    assert trade["entry_time"].endswith("+00:00") and trade["size"] == pytest.approx(10_000)
    assert len(document["trades"]) == document["stats"]["n_trades"]


def test_optimize_prints_the_best_rows(data_file, capsys):
    code = main(
        [
            "optimize",
            "--strategy",
            SMA,
            "--data",
            str(data_file),
            "--grid",
            "fast=5:15:5",
            "--grid",
            "slow=20,40",
            "--metric",
            "total_return_pct",
            "--workers",
            "1",
            "--no-progress",
            "--top",
            "3",
        ]
    )
    output = capsys.readouterr().out
    assert code == 0
    assert "6 combinations on 3000 bars, best by total_return_pct" in output
    assert len(output.strip().splitlines()) == 1 + 1 + 3


def test_walkforward_prints_the_summary(data_file, capsys):
    code = main(
        [
            "walkforward",
            "--strategy",
            SMA,
            "--data",
            str(data_file),
            "--grid",
            "fast=5,10",
            "--grid",
            "slow=30",
            "--train",
            "1500",
            "--test",
            "500",
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    output = capsys.readouterr().out
    assert code == 0 and "walk-forward: 3 windows" in output and "out-of-sample" in output


LEAKY = """
import pandas as pd
from backtest.strategy import Strategy

class Leaky(Strategy):
    def signals(self, bars):
        return (bars["close"].shift(-3) > bars["close"]).astype(int)
"""


def test_lookahead_exit_codes(data_file, tmp_path):
    ok = run_cli("lookahead", "--strategy", SMA, "--data", str(data_file), "--checkpoints", "20")
    assert ok.returncode == 0 and ok.stdout.startswith("OK")
    leaky = tmp_path / "leaky.py"
    leaky.write_text(LEAKY)
    bad = run_cli("lookahead", "--strategy", str(leaky), "--data", str(data_file))
    assert bad.returncode == 1 and "LOOK-AHEAD" in bad.stdout


RAISES_ON_IMPORT = "raise RuntimeError('broken on purpose')\n"
RAISES_IN_SIGNALS = """
from backtest.strategy import Strategy

class Broken(Strategy):
    def signals(self, bars):
        raise ZeroDivisionError("bad maths")
"""


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing data", "data file not found"),
        ("missing strategy", "strategy file not found"),
        ("unknown param", "has no parameter 'fsat'; did you mean 'fast'?"),
        ("bad param value", "parameter 'fast' expects int, got 'ten'"),
        ("bad grid", "grid 'fast=5:1:1': start 5 is above stop 1"),
        ("import error", "importing .*raises.py failed: RuntimeError: broken on purpose"),
        (
            "signals error",
            r"Broken \(.*broken.py\): signals\(\) raised ZeroDivisionError: bad maths",
        ),
        ("bad csv row", "line 3: high 1.0 < max\\(open, close\\) 1.2"),
        ("bad sizing", "risk sizing needs a positive stop-loss distance"),
    ],
)
def test_user_errors_exit_2_with_one_line_and_no_output(case, message, data_file, tmp_path):
    out = tmp_path / "out.json"
    (tmp_path / "raises.py").write_text(RAISES_ON_IMPORT)
    (tmp_path / "broken.py").write_text(RAISES_IN_SIGNALS)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(
        "time,open,high,low,close\n2024-01-01 00:00,1,1.1,0.9,1\n2024-01-01 01:00,1,1.0,0.9,1.2\n"
    )
    base = ["run", "--strategy", SMA, "--data", str(data_file), "--json", str(out)]
    args = {
        "missing data": ["run", "--strategy", SMA, "--data", "nope.csv"],
        "missing strategy": ["run", "--strategy", "nope.py", "--data", str(data_file)],
        "unknown param": [*base, "--param", "fsat=3"],
        "bad param value": [*base, "--param", "fast=ten"],
        "bad grid": [
            "optimize",
            "--strategy",
            SMA,
            "--data",
            str(data_file),
            "--grid",
            "fast=5:1:1",
        ],
        "import error": [
            "run",
            "--strategy",
            str(tmp_path / "raises.py"),
            "--data",
            str(data_file),
        ],
        "signals error": [
            "run",
            "--strategy",
            str(tmp_path / "broken.py"),
            "--data",
            str(data_file),
            "--json",
            str(out),
        ],
        "bad csv row": ["run", "--strategy", SMA, "--data", str(bad_csv)],
        "bad sizing": [*base, "--risk", "1.0"],
    }[case]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr

    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()


# ---------------------------------------------------------------- strategy faults outside signals()

FAULT_HEAD = "import sys\nfrom backtest.strategy import Strategy\n\nclass Faulty(Strategy):\n"
FAULT_SIGNALS = (
    "    def signals(self, bars):\n"
    "        return (bars['close'] > bars['close'].shift()).astype(int)\n"
)
FAULTS = {
    "init": (
        "run",
        "    def __init__(self, **params):\n        super().__init__(**params)\n"
        "        raise KeyError('no such setting')\n",
        r"creating Faulty\(\) raised KeyError: 'no such setting'",
    ),
    "validate": (
        "run",
        "    def validate(self):\n        raise TypeError('unsupported')\n",
        r"validate\(\) raised TypeError: unsupported",
    ),
    "warmup raises": (
        "lookahead",
        "    @property\n    def warmup(self):\n        raise RuntimeError('warmup broke')\n",
        "warmup raised RuntimeError: warmup broke",
    ),
    "warmup not an int": (
        "walkforward",
        "    @property\n    def warmup(self):\n        return '30'\n",
        "warmup must be an integer >= 0, got '30'",
    ),
    "label": (
        "run",
        "    def label(self):\n        return None\n",
        r"label\(\) must return a str, got NoneType",
    ),
    "annotation": (
        "run",
        "    fast: 'Undefined' = 3\n",
        "reading its parameter annotations raised NameError",
    ),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_strategy_faults_exit_2_naming_class_and_file(case, data_file, tmp_path):
    command, body, message = FAULTS[case]
    path = tmp_path / "faulty.py"
    path.write_text(FAULT_HEAD + body + FAULT_SIGNALS)
    extra = {
        "run": [],
        "lookahead": [],
        "walkforward": [
            "--grid",
            "fast=1,2",
            "--train",
            "1000",
            "--test",
            "1000",
            "--workers",
            "1",
            "--no-progress",
        ],
    }[command]
    if command == "walkforward":  # the grid needs a parameter to search
        path.write_text(FAULT_HEAD + "    fast: int = 1\n" + body + FAULT_SIGNALS)
    result = run_cli(command, "--strategy", str(path), "--data", str(data_file), *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: Faulty ({path}): "), lines[0]
    assert re.search(message, lines[0]), lines[0]


def test_sys_exit_at_import_is_an_error_line_not_the_exit_code(data_file, tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(7)\n")
    result = run_cli("run", "--strategy", str(path), "--data", str(data_file))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: importing {path} failed: SystemExit: 7"


def test_invalid_parameters_stop_a_run_but_a_grid_skips_them(data_file, tmp_path, capsys):
    path = tmp_path / "periods.py"
    path.write_text(PERIODS_STRATEGY)
    result = run_cli("run", "--strategy", str(path), "--data", str(data_file), "--param", "fast=30")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: Periods ({path}): fast (30) must be below slow (20)")
    code = main(
        [
            "optimize",
            "--strategy",
            str(path),
            "--data",
            str(data_file),
            "--grid",
            "fast=10:30:10",
            "--grid",
            "slow=20,40",
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    header = capsys.readouterr().out.splitlines()[0]
    assert code == 0
    # fast=20 and fast=30 with slow=20 are refused; the total matches the progress bar's
    assert header == (
        "6 combinations on 3000 bars (2 rejected by the strategy, 4 ranked), "
        "best by sharpe (highest first):"
    )


@pytest.mark.parametrize("command", ["optimize", "walkforward"])
def test_a_parameter_both_fixed_and_searched_is_refused(command, data_file, capsys):
    windows = ["--train", "1000", "--test", "1000"] if command == "walkforward" else []
    code = main(
        [
            command,
            "--strategy",
            SMA,
            "--data",
            str(data_file),
            "--param",
            "fast=5",
            "--grid",
            "fast=3,4",
            "--grid",
            "slow=30",
            *windows,
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.strip() == (
        "error: parameter 'fast' is given both as --param fast=5 "
        "and as --grid fast=...; keep one of them"
    )


@pytest.mark.parametrize(
    ("metric", "direction"), [("max_drawdown_days", "lowest"), ("profit_factor", "highest")]
)
def test_optimize_header_names_the_direction(metric, direction, data_file, capsys):
    code = main(
        [
            "optimize",
            "--strategy",
            SMA,
            "--data",
            str(data_file),
            "--grid",
            "fast=5,10",
            "--grid",
            "slow=30",
            "--metric",
            metric,
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"2 combinations on 3000 bars, best by {metric} ({direction} first):"
    )


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("start", "metric 'start' is not a number to rank by; use one of: duration_days,"),
        ("sharp", "metric 'sharp' is unknown; use one of: duration_days,"),
    ],
)
def test_optimize_refuses_a_metric_it_cannot_rank_by(metric, message, data_file, capsys):
    code = main(
        [
            "optimize",
            "--strategy",
            SMA,
            "--data",
            str(data_file),
            "--grid",
            "fast=5",
            "--metric",
            metric,
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {message}")
    assert "max_drawdown_days" in err and "'end'" not in err and " end," not in err


# ---------------------------------------------------------------- data, timeframe, lookahead


@pytest.fixture(scope="module")
def m15_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "EURUSD_M15.csv"
    save_csv(generate_bars("EURUSD", "M15", 400, seed=3), path)
    return path


@pytest.mark.parametrize(
    ("timeframe", "message"),
    [
        ("M20", "cannot resample M15 bars to M20: M20 is not a whole number of M15 bars"),
        ("M5", "cannot resample M15 bars to the finer timeframe M5"),
        ("M45", "unknown timeframe 'M45'"),
    ],
)
def test_resampling_to_an_unusable_timeframe_exits_2(timeframe, message, m15_file, capsys):
    code = main(["run", "--strategy", SMA, "--data", str(m15_file), "--timeframe", timeframe])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith(f"error: {message}"), captured.err


def test_resampling_to_a_whole_multiple_runs(m15_file, capsys):
    assert (
        main(
            [
                "run",
                "--strategy",
                SMA,
                "--data",
                str(m15_file),
                "--timeframe",
                "H1",
                "--param",
                "fast=3",
                "--param",
                "slow=8",
            ]
        )
        == 0
    )
    assert "SmaCross(fast=3,slow=8) on EURUSD" in capsys.readouterr().out


def test_lookahead_on_too_few_bars_exits_2_with_the_counts(capsys):
    code = main(["lookahead", "--strategy", SMA, "--synthetic", "20"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: SmaCross (") and "has a warm-up of 31 bars" in err
    assert "needs at least 33 bars" in err and err.endswith("the data has 20")


@pytest.mark.parametrize("count", ["0", "-3"])
def test_lookahead_needs_a_checkpoint(count, data_file):
    result = run_cli(
        "lookahead", "--strategy", SMA, "--data", str(data_file), "--checkpoints", count
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: --checkpoints must be at least 1, got {count}"


# ---------------------------------------------------------------- JSON precision


class Written(str):
    """A JSON number exactly as the file spells it."""


def _places(number: Written) -> int:
    return max(0, -Decimal(number).as_tuple().exponent)


@pytest.mark.parametrize(("mode", "price_places"), [("half", 6), ("bid", 5)])
def test_run_json_is_rounded_to_fill_precision_and_cents(mode, price_places, tmp_path):
    out = tmp_path / "result.json"
    code = main(
        [
            "run",
            "--strategy",
            RSI,
            "--synthetic",
            "3000",
            "--seed",
            "4",
            "--spread-mode",
            mode,
            "--commission",
            "3.3",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    document = json.loads(out.read_text(), parse_float=Written)
    trades = document["trades"]
    assert len(trades) > 20 and {t["exit_reason"] for t in trades} >= {"sl", "signal"}
    prices = [t[key] for t in trades for key in ("entry_price", "exit_price")]
    assert max(_places(p) for p in prices) == price_places  # no more, but not cut short
    assert max(_places(t["pnl"]) for t in trades) <= 2
    stats = document["stats"]
    for key in MONEY_STATS:
        if isinstance(stats[key], Written):
            assert _places(stats[key]) <= 2, (key, stats[key])
    floats = [v for v in stats.values() if isinstance(v, Written)]
    assert floats and max(_places(v) for v in floats) <= 6
    text = out.read_text()
    assert not re.search(r"\d\.\d*(0000000|9999999)\d", text)  # no binary float noise
    net = sum(Decimal(t["pnl"]) for t in trades)
    assert abs(net - Decimal(stats["net_profit"])) <= Decimal("0.01") * len(trades)


# ---------------------------------------------------------------- output files


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_write_atomic_gives_the_mode_open_would(umask, mode, tmp_path):
    previous = os.umask(umask)
    try:
        write_atomic(tmp_path / "out.txt", "hello\n")
    finally:
        os.umask(previous)
    path = tmp_path / "out.txt"
    assert path.read_text() == "hello\n"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_cli_output_files_get_the_umask_mode(data_file, tmp_path):
    out, report = tmp_path / "r.json", tmp_path / "r.html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "backtest",
            "run",
            "--strategy",
            SMA,
            "--data",
            str(data_file),
            "--json",
            str(out),
            "--report",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        umask=0o027,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert stat.S_IMODE(report.stat().st_mode) == 0o640


def test_write_atomic_errors_name_the_target_and_leave_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    under_a_file = blocker / "out.json"
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(under_a_file))}: "):
        write_atomic(under_a_file, "{}")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(OSError, match=rf"^cannot write {re.escape(str(folder))}: "):
        write_atomic(folder, "{}")  # the temporary file is written, the rename fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]
    assert blocker.read_text() == "not a folder" and not any(folder.iterdir())


@pytest.mark.parametrize("option", ["--json", "--report"])
def test_an_unwritable_output_exits_2_naming_it(option, data_file, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "out"
    result = run_cli("run", "--strategy", SMA, "--data", str(data_file), option, str(target))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {target}: ")
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


# ---------------------------------------------------------------- walk-forward outputs


def test_walkforward_json_and_report(data_file, tmp_path, capsys):
    out, report = tmp_path / "wf.json", tmp_path / "wf.html"
    code = main(
        [
            "walkforward",
            "--strategy",
            SMA,
            "--data",
            str(data_file),
            "--grid",
            "fast=5,10",
            "--grid",
            "slow=30,60",
            "--train",
            "1000",
            "--test",
            "500",
            "--cash",
            "5000",
            "--workers",
            "1",
            "--no-progress",
            "--json",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    document = json.loads(out.read_text())
    equity = document["oos_equity"]
    assert len(document["windows"]) == 4 and len(equity) == 4 * 500
    bars = load_csv(data_file)
    expected_times = [f"{t.isoformat()}" for t in bars["time"].iloc[1000:3000]]
    assert [point["time"] for point in equity] == expected_times  # every test bar, in order
    assert equity[0]["equity"] == 5000.0
    assert equity[-1]["equity"] == document["out_of_sample"]["equity_final"]
    for k in range(1, 4):  # each window starts flat with what the one before ended with
        assert equity[500 * k]["equity"] == equity[500 * k - 1]["equity"]
    assert document["oos_trades"] == document["out_of_sample"]["n_trades"] > 0

    page = report.read_text(encoding="utf-8")
    assert "Walk-forward: SmaCross on EURUSD" in page
    for asset in (LIBRARY, CHARTS_JS, STYLE):  # inlined, not linked
        text = asset.read_text(encoding="utf-8")
        assert text in page
        page = page.replace(text, "")
    # what is left (the template and the data) loads nothing from anywhere
    assert not re.search(r"\bsrc=|\bhref=|<link\b|@import|url\(|https?:|//cdn", page)
    assert '"window_columns"' in page and '"equity"' in page


def test_run_on_data_shorter_than_the_warm_up_warns(capsys):
    assert main(["run", "--strategy", SMA, "--synthetic", "20"]) == 0
    err = capsys.readouterr().err
    assert "warning: 20 bars, but SmaCross(fast=10,slow=30) needs 31 to warm up" in err
    assert main(["run", "--strategy", SMA, "--synthetic", "200"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "walkforward", "optimize"])
def test_an_output_that_cannot_be_written_stops_the_run_before_any_is(command, tmp_path, capsys):
    """A run asked for two outputs, one of which cannot be written: exit 2 naming it,
    and the other is not left behind half a result (nothing is written at all)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    good, bad = tmp_path / "out" / "result", blocker / "inside" / "out"
    outputs = {"run": ["--json", f"{good}.json", "--report", f"{bad}.html"],
               "walkforward": ["--json", f"{good}.json", "--report", f"{bad}.html",
                               "--train", "1000", "--test", "500", "--grid", "fast=5,10"],
               "optimize": ["--csv", f"{bad}.csv", "--grid", "fast=5,10"]}[command]  # fmt: skip
    args = [command, "--strategy", SMA, "--synthetic", "2500", "--no-progress", *outputs]
    if command == "run":
        args.remove("--no-progress")
    assert main(args) == 2
    error = capsys.readouterr().err
    flag = "--csv" if command == "optimize" else "--report"
    assert error.startswith(f"error: cannot write {bad}.") and error.rstrip().endswith(f"({flag})")
    assert f"{blocker} is a file, not a folder" in error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
