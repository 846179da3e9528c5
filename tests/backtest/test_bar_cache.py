"""The cache of parsed CSVs: a second load maps what the first parsed, any change to the file
or the clock misses, a broken, corrupted or unwritable cache never stops a run (a bad entry is a
miss: the file is parsed and the entry written again), and the CLI's switch."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
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


HEADER_BYTES = 4096


def _header(entry: Path) -> dict:
    return json.loads(entry.read_bytes()[:HEADER_BYTES])


def _edit_header(change: Callable[[dict], object]) -> Callable[[Path], None]:
    """Rewrite the entry's JSON header in place as `change` makes it (it edits the dict given
    or returns what to write instead)."""

    def edit(entry: Path) -> None:
        header = _header(entry)
        edited = change(header)
        text = json.dumps(header if edited is None else edited).encode()
        with entry.open("r+b") as handle:
            handle.write(text.ljust(HEADER_BYTES))

    return edit


def _column(header: dict, name: str) -> dict:
    return next(column for column in header["columns"] if column["name"] == name)


def _fill(name: str, count: int, at: int = 0) -> Callable[[Path], None]:
    """0xFF over `count` bytes of column `name` from byte `at` (NaN prices, -1 integers)."""

    def fill(entry: Path) -> None:
        offset = _column(_header(entry), name)["offset"]
        with entry.open("r+b") as handle:
            handle.seek(offset + at)
            handle.write(b"\xff" * count)

    return fill


def _nan_closes_checksummed(entry: Path) -> None:
    """NaN closes with the checksum made to match: what a wrong frame written as it is (an
    older reader's, a writer's bug) would look like; only the validation of the bars sees it."""
    _fill("close", 800)(entry)
    header = _header(entry)
    close = _column(header, "close")
    words = np.fromfile(entry, dtype=np.int64, count=header["rows"], offset=close["offset"])
    close["checksum"] = int(words.sum())
    _edit_header(lambda h: header)(entry)


def _set(name: str, key: str, value: object) -> Callable[[Path], None]:
    return _edit_header(lambda header: _column(header, name).update({key: value}))


def _swap_names(first: str, second: str) -> Callable[[dict], None]:
    def swap(header: dict) -> None:
        a, b = _column(header, first), _column(header, second)
        a["name"], b["name"] = second, first

    return swap


def _resize(change: int) -> Callable[[Path], None]:
    def resize(entry: Path) -> None:
        with entry.open("r+b") as handle:
            handle.truncate(entry.stat().st_size + change)

    return resize


def _garble_header(entry: Path) -> None:
    with entry.open("r+b") as handle:
        handle.write(b"\x00\xff{garbage")


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "NaN closes": _fill("close", 800),
    "negative spreads": _fill("spread", 800),
    "times before 1970 at the start": _fill("time", 16),
    "a volume changed in the middle": _fill("real_volume", 3, at=8000),
    "NaN closes, checksum matching": _nan_closes_checksummed,
    "rows fewer": _edit_header(lambda h: h.update(rows=100)),
    "rows one fewer (same pages)": _edit_header(lambda h: h.update(rows=h["rows"] - 1)),
    "rows negative": _edit_header(lambda h: h.update(rows=-1)),
    "rows a string": _edit_header(lambda h: h.update(rows=str(h["rows"]))),
    "rows a float": _edit_header(lambda h: h.update(rows=float(h["rows"]))),
    "rows true": _edit_header(lambda h: h.update(rows=True)),
    "header a list": _edit_header(lambda h: [h]),
    "header a number": _edit_header(lambda h: 7),
    "header without rows": _edit_header(lambda h: h.pop("rows")),
    "columns a list of names": _edit_header(
        lambda h: h.update(columns=[c["name"] for c in h["columns"]])
    ),
    "columns a dict": _edit_header(lambda h: h.update(columns={"close": 1})),
    "offset negative": _set("close", "offset", -4096),
    "offset past the end": _set("close", "offset", 1 << 40),
    "open mapped over high": _edit_header(
        lambda h: _column(h, "open").update(offset=_column(h, "high")["offset"])
    ),
    "dtype object": _set("close", "dtype", "|O"),
    "dtype another number": _set("close", "dtype", "<f4"),
    "dtype big-endian": _set("close", "dtype", ">f8"),
    "dtype a string": _set("close", "dtype", "<U8"),
    "dtype not a dtype": _set("close", "dtype", "nonsense"),
    "close missing": _edit_header(
        lambda h: h.update(columns=[c for c in h["columns"] if c["name"] != "close"])
    ),
    "an extra column": _edit_header(lambda h: h["columns"].append(dict(h["columns"][1]))),
    "open and close swapped": _edit_header(_swap_names("open", "close")),
    "another format": _edit_header(lambda h: h.update(format="bars-1")),
    "another file's key": _edit_header(lambda h: h.update(key="0" * 64)),
    "the file cut short": _resize(-8),
    "the file longer": _resize(+8),
    "the header not JSON": _garble_header,
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupted_entry_is_a_miss_and_is_replaced(csv, tmp_path, parses, caplog, corrupt):
    cache = BarCache(tmp_path / "cache")
    expected = load_csv(csv, cache=cache)
    (entry,) = (tmp_path / "cache").glob("*.bars")
    corrupt(entry)
    with caplog.at_level(logging.DEBUG, logger="backtest.bar_cache"):
        bars = load_csv(csv, cache=cache)
    pd.testing.assert_frame_equal(bars, expected)
    assert len(parses) == 2
    assert any(entry.name in record.getMessage() for record in caplog.records)
    pd.testing.assert_frame_equal(load_csv(csv, cache=cache), expected)
    assert len(parses) == 2  # written again, good


def test_a_frame_of_other_column_types_is_not_kept(csv, tmp_path):
    cache = BarCache(tmp_path / "cache")
    cache.put(csv, "UTC", load_csv(csv).astype({"spread": "int32"}))
    assert not list((tmp_path / "cache").glob("*.bars"))


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


def test_the_command_line_runs_on_from_a_corrupted_entry(csv, tmp_path):
    """Once a segmentation fault (an object dtype mapped), once a traceback (NaN closes)."""
    cache = tmp_path / "cli-cache"
    plain = _run(csv, cache, "--no-cache")
    _run(csv, cache)
    (entry,) = cache.glob("*.bars")
    for corrupt in (CORRUPTIONS["dtype object"], CORRUPTIONS["NaN closes"]):
        corrupt(entry)
        run = _run(csv, cache)  # check=True: exit 0
        assert run.stdout == plain.stdout
        assert "Traceback" not in run.stderr
