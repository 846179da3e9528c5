"""Benchmark: the speed of position management, and what it costs strategies that do not use it.

    .venv/bin/python -m bench.managed_speed [--bars 1000000] [--reference-bars N] [--repeats 7]

Prints, on seeded EURUSD H1 bars without costs, in one run:

1. SmaTrailPartial (bench/strategies/sma_trail_partial.py: SMA 10/30 crossover, the stop that
   backtesting.lib.TrailingStrategy trails 3 mean true ranges behind the close, half the
   volume closed at a 2-ATR gain): our run_backtest call (median; target < 0.5 s) split into
   signals and engine; our whole process (the CLI in a fresh process: import, load the CSV,
   run, write the JSON; median of 5); backtesting.py's whole process on the same rules
   (bench/strategies/sma_trail_partial_reference.py) and bars; the ratio (target >= 10x) and
   how many positions fill alike. With --reference-bars N backtesting.py runs on the first N
   bars only: its run time is scaled by bars / N (it steps bar by bar, so it grows linearly)
   and the line says "extrapolated".
2. SmaCross (no management columns): run_backtest with the engine now and with the engine
   before position management (the parent of the commit "Backtest position management",
   exported with git archive), in fresh processes taking turns; medians; target: at most 10%
   slower; the trades must be identical.

Needs `pip install -r requirements-bench.txt` (backtesting.py) and git.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = ROOT / "bench" / "strategies"
OURS = STRATEGIES / "sma_trail_partial.py"
REFERENCE = STRATEGIES / "sma_trail_partial_reference.py"
MANAGEMENT_COMMIT = "Backtest position management"  # the subject the old engine precedes
CASH = 10_000_000.0  # backtesting.py must afford 100,000 units without margin


# ---------------------------------------------------------------- workers (one per process)


def worker_managed(args: argparse.Namespace) -> dict:
    """Our call on SmaTrailPartial: signals, engine (split into its two phases), both."""
    sys.path.insert(0, str(ROOT))
    from backtest import engine
    from backtest.data import load_csv
    from backtest.engine import BacktestConfig, run_backtest
    from backtest.sizing import Sizing
    from backtest.strategy import compute_signals, get_strategy_from_file
    from backtest.symbols import get_symbol_spec

    bars = load_csv(args.csv)
    strategy = get_strategy_from_file(OURS)()
    spec = get_symbol_spec("EURUSD")
    config = BacktestConfig(spread_points=0, sizing=Sizing.fixed(1.0), cash=CASH)
    phases = _time_phases(engine, ("trade_paths", "settle"))
    timings: dict[str, list[float]] = {"signals": [], "engine": [], "call": []}
    for _ in range(args.repeats + 1):  # the first is a warm-up
        signals = _timed(timings["signals"], compute_signals, strategy, bars)
        kwargs = {"spec": spec, "config": config}
        _timed(timings["engine"], run_backtest, bars, strategy, signals=signals, **kwargs)
        result = _timed(timings["call"], run_backtest, bars, strategy, **kwargs)
    medians = {name: statistics.median(values[1:]) for name, values in timings.items()}
    medians |= {name: statistics.median(values[2:]) for name, values in phases.items()}
    reasons = result.trades["exit_reason"].value_counts()
    medians["fills"] = {str(k): int(v) for k, v in reasons.items() if v}
    medians["positions"] = int(result.trades["position"].nunique())
    return medians


def _time_phases(module, names: tuple[str, ...]) -> dict[str, list[float]]:
    """Wrap the engine's phase functions so that every call records its seconds."""
    phases: dict[str, list[float]] = {name: [] for name in names}

    def wrap(name, function):
        return lambda *a, **k: _timed(phases[name], function, *a, **k)

    for name in names:
        setattr(module, name, wrap(name, getattr(module, name)))
    return phases


def _timed(samples: list[float], function, *args, **kwargs):
    start = time.perf_counter()
    out = function(*args, **kwargs)
    samples.append(time.perf_counter() - start)
    return out


