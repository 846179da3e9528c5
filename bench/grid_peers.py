"""Benchmark: a 10,000-combination SMA-cross grid on 100,000 seeded EURUSD H1 bars with this
project's grid on all cores, against vectorbt's broadcast of the same grid, in one run.

The grid is SmaCross's fast 1..100 (step 1) x slow 105..600 (step 5): 100 x 100 = 10,000
combinations, all valid (the strategy needs 1 <= fast < slow; other --fast/--slow ranges are
counted and the invalid pairs left out on both sides). Reversing, no costs, 0.1 lot (10,000
units) per trade, ranked by total return.

Prints, per side: seconds of the grid call and of the whole process, CPU seconds,
combinations per second and peak memory, with the ratios; then checks that both sides agree
on every combination (trade count, P/L to the cent), trade by trade on five combinations
spread over the grid (entry and exit bars, sides), and on the best combination.

vectorbt is not a dependency of the project. Install the peers in any environment and point
the bench at its interpreter (default: this one; or set PEER_PYTHON):

    python -m venv /tmp/peers && /tmp/peers/bin/pip install -r requirements-bench.txt
    .venv/bin/python bench/grid_peers.py --peer-python /tmp/peers/bin/python

Each side runs in its own fresh process: ours twice, as `run_grid` alone (the grid call) and
as the whole `python -m backtest optimize ... --csv` command a user runs; vectorbt once, where
its first pass over the grid compiles (numba, with an empty cache unless --numba-cache) and
the first chunk is then run again warm. vectorbt broadcasts --chunk combinations (columns) at
a time: the whole grid at once would need about 8 GB per float array (100,000 x 10,000).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STRATEGY = ROOT / "backtest" / "strategies" / "sma_cross.py"
SYMBOL, SEED, LOTS, CASH = "EURUSD", 42, 0.1, 10_000.0
METRIC = "total_return_pct"
VBT_CASH = 1e9  # vectorbt has no leverage: enough cash that a 10,000-unit order always fills
CENT = 0.005  # P/L agreement, account currency
PEER_HINT = (
    "install the peers (not project dependencies) in any environment, e.g.\n"
    "  python -m venv /tmp/peers && /tmp/peers/bin/pip install -r requirements-bench.txt\n"
    "and give its interpreter: --peer-python /tmp/peers/bin/python (or PEER_PYTHON=...)"
)


# ---------------------------------------------------------------- workers (one per process)


def worker_ours(args: argparse.Namespace) -> dict:
    """This project's grid call alone, on all cores, in a fresh process."""
    sys.path.insert(0, str(ROOT))
    from backtest.data import load_csv
    from backtest.engine import BacktestConfig
    from backtest.optimize import parse_grid, run_grid
    from backtest.sizing import Sizing
    from backtest.strategy import get_strategy_from_file
    from backtest.symbols import get_symbol_spec

    bars = load_csv(args.csv)
    strategy = get_strategy_from_file(STRATEGY)
    grid = parse_grid(strategy, grid_specs(args))
    config = BacktestConfig(cash=CASH, spread_points=0, sizing=Sizing.fixed(LOTS))
    cpu = cpu_seconds(children=True)
    start = time.perf_counter()
    table = run_grid(
        bars,
        strategy,
        grid,
        spec=get_symbol_spec(SYMBOL),
        config=config,
        metric=METRIC,
        workers=args.workers or None,
        progress=False,
    )
    call = time.perf_counter() - start
    best = table.iloc[0]
    return {
        "call": call,
        "cpu": cpu_seconds(children=True) - cpu,
        "ranked": len(table),
        "best": [int(best["fast"]), int(best["slow"])],
    }


