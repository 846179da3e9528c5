"""History download from the terminal: windows with progress, the cache, the command line."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

import live.history as history
from backtest.data import load_csv
from live.mt5_connector import MT5Connector
from tests.live.conftest import ROOT


def test_download_in_windows_then_from_the_cache(live_config, make_sim, tmp_path, monkeypatch):
    monkeypatch.setattr(history, "WINDOW_BARS", 1000)
    terminal = make_sim(n_bars=3000, history_bars=2500)
    connector = MT5Connector(live_config(), api=terminal)
    connector.connect()
    now = history._now(connector)
    start = now - pd.Timedelta(hours=2400)
    lines: list[str] = []
    bars = history.download(
        connector, "EURUSD", "H1", start, now, cache_dir=tmp_path, now=now, progress=lines.append
    )
    expected = connector.rates_range(
        "EURUSD", "H1", start.to_pydatetime(), (now - pd.Timedelta(hours=1)).to_pydatetime()
    )
    assert len(lines) == 3 and lines[-1].startswith("EURUSD H1: window 3/3")
    assert list(bars["time"]) == list(expected["time"])
    assert bars["close"].tolist() == expected["close"].tolist()

    terminal.shutdown()  # the terminal is gone: the same request is served from the cache
    again = history.download(
        connector, "EURUSD", "H1", start, now, cache_dir=tmp_path, now=now, progress=lines.append
    )
    pd.testing.assert_frame_equal(again, bars)


def test_command_line_writes_a_csv_the_backtest_reads(tmp_path):
    env = tmp_path / "empty.env"
    env.touch()
    out = tmp_path / "EURUSD_H1.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "live.history",
            "--symbol",
            "EURUSD",
            "--from",
            "2020-01-01",
            "--out",
            str(out),
            "--backend",
            "sim",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config",
            str(env),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "window 1/1" in done.stdout and "wrote" in done.stdout
    assert len(load_csv(out)) > 900
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "live.history",
            "--symbol",
            "EURUSD",
            "--from",
            "someday",
            "--out",
            str(out),
            "--backend",
            "sim",
            "--config",
            str(env),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--from 'someday'" in bad.stderr


def test_help_gives_the_whole_description():
    shown = " ".join(history.build_parser().format_help().split())
    assert "window by window with progress, through the on-disk cache of" in shown