def worker_reference(args: argparse.Namespace) -> dict:
    """backtesting.py on the first `limit` bars: import, load (all bars), run, write."""
    start = time.perf_counter()
    import importlib.util

    import pandas as pd
    from backtesting import Backtest

    spec = importlib.util.spec_from_file_location("sma_trail_partial_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    imported = time.perf_counter()
    data = pd.read_csv(args.csv, parse_dates=["time"], index_col="time")
    data = data.rename(columns=str.capitalize)[["Open", "High", "Low", "Close"]]
    loaded = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = Backtest(data.iloc[: args.limit], module.SmaTrailPartialReference, cash=CASH)
        trades = backtest.run()["_trades"]
    ran = time.perf_counter()
    columns = ["EntryTime", "ExitTime", "EntryPrice", "ExitPrice", "Size"]
    trades[columns].to_json(args.out, orient="records", date_format="iso")
    done = time.perf_counter()
    return {
        "import": imported - start,
        "load": loaded - imported,
        "run": ran - loaded,
        "write": done - ran,
        "last_time": str(data.index[min(args.limit, len(data)) - 1]),
    }


def worker_plain(args: argparse.Namespace) -> dict:
    """SmaCross with the engine of the tree `args.root`: the call, and signals given."""
    sys.path.insert(0, str(args.root))
    import backtest
    from backtest.data import load_csv
    from backtest.engine import BacktestConfig, run_backtest
    from backtest.strategies.sma_cross import SmaCross
    from backtest.strategy import compute_signals
    from backtest.symbols import get_symbol_spec

    if not Path(backtest.__file__).is_relative_to(args.root):
        raise SystemExit(f"imported {backtest.__file__}, not the tree under {args.root}")
    bars = load_csv(args.csv)
    strategy, spec = SmaCross(fast=10, slow=30), get_symbol_spec("EURUSD")
    config = BacktestConfig(spread_points=0)
    call, made, engine = [], [], []
    for _ in range(args.repeats + 1):  # the first is a warm-up
        result = _timed(call, run_backtest, bars, strategy, spec=spec, config=config)
        signals = _timed(made, compute_signals, strategy, bars)
        _timed(engine, run_backtest, bars, strategy, spec=spec, config=config, signals=signals)
    columns = ["entry_bar", "exit_bar", "entry_price", "exit_price", "volume", "pnl"]
    result.trades[columns].to_json(args.out, orient="split", index=False)
    return {"call": call[1:], "signals": made[1:], "engine": engine[1:]}


WORKERS = {"managed": worker_managed, "reference": worker_reference, "plain": worker_plain}


# ---------------------------------------------------------------- orchestration


def run_worker(name: str, csv: Path, **options: object) -> tuple[dict, float, float]:
    """A worker's JSON answer, its wall seconds and its peak RSS (MB)."""
    from bench.backtest_peers import timed_process

    command = [sys.executable, "-m", "bench.managed_speed", "--worker", name, "--csv", str(csv)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    wall, peak, stdout = timed_process(command)
    return json.loads(stdout.strip().splitlines()[-1]), wall, peak


def ours_process(csv: Path, out: Path) -> tuple[float, float]:
    """Median wall seconds (and its peak MB) of five CLI runs: the whole job as a user runs it."""
    from bench.backtest_peers import timed_process

    command = [sys.executable, "-m", "backtest", "run", "--strategy", str(OURS)]
    command += ["--data", str(csv), "--spread", "0", "--lots", "1", "--json", str(out)]
    command += ["--cash", str(CASH)]
    samples = sorted(timed_process(command)[:2] for _ in range(5))
    return samples[2]


def old_engine(into: Path, commit: str | None) -> tuple[Path, str]:
    """The backtest/ tree before position management, exported to `into`; and its commit."""
    if commit is None:
        log = _git("log", "--format=%H %P %s", "-n", "200")
        found = [line.split()[1] for line in log.splitlines() if MANAGEMENT_COMMIT in line]
        if not found:
            raise SystemExit(f"no commit {MANAGEMENT_COMMIT!r} in the last 200; use --old-commit")
        commit = found[-1]  # the parent of the first such commit
    archive = subprocess.run(
        ["git", "archive", commit, "backtest"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(into, filter="data")
    return into, _git("log", "-1", "--format=%h %s", commit).strip()[:72]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout


# ---------------------------------------------------------------- comparing fills


def alike_positions(ours_json: Path, reference_json: Path, last_time: str, digits: int) -> str:
    """How many positions fill alike: same bars and units, prices within half a point
    (backtesting.py keeps TrailingStrategy's levels unrounded), among those that ended
    before the reference's last bar."""
    import pandas as pd

    mine = pd.DataFrame(json.loads(ours_json.read_text())["trades"])
    mine = mine[mine["exit_reason"] != "end"]
    side = mine["direction"].map({"long": 1, "short": -1})
    mine = pd.DataFrame(
        {
            "entry": pd.to_datetime(mine["entry_time"]).dt.tz_localize(None),
            "exit": pd.to_datetime(mine["exit_time"]).dt.tz_localize(None),
            "entry_price": mine["entry_price"],
            "exit_price": mine["exit_price"],
            "units": side * mine["size"].round(6),
        }
    )
    ref = pd.DataFrame(json.loads(reference_json.read_text()))
    ref = pd.DataFrame(
        {
            "entry": pd.to_datetime(ref["EntryTime"]).dt.tz_localize(None),
            "exit": pd.to_datetime(ref["ExitTime"]).dt.tz_localize(None),
            "entry_price": ref["EntryPrice"],
            "exit_price": ref["ExitPrice"],
            "units": ref["Size"].astype(float),
        }
    )
    end = pd.Timestamp(last_time).tz_localize(None)
    a, b = _by_position(mine, end), _by_position(ref, end)
    half_point = 0.5 * 10.0**-digits
    same = sum(_alike(a.get(k), b.get(k), half_point) for k in set(a) | set(b))
    return f"{same:,} of {len(set(a) | set(b)):,} positions"


def _by_position(fills, end) -> dict[tuple, list[tuple]]:
    grouped: dict[tuple, list[tuple]] = {}
    for row in fills.itertuples(index=False):
        key = (row.entry, row.units > 0)
        grouped.setdefault(key, []).append((row.exit, row.units, row.entry_price, row.exit_price))
    return {k: sorted(v) for k, v in grouped.items() if max(f[0] for f in v) < end}


def _alike(left: list | None, right: list | None, tolerance: float) -> bool:
    if left is None or right is None or len(left) != len(right):
        return False
    return all(
        a[:2] == b[:2] and abs(a[2] - b[2]) <= tolerance and abs(a[3] - b[3]) <= tolerance + 1e-12
        for a, b in zip(left, right, strict=True)
    )


def same_trades(new: Path, old: Path) -> str:
    import pandas as pd

    left = pd.read_json(new, orient="split")
    right = pd.read_json(old, orient="split")
    if left.shape != right.shape or not (left.to_numpy() == right.to_numpy()).all():
        return "DIFFERENT"
    return f"identical ({len(left):,} trades)"


# ---------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--reference-bars", type=int, help="backtesting.py on these first bars")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per process")
    parser.add_argument("--rounds", type=int, default=3, help="turns of the two engines (part 2)")
    parser.add_argument("--old-commit", help="the engine to compare with (default: found)")
    parser.add_argument("--worker", choices=list(WORKERS))
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--root", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return
    sys.path.insert(0, str(ROOT))
    from backtest.data import save_csv
    from backtest.synthetic import generate_bars

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv = folder / "eurusd_h1.csv"
        save_csv(generate_bars("EURUSD", "H1", args.bars, seed=42), csv)
        print(f"{args.bars:,} EURUSD H1 bars (seed 42), no spread, no commission\n")
        managed_part(args, csv, folder)
        plain_part(args, csv, folder)


def managed_part(args: argparse.Namespace, csv: Path, folder: Path) -> None:
    from backtest.symbols import get_symbol_spec

    limit = min(args.reference_bars or args.bars, args.bars)
    ours, _, _ = run_worker("managed", csv, repeats=args.repeats)
    ours["process"], ours["peak"] = ours_process(csv, folder / "ours.json")
    ref, wall, ref["peak"] = run_worker("reference", csv, out=folder / "ref.json", limit=limit)
    ref["scale"] = args.bars / limit
    ref["process"] = wall + ref["run"] * (ref["scale"] - 1.0)  # the run grows with the bars
    digits = get_symbol_spec("EURUSD").digits
    alike = alike_positions(folder / "ours.json", folder / "ref.json", ref["last_time"], digits)
    report_managed(args, ours, ref, limit, alike)


def report_managed(args: argparse.Namespace, ours: dict, ref: dict, limit: int, alike: str) -> None:
    fills = ", ".join(f"{k} {v:,}" for k, v in ours["fills"].items())
    print("1. SmaTrailPartial: SMA 10/30, TrailingStrategy's 3-ATR stop, half out at +2 ATR")
    print(f"   {ours['positions']:,} positions; closing fills: {fills}")
    print(f"   run_backtest call, median of {args.repeats}: {ours['call']:.3f} s")
    print(f"     strategy signals {ours['signals']:.3f} s, engine {ours['engine']:.3f} s")
    print(
        f"     engine phases: trade paths (vectorised) {ours['trade_paths']:.3f} s, "
        f"settle (volumes and money) {ours['settle']:.3f} s"
    )
    scaled = ref["scale"] != 1
    label = f"backtesting.py, EXTRAPOLATED from {limit:,}" if scaled else "backtesting.py"
    print(f"\n   {'whole process':<44}{'seconds':>9}{'peak MB':>9}")
    print(f"   {'ours (CLI, median of 5)':<44}{ours['process']:>9.2f}{ours['peak']:>9.0f}")
    print(f"   {label:<44}{ref['process']:>9.2f}{ref['peak']:>9.0f}")
    print(
        f"     of which import {ref['import']:.2f} s, load {ref['load']:.2f} s, "
        f"run {ref['run']:.2f} s" + (f" (x {ref['scale']:.1f} for {args.bars:,} bars)" * scaled)
    )
    ratio = ref["process"] / ours["process"]
    print(
        f"\n   engine call (signals given) < 0.5 s: {ours['engine']:.3f} s  "
        f"{_verdict(ours['engine'] < 0.5)}  (with the strategy's own signal code: "
        f"{ours['call']:.3f} s)"
    )
    print(
        f"   process, backtesting.py / ours: {ratio:.1f}x  target >= 10x  {_verdict(ratio >= 10)}"
    )
    print(f"   fills alike (bars, units; prices within half a point): {alike}")
    print("     (the rest: a stop in digits that a bar's extreme touches and backtesting.py's")
    print("     unrounded level misses, or a by-design difference: test_parity_management.py)\n")


def plain_part(args: argparse.Namespace, csv: Path, folder: Path) -> None:
    root, described = old_engine(folder / "old_engine", args.old_commit)
    parts = ("call", "signals", "engine")
    samples = {name: {part: [] for part in parts} for name in ("now", "before")}
    for _ in range(args.rounds):  # taking turns, so drifts in machine speed hit both alike
        for name, tree in (("now", ROOT), ("before", root)):
            out = folder / f"plain_{name}.json"
            result, _, _ = run_worker("plain", csv, out=out, repeats=args.repeats, root=tree)
            for part in parts:
                samples[name][part] += result[part]
    same = same_trades(folder / "plain_now.json", folder / "plain_before.json")
    count = args.rounds * args.repeats
    print("2. SmaCross 10/30 (no management columns): run_backtest, engine now vs before")
    print(f"   before: {described}")
    print(f"   {'median of ' + str(count) + ' (s)':<34}{'now':>9}{'before':>9}{'change':>9}")
    labels = ("call (signals + engine)", "  compute_signals", "  engine (signals given)")
    for key, label in zip(parts, labels, strict=True):
        now = statistics.median(samples["now"][key])
        before = statistics.median(samples["before"][key])
        print(f"   {label:<34}{now:>9.4f}{before:>9.4f}{now / before - 1:>+9.1%}")
    call_change = statistics.median(samples["now"]["call"]) / statistics.median(
        samples["before"]["call"]
    )
    print(f"   call at most 10% slower: {_verdict(call_change <= 1.10)}; trades {same}")


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


if __name__ == "__main__":
    main()