def worker_vectorbt(args: argparse.Namespace) -> dict:
    """vectorbt's broadcast of the grid, --chunk columns per call; writes every column's P/L
    and trade count, and the sample columns' trades, to --out."""
    import pandas as pd
    import vectorbt as vbt

    job = json.loads(args.job.read_text())
    combos, size = job["combos"], job["units"]
    data = pd.read_csv(args.csv, parse_dates=["time"], index_col="time")
    close, price = data["close"], data["open"]

    def broadcast(pairs: list) -> object:
        fast = vbt.MA.run(close, window=[f for f, _ in pairs], short_name="fast")
        slow = vbt.MA.run(close, window=[s for _, s in pairs], short_name="slow")
        # a cross on bar t's close fills at bar t+1's open, as in this project's engine
        up = fast.ma_crossed_above(slow).shift(1, fill_value=False)
        down = fast.ma_crossed_below(slow).shift(1, fill_value=False)
        return vbt.Portfolio.from_signals(
            close,
            entries=up,
            exits=down,
            short_entries=down,
            short_exits=up,
            price=price,
            size=size,
            init_cash=VBT_CASH,
            freq="1h",
        )

    def timed(begin: int) -> tuple[list, list, dict, float, float]:
        """One call on the chunk from `begin`: P/L and trade count per column, the sample
        columns' trades, wall and CPU seconds."""
        wall, cpu = time.perf_counter(), time.process_time()
        portfolio = broadcast(combos[begin : begin + args.chunk])
        profit = portfolio.total_profit().to_numpy().tolist()
        trades = portfolio.trades.count().to_numpy().tolist()
        samples = sample_trades(portfolio, job["samples"], begin, len(profit))
        # vectorbt's objects hold reference cycles: without a collection here, dead chunks
        # pile up (to 10 GB at 250 columns) before Python's collector runs
        del portfolio
        gc.collect()
        return profit, trades, samples, time.perf_counter() - wall, time.process_time() - cpu

    result = {"profit": [], "trades": [], "samples": {}, "wall": [], "cpu": []}
    for begin in range(0, len(combos), args.chunk):
        profit, trades, samples, wall, cpu = timed(begin)
        result["profit"] += profit
        result["trades"] += trades
        result["samples"].update(samples)
        result["wall"].append(wall)
        result["cpu"].append(cpu)
    args.out.write_text(json.dumps(result))
    done = {"done_at": time.time(), "peak_mb": peak_rss_mb()}
    *_, warm_first, warm_first_cpu = timed(0)
    walls, cpus = result["wall"], result["cpu"]
    return {
        **done,
        "chunks": len(walls),
        "cold": sum(walls),
        "cold_cpu": sum(cpus),
        "first_cold": walls[0],
        "first_warm": warm_first,
        "warm": warm_first + sum(walls[1:]),
        "warm_cpu": warm_first_cpu + sum(cpus[1:]),
        "vectorbt": vbt.__version__,
    }


def sample_trades(portfolio: object, samples: list, begin: int, count: int) -> dict:
    """{column: [[entry bar, exit bar, 1 long / -1 short, open?], ...]} of the sample columns
    in this chunk."""
    records = portfolio.trades.records  # one row per trade; col = the chunk's column
    found = {}
    for column in samples:
        if begin <= column < begin + count:
            rows = records[records["col"] == column - begin]
            found[str(column)] = [
                [int(e), int(x), 1 if d == 0 else -1, bool(s == 0)]
                for e, x, d, s in zip(
                    rows["entry_idx"],
                    rows["exit_idx"],
                    rows["direction"],
                    rows["status"],
                    strict=True,
                )
            ]
    return found


WORKERS = {"ours": worker_ours, "vectorbt": worker_vectorbt}


def cpu_seconds(children: bool) -> float:
    """User + system CPU of this process (and of its waited-for children)."""
    total = time.process_time()
    if children:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += usage.ru_utime + usage.ru_stime
    return total


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def grid_specs(args: argparse.Namespace) -> list[str]:
    return [f"fast={args.fast}", f"slow={args.slow}"]


# ---------------------------------------------------------------- measuring a process


class TreeMemory(threading.Thread):
    """Peak proportional set size (PSS) of a process and all its descendants, sampled ten
    times a second: forked grid workers share pages, which PSS counts once (Linux only;
    0 elsewhere)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_mb = pid, 0.0
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.is_set():
            self.peak_mb = max(self.peak_mb, sum(map(_pss_mb, _tree(self.pid))))
            self.finished.wait(0.1)


def _tree(pid: int) -> list[int]:
    pids, index = [pid], 0
    while index < len(pids):
        try:
            tasks = os.listdir(f"/proc/{pids[index]}/task")
            for task in tasks:
                with open(f"/proc/{pids[index]}/task/{task}/children") as handle:
                    pids += [int(child) for child in handle.read().split()]
        except OSError:
            pass  # gone meanwhile
        index += 1
    return pids


def _pss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measured(command: list[str], env: dict | None = None) -> dict:
    """Run one command: wall and CPU seconds (children included), peak PSS of its process
    tree, max RSS of its largest process, its stdout and its start (epoch seconds)."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started, start = time.time(), time.perf_counter()
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=ROOT, env=env)
        memory = TreeMemory(proc.pid)
        memory.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        memory.finished.set()
        memory.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{stderr.read().decode()[-3000:]}")
        return {
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "pss_mb": memory.peak_mb,
            "rss_mb": usage.ru_maxrss / 1024,
            "stdout": stdout.read().decode(),
            "started": started,
        }


