"""The cache of parsed CSVs: a second load maps what the first parsed, any change to the file
or the clock misses, a broken or unwritable cache never stops a run, and the CLI's switch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import backtest.csv_bars as csv_bars
from backtest.bar_cache import BarCache
from backtest.data import load_csv, save_csv
from backtest.synthetic import generate_bars

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "EURUSD_H1.csv"
    save_csv(generate_bars("EURUSD", "H1", 3000, seed=5), path)
    return path


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file actually parsed (not served from the cache)."""
    seen: list[Path] = []
    original = csv_bars.parse_csv

    def counting(path: Path, tz: str, validate: bool) -> pd.DataFrame:
        seen.append(path)
        return original(path, tz, validate)

    monkeypatch.setattr(csv_bars, "parse_csv", counting)
    return seen


def test_a_second_load_maps_what_the_first_parsed(csv, tmp_path, parses):
    cache = BarCache(tmp_path / "cache")
    first = load_csv(csv, cache=cache)
    second = load_csv(csv, cache=cache)
    assert parses == [csv]
    pd.testing.assert_frame_equal(second, first)
    pd.testing.assert_frame_equal(second, load_csv(csv))  # the same as without a cache


def test_the_cached_frame_is_writable_and_writes_stay_in_memory(csv, tmp_path):
    cache = BarCache(tmp_path / "cache")
    original = load_csv(csv, cache=cache)
    mapped = load_csv(csv, cache=cache)
    mapped.loc[0, "close"] = 99.0
    mapped["open"] *= 2
    pd.testing.assert_frame_equal(load_csv(csv, cache=cache), original)


def test_a_changed_file_or_another_clock_misses(csv, tmp_path, parses):
    cache = BarCache(tmp_path / "cache")
    first = load_csv(csv, cache=cache)
    load_csv(csv, tz="Europe/Athens", cache=cache)
    assert len(parses) == 2  # another clock, another entry
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:-1]))  # one bar fewer: size and time change
    shorter = load_csv(csv, cache=cache)
    assert len(parses) == 3 and len(shorter) == len(first) - 1
    stamp = csv.stat().st_mtime_ns
    os.utime(csv, ns=(stamp + 10**9, stamp + 10**9))  # same size, new time: parsed again
    load_csv(csv, cache=cache)
    assert len(parses) == 4


def test_a_broken_entry_is_parsed_again_and_replaced(csv, tmp_path, parses):
    cache = BarCache(tmp_path / "cache")
    expected = load_csv(csv, cache=cache)
    (entry,) = (tmp_path / "cache").glob("*.bars")
    entry.write_bytes(b"not a cache entry")
    pd.testing.assert_frame_equal(load_csv(csv, cache=cache), expected)
    assert len(parses) == 2
    pd.testing.assert_frame_equal(load_csv(csv, cache=cache), expected)
    assert len(parses) == 2  # replaced by a good one


def test_an_unwritable_cache_never_stops_a_run(csv, tmp_path):
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    bars = load_csv(csv, cache=BarCache(blocker / "cache"))
    pd.testing.assert_frame_equal(bars, load_csv(csv))


def test_unvalidated_frames_are_not_kept(csv, tmp_path):
    load_csv(csv, validate=False, cache=BarCache(tmp_path / "cache"))
    assert not list((tmp_path / "cache").glob("*.bars"))


def test_the_least_recently_used_entries_go_past_the_limit(tmp_path):
    files = []
    for k in range(3):
        path = tmp_path / f"s{k}.csv"
        save_csv(generate_bars("EURUSD", "H1", 2000, seed=k), path)
        files.append(path)
    probe = BarCache(tmp_path / "probe")
    probe.put(files[0], "UTC", load_csv(files[0]))
    (one,) = (tmp_path / "probe").glob("*.bars")
    cache = BarCache(tmp_path / "cache", max_bytes=2 * one.stat().st_size)
    for path in files[:2]:
        load_csv(path, cache=cache)
    os.utime(cache._entry(files[1], "UTC"), ns=(1, 1))  # s1 now the least recently used
    load_csv(files[2], cache=cache)
    kept = {p.name for p in (tmp_path / "cache").glob("*.bars")}
    assert kept == {cache._entry(files[0], "UTC").name, cache._entry(files[2], "UTC").name}


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.setenv("BACKTEST_CACHE_DIR", "off")
    assert BarCache.from_environment() is None
    monkeypatch.setenv("BACKTEST_CACHE_DIR", str(tmp_path / "mine"))
    assert BarCache.from_environment().folder == tmp_path / "mine"
    monkeypatch.delenv("BACKTEST_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert BarCache.from_environment().folder == tmp_path / "xdg" / "mt5-backtest" / "bars"


def _run(csv: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "backtest", "run", "--strategy",
               "backtest/strategies/sma_cross.py", "--data", str(csv), *extra]  # fmt: skip
    env = {**os.environ, "BACKTEST_CACHE_DIR": str(cache)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)


def test_the_command_line_uses_the_cache_unless_told_not_to(csv, tmp_path):
    cache = tmp_path / "cli-cache"
    plain = _run(csv, cache, "--no-cache")
    assert not cache.exists()
    first, second = _run(csv, cache), _run(csv, cache)
    assert len(list(cache.glob("*.bars"))) == 1
    assert plain.stdout == first.stdout == second.stdout
