"""Benchmark: SMA crossover (10/30, reversing, no costs) on 1,000,000 seeded hourly bars with this
engine, backtesting.py and vectorbt, in one run.

Prints, per engine: seconds for the backtest call alone (vectorbt cold and warm), seconds and
peak memory (max RSS) of the whole process (load the CSV, run, write the trades as JSON), the
ratios against the peers, and whether our trades equal backtesting.py's.

    pip install -r requirements-bench.txt
    python bench/backtest_peers.py [--bars 1000000]

Each engine runs in its own fresh process so imports, compilation and memory are counted fairly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAST, SLOW = 10, 30


# ---------------------------------------------------------------- workers (one per process)


def worker_ours(csv: Path, out: Path) -> dict:
    """The backtest call alone, first and warm (the whole job is timed on the real CLI)."""
    from backtest.data import load_csv
    from backtest.engine import BacktestConfig, run_backtest
    from backtest.strategies.sma_cross import SmaCross
    from backtest.symbols import get_symbol_spec

    bars = load_csv(csv)

    def run() -> float:
        start = time.perf_counter()
        run_backtest(
            bars,
            SmaCross(fast=FAST, slow=SLOW),
            spec=get_symbol_spec("EURUSD"),
            config=BacktestConfig(spread_points=0),
        )
        return time.perf_counter() - start

    cold = run()
    return {"cold": cold, "call": min(run() for _ in range(3))}


def ours_command(csv: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "backtest",
        "run",
        "--strategy",
        str(ROOT / "backtest/strategies/sma_cross.py"),
        "--data",
        str(csv),
        "--spread",
        "0",
        "--json",
        str(out),
    ]


def worker_backtesting(csv: Path, out: Path) -> dict:
    start = time.perf_counter()
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    def rolling_mean(values, n):
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(rolling_mean, self.data.Close, FAST)
            self.slow = self.I(rolling_mean, self.data.Close, SLOW)

        def next(self):
            if crossover(self.fast, self.slow):
                self.position.close()
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()
                self.sell()

    data = pd.read_csv(csv, parse_dates=["time"], index_col="time")
    data = data.rename(columns=str.capitalize)[["Open", "High", "Low", "Close"]]
    call = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(data, SmaCross).run()
    call = time.perf_counter() - call
    trades = stats["_trades"]
    records = [
        {
            "entry_time": e.isoformat(),
            "exit_time": x.isoformat(),
            "entry_price": ep,
            "exit_price": xp,
            "size": float(s),
        }
        for e, x, ep, xp, s in zip(
            trades.EntryTime,
            trades.ExitTime,
            trades.EntryPrice,
            trades.ExitPrice,
            trades.Size,
            strict=True,
        )
    ]
    out.write_text(json.dumps({"trades": records}))
    return {"total": time.perf_counter() - start, "call": call}


def worker_vectorbt(csv: Path, out: Path) -> dict:
    start = time.perf_counter()
    import pandas as pd
    import vectorbt as vbt

    data = pd.read_csv(csv, parse_dates=["time"], index_col="time")

    def run():
        fast = vbt.MA.run(data["close"], FAST).ma
        slow = vbt.MA.run(data["close"], SLOW).ma
        up = fast.vbt.crossed_above(slow).shift(1, fill_value=False)
        down = fast.vbt.crossed_below(slow).shift(1, fill_value=False)
        return vbt.Portfolio.from_signals(
            data["close"],
            entries=up,
            exits=down,
            short_entries=down,
            short_exits=up,
            price=data["open"],
            freq="1h",
        )

    cold = time.perf_counter()
    portfolio = run()
    cold = time.perf_counter() - cold
    trades = portfolio.trades.records_readable
    out.write_text(trades.to_json(orient="records", date_format="iso"))
    total = time.perf_counter() - start
    warm = []
    for _ in range(3):
        begin = time.perf_counter()
        run()
        warm.append(time.perf_counter() - begin)
    return {"total": total, "call": min(warm), "cold": cold, "trades": len(trades)}


WORKERS = {"ours": worker_ours, "backtesting.py": worker_backtesting, "vectorbt": worker_vectorbt}


# ---------------------------------------------------------------- orchestration


def timed_process(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (this process alone) and stdout of one command."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{command} failed:\n{stderr.read().decode()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, stdout.read().decode()  # ru_maxrss is KiB


def run_worker(name: str, csv: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--csv", str(csv), "--out", str(out)]
    wall, peak, stdout = timed_process(command)
    result = json.loads(stdout.strip().splitlines()[-1])
    if name == "ours":  # the whole job, as a user runs it
        # five runs each: a sub-second process on this VM now and then takes twice as long
        # in kernel time (the same page faults), which one median of three can land on
        with tempfile.TemporaryDirectory() as cache:
            os.environ["BACKTEST_CACHE_DIR"] = cache
            samples = [timed_process([*ours_command(csv, out), "--no-cache"])[:2]
                       for _ in range(5)]  # fmt: skip
            wall, peak = sorted(samples)[2]  # the median: the CSV parsed every time
            timed_process(ours_command(csv, out))  # parses once, fills the cache
            cached = sorted(timed_process(ours_command(csv, out))[:2] for _ in range(5))[2]
        result["cached_process"], result["cached_peak_mb"] = cached
    result["process"], result["peak_mb"] = wall, peak
    return result


def same_trades(ours: Path, theirs: Path) -> tuple[bool, str]:
    import pandas as pd

    mine = pd.DataFrame(json.loads(ours.read_text())["trades"])
    mine = mine[mine["exit_reason"] != "end"]
    ref = pd.DataFrame(json.loads(theirs.read_text())["trades"])
    if len(mine) != len(ref):
        return False, f"{len(mine)} vs {len(ref)} trades"
    for column in ("entry_time", "exit_time"):
        left = pd.to_datetime(mine[column]).dt.tz_localize(None).to_numpy()
        if not (left == pd.to_datetime(ref[column]).to_numpy()).all():
            return False, f"{column} differs"
    for column in ("entry_price", "exit_price"):
        if not (mine[column].to_numpy() == ref[column].to_numpy()).all():
            return False, f"{column} differs"
    return True, f"{len(mine)} trades identical"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--worker", choices=list(WORKERS))
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.csv, args.out)))
        return
    from backtest.data import save_csv
    from backtest.synthetic import generate_bars

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv = folder / "eurusd_h1.csv"
        save_csv(generate_bars("EURUSD", "H1", args.bars, seed=42), csv)
        print(f"{args.bars:,} EURUSD H1 bars (seed 42), SMA {FAST}/{SLOW} reversing, no costs")
        results = {name: run_worker(name, csv, folder / f"{name}.json") for name in WORKERS}
        identical, detail = same_trades(folder / "ours.json", folder / "backtesting.py.json")
    report(results, identical, detail)


def report(results: dict, identical: bool, detail: str) -> None:
    print(f"\n{'engine':<16}{'call s':>10}{'process s':>12}{'peak MB':>10}")
    for name, r in results.items():
        print(f"{name:<16}{r['call']:>10.3f}{r['process']:>12.2f}{r['peak_mb']:>10.0f}")
    ours = results["ours"]
    cached, cached_peak = ours["cached_process"], ours["cached_peak_mb"]
    print(f"{'ours, cached':<16}{'':>10}{cached:>12.2f}{cached_peak:>10.0f}")
    vb = results["vectorbt"]
    print(
        f"first call in a fresh process: ours {results['ours']['cold']:.3f} s, vectorbt "
        f"{vb['cold']:.2f} s (compiling); process times: ours is the median of 5 CLI runs, "
        "parsing the CSV (--no-cache), then 5 more with it parsed before (backtest.bar_cache)"
    )
    ours, bt = results["ours"], results["backtesting.py"]
    print("\nratios (peer / ours):")
    rows = (
        ("call vs backtesting.py", bt["call"] / ours["call"], 30),
        ("call vs vectorbt warm", vb["call"] / ours["call"], 1),
        ("process vs backtesting.py", bt["process"] / ours["process"], 10),
        ("  the CSV parsed before", bt["process"] / ours["cached_process"], 20),
        ("process vs vectorbt", vb["process"] / ours["process"], 1),
    )
    for label, ratio, target in rows:
        verdict = "ok" if ratio >= target else "MISSED"
        print(f"  {label:<28}{ratio:>8.1f}x   target >= {target}x  {verdict}")
    print(
        f"  peak memory (ours) {ours['peak_mb']:.0f} MB   target < 1024 MB  "
        f"{'ok' if ours['peak_mb'] < 1024 else 'MISSED'}"
    )
    print(f"  trades vs backtesting.py: {detail}  {'ok' if identical else 'MISSED'}")


if __name__ == "__main__":
    main()