def worker_command(python: str, name: str, args: argparse.Namespace, folder: Path) -> list[str]:
    return [python, __file__, *_flags(
        worker=name, csv=folder / "bars.csv", job=folder / "job.json",
        out=folder / f"{name}.json", fast=args.fast, slow=args.slow, chunk=args.chunk,
        workers=args.workers or None,
    )]  # fmt: skip


def cli_command(args: argparse.Namespace, folder: Path) -> list[str]:
    """`python -m backtest optimize` on the same bars and grid, as a user runs it."""
    return [sys.executable, "-m", "backtest", "optimize", *_flags(
        strategy=STRATEGY, data=folder / "bars.csv", spread=0, lots=LOTS, cash=CASH,
        metric=METRIC, csv=folder / "cli.csv", workers=args.workers or None,
    ), "--grid", f"fast={args.fast}", "--grid", f"slow={args.slow}", "--no-progress"]  # fmt: skip


def _flags(**options: object) -> list[str]:
    """--name value for each option given (None: left out)."""
    return [
        item
        for name, value in options.items()
        if value is not None
        for item in (f"--{name}", str(value))
    ]


def last_json(run: dict) -> dict:
    return json.loads(run["stdout"].strip().splitlines()[-1])


def peer_version(python: str) -> str:
    """vectorbt's version in the peer interpreter; exit 2 with how to install it if absent."""
    probe = [python, "-c", "import vectorbt; print(vectorbt.__version__)"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        problem = f"vectorbt is not importable by {python}" if done.returncode else ""
    except OSError as exc:
        problem = f"--peer-python {python}: cannot run it ({exc})"
    if problem:
        print(f"{problem}\n{PEER_HINT}", file=sys.stderr)
        raise SystemExit(2)
    return done.stdout.strip()


# ---------------------------------------------------------------- the grid and the checks


def valid_combinations(args: argparse.Namespace) -> tuple[int, list[list[int]]]:
    """(size of the grid, the combinations SmaCross accepts, in the grid's order)."""
    from backtest.optimize import combinations, parse_grid
    from backtest.strategy import InvalidParameters, create_strategy, get_strategy_from_file

    strategy = get_strategy_from_file(STRATEGY)
    every = list(combinations(parse_grid(strategy, grid_specs(args))))
    valid = []
    for params in every:
        try:
            create_strategy(strategy, params)
        except InvalidParameters:
            continue
        valid.append([params["fast"], params["slow"]])
    return len(every), valid


def spread_samples(combos: list[list[int]], count: int = 5) -> list[int]:
    """Indexes of `count` combinations along the grid's diagonal (low fast and slow to high)."""
    fasts = sorted({f for f, _ in combos})
    slows = sorted({s for _, s in combos})
    index = {tuple(c): i for i, c in enumerate(combos)}
    picks = []
    for step in range(count):
        fast = fasts[round(step * (len(fasts) - 1) / (count - 1))]
        slow = slows[round(step * (len(slows) - 1) / (count - 1))]
        if (fast, slow) in index:
            picks.append(index[(fast, slow)])
    return list(dict.fromkeys(picks))  # a small grid repeats some


class Ties:
    """Bars where two SMAs of the close are exactly equal, in integer arithmetic on the prices
    in points, so float rounding can neither hide nor invent a tie."""

    def __init__(self, close: object, digits: int) -> None:
        import numpy as np

        scaled = np.asarray(close) * 10**digits
        points = np.rint(scaled).astype(np.int64)
        if np.abs(scaled - points).max() > 1e-6:
            raise SystemExit(f"close prices are not on a {digits}-digit grid")
        self.sums = np.concatenate([[0], np.cumsum(points)])
        self.windows: dict[int, object] = {}

    def window(self, n: int) -> object:
        """Sum of the last n closes, from bar n-1 on."""
        if n not in self.windows:
            self.windows[n] = self.sums[n:] - self.sums[:-n]
        return self.windows[n]

    def bars(self, fast: int, slow: int) -> object:
        """Bars where sma(fast) == sma(slow), i.e. sum_fast * slow == sum_slow * fast."""
        import numpy as np

        equal = self.window(fast)[slow - fast :] * slow == self.window(slow) * fast
        return np.flatnonzero(equal) + slow - 1

    def any(self, combos: list[list[int]]) -> object:
        import numpy as np

        return np.array([len(self.bars(fast, slow)) > 0 for fast, slow in combos], dtype=bool)


def compare_grid(cli_csv: Path, vb: dict, combos: list[list[int]], tied: object) -> dict:
    """Every combination: same trade count and P/L to the cent, else an exact SMA tie."""
    import numpy as np
    import pandas as pd

    table = pd.read_csv(cli_csv)  # best first
    ours = table.set_index(["fast", "slow"]).loc[[tuple(c) for c in combos]]
    ours_pnl = ours[METRIC].to_numpy() / 100 * CASH
    vb_pnl, vb_trades = np.array(vb["profit"]), np.array(vb["trades"])
    same = (ours["n_trades"].to_numpy() == vb_trades) & (np.abs(ours_pnl - vb_pnl) < CENT)
    order = np.lexsort(([s for _, s in combos], [f for f, _ in combos], -vb_pnl))
    best = combos[order[0]]
    return {
        "ranked": len(table),
        "ours_best": (int(table["fast"].iloc[0]), int(table["slow"].iloc[0])),
        "same": int(same.sum()),
        "tied": int(tied.sum()),
        "differ_tied": int((~same & tied).sum()),
        "unexplained": int((~same & ~tied).sum()),
        "vb_best": best,
        "vb_best_pnl": float(vb_pnl[order[0]]),
        "ours_pnl": dict(zip(map(tuple, combos), ours_pnl, strict=True)),
        "tied_by_combo": dict(zip(map(tuple, combos), tied, strict=True)),
    }


def compare_samples(bars: object, combos: list, picks: list[int], vb: dict, ties: Ties) -> list:
    """Trade by trade on the sample combinations; one line each."""
    from backtest.engine import BacktestConfig, run_backtest
    from backtest.sizing import Sizing
    from backtest.strategies.sma_cross import SmaCross
    from backtest.symbols import get_symbol_spec

    config = BacktestConfig(cash=CASH, spread_points=0, sizing=Sizing.fixed(LOTS))
    lines = []
    for pick in picks:
        fast, slow = combos[pick]
        strategy = SmaCross(fast=fast, slow=slow)
        trades = run_backtest(bars, strategy, spec=get_symbol_spec(SYMBOL), config=config).trades
        sides = (trades["direction"] == "long") * 2 - 1
        mine = list(zip(trades["entry_bar"], trades["exit_bar"], sides, strict=True))
        mine = [[int(value) for value in trade] for trade in mine]
        theirs = vb["samples"][str(pick)]
        head = f"fast {fast:>3} slow {slow:>3}: {len(mine):,} vs {len(theirs):,} trades, P/L "
        head += f"{trades['pnl'].sum():,.2f} vs {vb['profit'][pick]:,.2f}"
        lines.append(f"{head}, {sample_verdict(mine, theirs, ties.bars(fast, slow))}")
    return lines


def sample_verdict(mine: list, theirs: list, tie_bars: object) -> str:
    """Same trades (the last one open in vectorbt is closed at the last close by ours), or
    where they part and the exact tie just before it."""
    if mine == [trade[:3] for trade in theirs]:
        last = " (the last one open in vectorbt, closed at the last close by ours)"
        return (
            "same entry and exit bars and sides"
            + (last if theirs and theirs[-1][3] else "")
            + "  ok"
        )
    pairs = zip(mine, theirs, strict=False)
    first = next((i for i, (a, b) in enumerate(pairs) if a != b[:3]), min(len(mine), len(theirs)))
    after = mine[first - 1][0] if first else 0  # the last entry both agree on
    parting = [trade[:3] for trade in (mine[first : first + 1] + theirs[first : first + 1])]
    entries = {trade[0] for trade in parting}
    # the first bar where they differ: an entry, else the exit of a trade entered together
    part = min(entries) if len(entries) > 1 or len(parting) == 1 else min(t[1] for t in parting)
    ties = [int(t) for t in tie_bars if after <= t < part]
    where = f"part at trade {first + 1} (bar {part})"
    if ties:
        return f"{where}, after an exact tie of the SMAs on bar {ties[-1]}  explained"
    return f"{where}, with no tie of the SMAs before it  MISSED"


# ---------------------------------------------------------------- main and the report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--fast", default="1:100:1", help="SmaCross fast range (as --grid)")
    parser.add_argument("--slow", default="105:600:5", help="SmaCross slow range (as --grid)")
    parser.add_argument("--workers", type=int, default=0, help="ours (default: all cores)")
    parser.add_argument("--chunk", type=int, default=250, help="vectorbt columns per call")
    parser.add_argument(
        "--peer-python",
        default=os.environ.get("PEER_PYTHON", sys.executable),
        help="interpreter with vectorbt (default: $PEER_PYTHON, else this one)",
    )
    parser.add_argument(
        "--numba-cache",
        type=Path,
        help="numba cache of the vectorbt process (default: a new, empty one)",
    )
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    for name in ("csv", "job", "out"):
        parser.add_argument(f"--{name}", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0
    version = peer_version(args.peer_python)
    sys.path.insert(0, str(ROOT))
    return orchestrate(args, version)


def orchestrate(args: argparse.Namespace, version: str) -> int:
    from backtest.data import load_csv, save_csv
    from backtest.symbols import get_symbol_spec
    from backtest.synthetic import generate_bars

    spec = get_symbol_spec(SYMBOL)
    size, combos = valid_combinations(args)
    picks = spread_samples(combos)
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as cache:
        folder = Path(tmp)
        save_csv(generate_bars(SYMBOL, "H1", args.bars, seed=SEED), folder / "bars.csv")
        bars = load_csv(folder / "bars.csv")
        units = LOTS * spec.contract_size
        job = {"combos": combos, "samples": picks, "units": units}
        (folder / "job.json").write_text(json.dumps(job))
        print(
            f"{args.bars:,} {SYMBOL} H1 bars (seed {SEED}); SmaCross grid fast={args.fast} x "
            f"slow={args.slow}: {size:,} combinations, {len(combos):,} valid (fast < slow); "
            f"reversing, no costs, {LOTS} lot = {units:,.0f} units; vectorbt {version}; "
            f"{os.cpu_count()} cores, load average {load_average()} before",
            flush=True,
        )
        cli = measured(cli_command(args, folder))
        ours = measured(worker_command(sys.executable, "ours", args, folder))
        env = {**os.environ, "NUMBA_CACHE_DIR": str(args.numba_cache or cache)}
        peer = measured(worker_command(args.peer_python, "vectorbt", args, folder), env)
        vb = json.loads((folder / "vectorbt.json").read_text())
        ties = Ties(bars["close"].to_numpy(), spec.digits)
        grid = compare_grid(folder / "cli.csv", vb, combos, ties.any(combos))
        samples = compare_samples(bars, combos, picks, vb, ties)
    print(f"load average {load_average()} after: other processes on these cores slow both sides")
    report_speed(args, len(combos), cli, ours, peer)
    report_agreement(len(combos), grid, samples, last_json(ours)["best"])
    return 0


def load_average() -> str:
    return "/".join(f"{load:.1f}" for load in os.getloadavg()) + " (1/5/15 min)"


def report_speed(args: argparse.Namespace, n: int, cli: dict, ours: dict, peer: dict) -> None:
    mine, vb = last_json(ours), last_json(peer)
    cores = args.workers or os.cpu_count() or 1
    vb_process = vb["done_at"] - peer["started"]
    compiled = (
        "numba compiling, or loading --numba-cache" if args.numba_cache else "numba compiling"
    )
    rows = [
        (
            "ours run_grid",
            cores,
            mine["call"],
            mine["cpu"],
            ours["wall"],
            ours["pss_mb"],
            ours["rss_mb"],
        ),
        ("ours CLI optimize", cores, None, None, cli["wall"], cli["pss_mb"], cli["rss_mb"]),
        (
            "vectorbt first pass",
            1,
            vb["cold"],
            vb["cold_cpu"],
            vb_process,
            peer["pss_mb"],
            vb["peak_mb"],
        ),
        ("vectorbt warm", 1, vb["warm"], vb["warm_cpu"], None, None, None),
    ]
    print(
        f"\n{'':<21}{'procs':>6}{'call s':>9}{'call CPU s':>12}{'combos/s':>10}"
        f"{'process s':>11}{'peak PSS MB':>13}{'max RSS MB':>12}"
    )
    for label, procs, call, cpu, process, pss, rss in rows:
        rate = n / (call if call is not None else process)
        print(
            f"{label:<21}{procs:>6}{_cell(call, 9, 1)}{_cell(cpu, 12, 1)}{rate:>10.1f}"
            f"{_cell(process, 11, 1)}{_cell(pss, 13, 0)}{_cell(rss, 12, 0)}"
        )
    print(
        f"  the CLI's combos/s: over its whole process. vectorbt: {vb['chunks']} calls of "
        f"{args.chunk} columns (its memory grows with --chunk), one process, one core (its "
        f"numba loops are serial); its first call {vb['first_cold']:.1f} s ({compiled}), "
        f"{vb['first_warm']:.1f} s warm; 'warm' = that warm call plus the other "
        f"{vb['chunks'] - 1}, already compiled. Its process s ends when the first pass has "
        "written its results."
    )
    print("\nratios (vectorbt / ours; above 1: ours is faster or smaller):")
    for label, theirs, mine_value in (
        ("grid call, vectorbt's first pass", vb["cold"], mine["call"]),
        ("grid call, vectorbt warm", vb["warm"], mine["call"]),
        ("grid CPU seconds, warm", vb["warm_cpu"], mine["cpu"]),
        ("whole process vs the CLI", vb_process, cli["wall"]),
        ("peak memory (PSS) vs the CLI", peer["pss_mb"], cli["pss_mb"]),
    ):
        print(f"  {label:<34}{theirs / mine_value:>8.2f}x")


def _cell(value: float | None, width: int, decimals: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{decimals}f}"


def report_agreement(n: int, grid: dict, samples: list[str], run_grid_best: list) -> None:
    print("\nagreement (vectorbt's size: the same 10,000 units, as it has no lots):")
    print(
        f"  every combination: {grid['same']:,} of {n:,} with the same trade count and P/L to "
        f"the cent; {grid['differ_tied']:,} differ, with an exact tie of their SMAs on some bar "
        f"({grid['tied']:,} combinations have such a tie); unexplained {grid['unexplained']}  "
        f"{'ok' if grid['unexplained'] == 0 else 'MISSED'}"
    )
    same_run = grid["ranked"] == n and grid["ours_best"] == tuple(run_grid_best)
    print(
        f"  ours: the CLI ranked {grid['ranked']:,} combinations, best {grid['ours_best']}; "
        f"run_grid alone: best {tuple(run_grid_best)}  {'ok' if same_run else 'MISSED'}"
    )
    print(
        "  (where the SMAs tie exactly, SmaCross, like backtesting.py, needs strictly below then "
        "strictly above on adjacent bars and keeps its position; vectorbt's crossed_above counts "
        "below -> equal -> above as a cross, and its running-sum MA can land a hair off the tie)"
    )
    for line in samples:
        print(f"  {line}")
    mine_best, vb_best = grid["ours_best"], tuple(grid["vb_best"])
    verdict = (
        "same  ok"
        if mine_best == vb_best
        else f"vectorbt's {vb_best}: {why(grid, mine_best, vb_best)}"
    )
    print(
        f"  best by total return: ours fast {mine_best[0]} slow {mine_best[1]} "
        f"(P/L {grid['ours_pnl'][mine_best]:,.2f}); {verdict}"
    )


def why(grid: dict, mine: tuple, theirs: tuple) -> str:
    """Why the two bests differ: an exact SMA tie in either, or equal P/L, else MISSED."""
    affected = [c for c in (mine, theirs) if grid["tied_by_combo"][c]]
    if affected:
        return f"differs through exact SMA ties in {affected}"
    if abs(grid["vb_best_pnl"] - grid["ours_pnl"][mine]) < CENT:
        return "an equal P/L, ranked by the parameters the other way"
    return "DIFFERS  MISSED"


if __name__ == "__main__":
    sys.exit(main())
