"""Live versus backtest comparison: one-to-one matching, slippage signs, a real replay."""

from __future__ import annotations

import pandas as pd
import pytest

from backtest.data import save_csv
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from live.compare import compare, main
from tests.live.conftest import run_bars

EURUSD = get_symbol_spec("EURUSD")


def trades(*rows: tuple) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["entry_time", "exit_time", "entry_price", "exit_price",
                                        "direction", "volume", "pnl"])
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def test_matching_slippage_missed_and_extra():
    live = trades(("2024-01-01 10:00", "2024-01-01 12:00", 1.10012, 1.10100, "long", 0.1, 8.8),
                  ("2024-01-02 10:00", "2024-01-02 11:00", 1.20000, 1.19000, "short", 0.1, 100),
                  ("2024-01-05 10:00", "2024-01-05 11:00", 1.1, 1.1, "long", 0.1, 0.0))
    backtest = trades(("2024-01-01 10:00", "2024-01-01 12:00", 1.10010, 1.10105, "long", 1.0,
                       95.0),
                      ("2024-01-02 11:00", "2024-01-02 11:00", 1.20003, 1.19000, "short", 1.0,
                       1003.0),
                      ("2024-01-03 10:00", "2024-01-03 11:00", 1.1, 1.1, "short", 1.0, 0.0))
    result = compare(live, backtest, spec=EURUSD, bar_seconds=3600, symbol="EURUSD",
                     strategy="S")
    assert len(result.matched) == 2 and len(result.missed) == 1 and len(result.extra) == 1
    first, second = result.matched
    assert first["entry_slippage_points"] == 2.0  # bought 2 points higher: worse
    assert first["exit_slippage_points"] == 5.0  # sold 5 points lower: worse
    assert second["entry_slippage_points"] == 3.0  # sold 3 points lower: worse
    assert first["backtest_pnl"] == 9.5  # scaled from 1 lot to the live 0.1
    assert result.missed[0]["direction"] == "short"
    assert result.pnl_difference == pytest.approx(108.8 - (9.5 + 100.3 + 0.0))


def test_a_replay_on_the_simulator_matches_the_backtest_fill_for_fill(
        tmp_path, live_config, make_sim, make_trader, capsys):
    bars = generate_bars("EURUSD", "H1", 700, seed=21)  # with its spread: costs are equal
    csv = tmp_path / "eurusd.csv"
    save_csv(bars, csv)
    config = live_config(dry_run=False, strategy_params="fast=5,slow=12")
    terminal = make_sim(data=str(csv), history_bars=100)
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 598)
    trader.shutdown()

    report = tmp_path / "compare.html"
    assert main(["--db", str(config.audit_db), "--data", str(csv), "--html", str(report)]) == 0
    out = capsys.readouterr().out
    assert "missed (backtest only) 0, extra (live only) 0" in out
    assert "mean slippage per fill +0.0 points" in out and "difference +0.00" in out
    assert report.read_text().count("<tr>") > 20


def test_ambiguous_symbol_is_a_usage_error(tmp_path, live_config, make_sim, make_trader,
                                           capsys):
    config = live_config(symbols=("EURUSD", "GBPUSD"), strategy_params="fast=2,slow=4")
    terminal = make_sim(symbols=("EURUSD", "GBPUSD"))
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 60)
    csv = tmp_path / "bars.csv"
    save_csv(generate_bars("EURUSD", "H1", 50), csv)
    assert main(["--db", str(config.audit_db), "--data", str(csv)]) == 2
    assert "--symbol" in capsys.readouterr().err
