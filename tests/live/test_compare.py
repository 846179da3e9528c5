"""Live versus backtest comparison: one-to-one matching, slippage signs, volumes of missed
trades, a real replay, and the quick start's run compared with --sim."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backtest.data import save_csv
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from live.audit_logger import AuditLogger
from live.audit_reader import AuditReader
from live.compare import compare, html_report, main, summary_lines, table_text, trader_volume
from tests.live.conftest import ROOT, SMA_CROSS, copy_audit_db, run_bars

EURUSD = get_symbol_spec("EURUSD")


def trades(*rows: tuple) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=[
            "entry_time",
            "exit_time",
            "entry_price",
            "exit_price",
            "direction",
            "volume",
            "pnl",
        ],
    )
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def test_matching_slippage_missed_and_extra():
    live = trades(
        ("2024-01-01 10:00", "2024-01-01 12:00", 1.10012, 1.10100, "long", 0.1, 8.8),
        ("2024-01-02 10:00", "2024-01-02 11:00", 1.20000, 1.19000, "short", 0.1, 100),
        ("2024-01-05 10:00", "2024-01-05 11:00", 1.1, 1.1, "long", 0.1, 0.0),
    )
    backtest = trades(
        ("2024-01-01 10:00", "2024-01-01 12:00", 1.10010, 1.10105, "long", 1.0, 95.0),
        ("2024-01-02 11:00", "2024-01-02 11:00", 1.20003, 1.19000, "short", 1.0, 1003.0),
        ("2024-01-03 10:00", "2024-01-03 11:00", 1.1, 1.1, "short", 1.0, 0.0),
    )
    result = compare(live, backtest, spec=EURUSD, bar_seconds=3600, symbol="EURUSD", strategy="S")
    assert len(result.matched) == 2 and len(result.missed) == 1 and len(result.extra) == 1
    first, second = result.matched
    assert first["entry_slippage_points"] == 2.0  # bought 2 points higher: worse
    assert first["exit_slippage_points"] == 5.0  # sold 5 points lower: worse
    assert second["entry_slippage_points"] == 3.0  # sold 3 points lower: worse
    assert first["backtest_pnl"] == 9.5  # scaled from 1 lot to the live 0.1
    assert result.missed[0]["direction"] == "short"
    assert result.pnl_difference == pytest.approx(108.8 - (9.5 + 100.3 + 0.0))


def test_a_replay_on_the_simulator_matches_the_backtest_fill_for_fill(
    tmp_path, live_config, make_sim, make_trader, capsys
):
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


def test_ambiguous_symbol_is_a_usage_error(tmp_path, live_config, make_sim, make_trader, capsys):
    config = live_config(symbols=("EURUSD", "GBPUSD"), strategy_params="fast=2,slow=4")
    terminal = make_sim(symbols=("EURUSD", "GBPUSD"))
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 60)
    csv = tmp_path / "bars.csv"
    save_csv(generate_bars("EURUSD", "H1", 50), csv)
    assert main(["--db", str(config.audit_db), "--data", str(csv)]) == 2
    assert "--symbol" in capsys.readouterr().err


def test_missed_trades_count_at_the_traders_volume():
    """A backtest-only trade of 1 lot making 50.0 counts 5.0 when the trader trades 0.1."""
    live = trades(("2024-01-01 10:00", "2024-01-01 12:00", 1.1001, 1.1011, "long", 0.1, 10.0))
    backtest = trades(
        ("2024-01-01 10:00", "2024-01-01 12:00", 1.1001, 1.1011, "long", 1.0, 100.0),
        ("2024-01-03 10:00", "2024-01-03 11:00", 1.1050, 1.1000, "short", 1.0, 50.0),
    )
    result = compare(
        live,
        backtest,
        spec=EURUSD,
        bar_seconds=3600,
        symbol="EURUSD",
        strategy="S",
        volume=0.1,
        volume_note="the trader's fixed volume",
    )
    (missed,) = result.missed
    assert (missed["volume"], missed["pnl"]) == (0.1, 5.0)
    assert (missed["backtest_volume"], missed["backtest_pnl"]) == (1.0, 50.0)
    assert result.backtest_pnl == 15.0 and result.pnl_difference == -5.0
    assert "missed ones at the trader's fixed volume" in summary_lines(result)[-1]
    page = html_report(result)
    missed_table = page[page.index("<h2>Missed") : page.index("<h2>Extra")]
    assert "<th>volume</th>" in missed_table and "<td>0.1</td>" in missed_table
    assert "missed (backtest only):" in table_text(result)


def test_the_volume_the_trader_would_have_used(tmp_path):
    audit = AuditLogger(tmp_path / "audit.db")
    for number, volume in enumerate((0.02, 0.02, 0.02)):
        audit.record_order(
            client_order_id=f"LTFIXED{number}",
            status="filled",
            symbol="EURUSD",
            side="buy",
            kind="open",
            volume=volume,
            dry_run=True,
        )
    for number, volume in enumerate((0.1, 0.3, 0.2)):
        audit.record_order(
            client_order_id=f"LTRISK{number}",
            status="filled",
            symbol="GBPUSD",
            side="buy",
            kind="open",
            volume=volume,
            dry_run=True,
        )
    reader = AuditReader(audit.path)
    volume, note = trader_volume(reader, "EURUSD", trades())
    assert volume == 0.02 and "fixed volume, 0.02 lots" in note
    risk = trades(
        ("2024-01-01", "2024-01-02", 1.1, 1.1, "long", 0.1, 0.0),
        ("2024-01-03", "2024-01-04", 1.1, 1.1, "long", 0.4, 0.0),
    )
    assert trader_volume(reader, "GBPUSD", risk) == (0.25, "the median live volume, 0.25 lots")
    assert trader_volume(reader, "USDJPY", trades())[0] is None


def test_a_bad_time_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--data", "x.csv", "--from", "garbage"])
    assert stop.value.code == 2
    assert "argument --from: not a date or time: 'garbage'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory) -> Path:
    """The README's quick start (a dry run on the built-in simulator's generated bars), with
    its files in a folder of its own through a settings file."""
    folder = tmp_path_factory.mktemp("quick_start")
    env = folder / "quick.env"
    env.write_text(
        f"AUDIT_DB={folder / 'audit.db'}\nLOG_DIR={folder / 'logs'}\n"
        f"KILL_SWITCH_FILE={folder / 'KILL_SWITCH'}\nLOCK_DIR={folder / 'locks'}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "live" / "live_trader.py"),
            "--config",
            str(env),
            "--strategy",
            str(SMA_CROSS),
            "--dry-run",
            "--max-bars",
            "400",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return env


def test_the_quick_start_run_compares_with_sim_and_the_settings_database(quick_start, capsys):
    assert main(["--config", str(quick_start), "--sim"]) == 0  # no --db: AUDIT_DB
    out = capsys.readouterr().out
    assert (
        "bars: the built-in simulator's generated bars, seed 7 (settings recorded by the "
        "trader at start-up)"
    ) in out
    assert re.search(
        r"matched [1-9][0-9]*, missed \(backtest only\) 0, extra \(live only\) 0", out
    ), out
    assert "difference +0.00" in out


def copy_of_quick_start(quick_start: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the quick start's database, and the start-up record the trader wrote."""
    source = AuditReader(quick_start.parent / "audit.db")
    db = copy_audit_db(source.path, tmp_path / "audit.db")
    return db, json.loads(source.last_event("startup")["data"])


