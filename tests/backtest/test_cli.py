"""`python -m backtest`: the four commands end to end, and user errors (exit 2, one line)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backtest.cli import main
from backtest.data import save_csv
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parents[2]
SMA = str(ROOT / "backtest" / "strategies" / "sma_cross.py")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "EURUSD_H1.csv"
    save_csv(generate_bars("EURUSD", "H1", 3000, seed=8), path)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backtest", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_run_prints_stats_and_writes_the_json_schema(data_file, tmp_path):
    out = tmp_path / "result.json"
    result = run_cli("run", "--strategy", SMA, "--data", str(data_file), "--param", "fast=10",
                     "--param", "slow=30", "--spread", "0", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "SmaCross(fast=10,slow=30) on EURUSD" in result.stdout
    assert "Sharpe ratio (ann.)" in result.stdout
    document = json.loads(out.read_text())
    assert set(document["stats"]) >= {"total_return_pct", "sharpe", "max_drawdown_pct",
                                      "n_trades", "win_rate_pct", "profit_factor"}
    trade = document["trades"][0]
    assert set(trade) >= {"entry_time", "exit_time", "entry_price", "exit_price", "direction",
                          "size", "pnl", "exit_reason"}
    assert trade["entry_time"].endswith("+00:00") and trade["size"] == pytest.approx(10_000)
    assert len(document["trades"]) == document["stats"]["n_trades"]


def test_optimize_prints_the_best_rows(data_file, capsys):
    code = main(["optimize", "--strategy", SMA, "--data", str(data_file), "--grid",
                 "fast=5:15:5", "--grid", "slow=20,40", "--metric", "total_return_pct",
                 "--workers", "1", "--no-progress", "--top", "3"])
    output = capsys.readouterr().out
    assert code == 0
    assert "6 combinations on 3000 bars, best by total_return_pct" in output
    assert len(output.strip().splitlines()) == 1 + 1 + 3


def test_walkforward_prints_the_summary(data_file, capsys):
    code = main(["walkforward", "--strategy", SMA, "--data", str(data_file), "--grid",
                 "fast=5,10", "--grid", "slow=30", "--train", "1500", "--test", "500",
                 "--workers", "1", "--no-progress"])
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


@pytest.mark.parametrize(("case", "message"), [
    ("missing data", "data file not found"),
    ("missing strategy", "strategy file not found"),
    ("unknown param", "has no parameter 'fsat'; did you mean 'fast'?"),
    ("bad param value", "parameter 'fast' expects int, got 'ten'"),
    ("bad grid", "grid 'fast=5:1:1': start 5 is above stop 1"),
    ("import error", "importing .*raises.py failed: RuntimeError: broken on purpose"),
    ("signals error", r"Broken \(.*broken.py\): signals\(\) raised ZeroDivisionError: bad maths"),
    ("bad csv row", "line 3: high 1.0 < max\\(open, close\\) 1.2"),
    ("bad sizing", "risk sizing needs a positive stop-loss distance"),
])
def test_user_errors_exit_2_with_one_line_and_no_output(case, message, data_file, tmp_path):
    out = tmp_path / "out.json"
    (tmp_path / "raises.py").write_text(RAISES_ON_IMPORT)
    (tmp_path / "broken.py").write_text(RAISES_IN_SIGNALS)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("time,open,high,low,close\n2024-01-01 00:00,1,1.1,0.9,1\n"
                       "2024-01-01 01:00,1,1.0,0.9,1.2\n")
    base = ["run", "--strategy", SMA, "--data", str(data_file), "--json", str(out)]
    args = {
        "missing data": ["run", "--strategy", SMA, "--data", "nope.csv"],
        "missing strategy": ["run", "--strategy", "nope.py", "--data", str(data_file)],
        "unknown param": [*base, "--param", "fsat=3"],
        "bad param value": [*base, "--param", "fast=ten"],
        "bad grid": ["optimize", "--strategy", SMA, "--data", str(data_file), "--grid",
                     "fast=5:1:1"],
        "import error": ["run", "--strategy", str(tmp_path / "raises.py"), "--data",
                         str(data_file)],
        "signals error": ["run", "--strategy", str(tmp_path / "broken.py"), "--data",
                          str(data_file), "--json", str(out)],
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