def test_sim_prefers_the_settings_the_trader_recorded(quick_start, tmp_path, capsys):
    """When the start-up record carries the simulator's settings, they win over .env."""
    db, recorded = copy_of_quick_start(quick_start, tmp_path)
    AuditLogger(db).record_event(
        "startup",
        "restarted",
        data={
            **recorded,
            "sim": {
                "seed": 7,
                "n_bars": 20_000,
                "symbols": ["EURUSD"],
                "timeframe": "H1",
                "data": None,
            },
        },
    )
    env = tmp_path / "other.env"
    env.write_text(f"AUDIT_DB={db}\nSIM_SEED=99\n")
    assert main(["--config", str(env), "--sim"]) == 0
    out = capsys.readouterr().out
    assert "seed 7 (settings recorded by the trader at start-up)" in out
    assert "difference +0.00" in out


def test_sim_falls_back_to_the_settings_for_an_older_start_up_record(quick_start, tmp_path, capsys):
    """A start-up record without simulator settings: SIM_SEED of the settings is used, and
    the output says where the seed came from."""
    db, recorded = copy_of_quick_start(quick_start, tmp_path)
    assert recorded["sim"]["seed"] == 7
    del recorded["sim"]
    AuditLogger(db).record_event("startup", "restarted", data=recorded)
    env = tmp_path / "older.env"
    env.write_text(f"AUDIT_DB={db}\nSIM_SEED=7\n")
    assert main(["--config", str(env), "--sim"]) == 0
    out = capsys.readouterr().out
    assert "seed 7 (SIM_SEED and SIM_DATA of the settings" in out
    assert "difference +0.00" in out


def test_sim_is_refused_for_a_run_on_a_terminal(tmp_path, capsys):
    audit = AuditLogger(tmp_path / "audit.db")
    audit.record_event(
        "startup",
        "live",
        data={"backend": "mt5linux", "symbols": ["EURUSD"], "strategy_source": str(SMA_CROSS)},
    )
    audit.record_trade(
        symbol="EURUSD",
        position_ticket=1,
        dry_run=True,
        direction="long",
        volume=0.01,
        entry_time="2024-01-01T00:00:00+00:00",
        entry_price=1.1,
        exit_time="2024-01-01T01:00:00+00:00",
        exit_price=1.1,
        pnl=0.0,
    )
    assert main(["--db", str(audit.path), "--sim"]) == 2
    assert "ran via mt5linux" in capsys.readouterr().err


def test_help_gives_the_whole_description(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "the trades the backtest makes on the same bars and parameters" in shown
    assert "written as a self-contained HTML page." in shown
