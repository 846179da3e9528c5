"""Speed and memory of the live loop, against its targets and named baselines, in one run.

    python bench/live_speed.py

1. Decision latency (closed bar seen -> order_send called), median and p99, after a 1,000-bar
   warm-up, with the simulator in-process and over mt5linux (RPyC); target median < 5 ms.
2. One loop over 100 symbols when a bar has just closed on all of them; target < 1 s.
3. Memory (RSS) after 1,000 and after 100,000 loop iterations; target: no growth.
4. Audit inserts per second, batched and one commit per row, beside plain sqlite3
   executemany into the same table without the hash chain; target >= 20,000 rows/s batched.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from live.audit_logger import AuditLogger  # noqa: E402
from live.audit_schema import utc_now  # noqa: E402
from live.backtesting_bridge import get_strategy_from_file  # noqa: E402
from live.config import LiveConfig  # noqa: E402
from live.live_trader import LiveTrader  # noqa: E402
from live.mt5_connector import MT5Connector  # noqa: E402
from live.sim_terminal import SimConfig, SimTerminal  # noqa: E402
from live.sim_terminal.launch import start_served_sim  # noqa: E402
from live.sim_terminal.market import CATALOG  # noqa: E402

STRATEGY = ROOT / "backtest" / "strategies" / "sma_cross.py"


def make_config(folder: Path, **overrides: object) -> LiveConfig:
    env = folder / "empty.env"
    env.touch()
    base: dict[str, object] = {
        "backend": "sim",
        "dry_run": False,
        "sim_speed": "max",
        "audit_db": folder / "audit.db",
        "log_dir": folder / "logs",
        "kill_switch_file": folder / "KILL",
        "max_trades_per_day": 0,
        "max_daily_loss_pct": 0.0,
        "max_open_positions": 0,
        "max_margin_pct": 0.0,
        **overrides,
    }
    return LiveConfig.load(env_file=env, environ={}, overrides=base)


def make_trader(
    config: LiveConfig, api: object, backend: str | None = None, **params: int
) -> LiveTrader:
    strategy = get_strategy_from_file(STRATEGY, params or {"fast": 2, "slow": 4})
    return LiveTrader(
        config,
        connector=MT5Connector(config, api=api, backend=backend),
        strategy=strategy,
        audit=AuditLogger(config.audit_db),
    )


# ---------------------------------------------------------------- 1. decision latency


def decision_latency(
    folder: Path, api: object, step: object, bars: int, backend: str | None = None
) -> tuple[float, float, int]:
    """(median ms, p99 ms, samples) over `bars` closed bars, after the sim's 1,000-bar history."""
    trader = make_trader(make_config(folder), api, backend)
    trader.start()
    for _ in range(bars):
        trader.iterate()
        step()
    samples = sorted(
        trader.status.metrics.latencies_ms
    )  # the trader's own closed-bar -> send measurements
    trader.audit.close()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))], len(samples)


def latency_rows(bars: int) -> list[tuple[str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        sim = SimTerminal(SimConfig(n_bars=1000 + bars + 10, history_bars=1000))
        median, p99, n = decision_latency(Path(folder), sim, sim.sim_step_bar, bars)
        rows.append(
            (
                "decision latency, in-process simulator",
                f"median {median:.2f} ms, p99 {p99:.2f} ms ({n} orders)",
            )
        )
    with tempfile.TemporaryDirectory() as folder:
        served = start_served_sim(
            Path(folder) / "state.json", bars=1000 + bars + 10, history_bars=1000
        )
        try:
            from mt5linux import MetaTrader5

            client = MetaTrader5(host="127.0.0.1", port=served.port)
            conn = client._MetaTrader5__conn
            median, p99, n = decision_latency(
                Path(folder),
                client,
                lambda: conn.eval("mt5.sim_step_bar()"),
                bars,
                backend="mt5linux",
            )
            rows.append(
                (
                    "decision latency, mt5linux (RPyC) to a served simulator",
                    f"median {median:.2f} ms, p99 {p99:.2f} ms ({n} orders)",
                )
            )
        finally:
            served.stop()
    return rows


# ---------------------------------------------------------------- 2. 100 symbols


def hundred_names() -> list[str]:
    """100 copies of EURUSD under new names (FX000...), for the benchmarks only."""
    names = [f"FX{i:03d}" for i in range(100)]
    for name in names:
        CATALOG.setdefault(name, dataclasses.replace(CATALOG["EURUSD"], name=name))
    return names


def hundred_symbol_loops(
    loops: int, prepare: Callable[[LiveTrader], None] | None = None, **settings: object
) -> list[float]:
    """Seconds of each of `loops` loops over 100 symbols, a bar closed on each (in-process
    simulator); `prepare` sees the trader before its start."""
    names = hundred_names()
    with tempfile.TemporaryDirectory() as folder:
        sim = SimTerminal(SimConfig(symbols=tuple(names), n_bars=1100 + loops, history_bars=1000))
        config = make_config(Path(folder), symbols=tuple(names), **settings)
        trader = make_trader(config, sim, fast=10, slow=30)
        if prepare is not None:
            prepare(trader)
        trader.start()
        seconds = []
        for _ in range(loops):
            started = time.perf_counter()
            trader.iterate()
            seconds.append(time.perf_counter() - started)
            sim.sim_step_bar()
        trader.audit.close()
    return seconds


def hundred_symbols(loops: int) -> list[tuple[str, str]]:
    seconds = hundred_symbol_loops(loops, dry_run=True)
    return [
        (
            "one loop over 100 symbols, a bar closed on each (dry run)",
            f"median {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s ({loops} loops)",
        )
    ]


# ---------------------------------------------------------------- 3. memory


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_growth(iterations: int, bar_every: int) -> list[tuple[str, str]]:
    """A live trader iterating `iterations` times; a new bar closes every `bar_every`."""
    with tempfile.TemporaryDirectory() as folder:
        bars = iterations // bar_every + 1100
        sim = SimTerminal(SimConfig(n_bars=bars, history_bars=1000))
        trader = make_trader(make_config(Path(folder)), sim, fast=10, slow=30)
        trader.start()
        marks = {}
        for i in itertools.count(1):
            trader.iterate()
            if i % bar_every == 0:
                sim.sim_step_bar()
            if i in (1_000, iterations):
                marks[i] = rss_mb()
            if i == iterations:
                break
        trades = trader.summary.trades_closed
        trader.audit.close()
    return [
        ("RSS after 1,000 loop iterations", f"{marks[1_000]:.1f} MB"),
        (
            f"RSS after {iterations:,} loop iterations ({iterations // bar_every:,} bars, "
            f"{trades} trades)",
            f"{marks[iterations]:.1f} MB ({marks[iterations] - marks[1_000]:+.1f} MB)",
        ),
    ]


# ---------------------------------------------------------------- 4. audit inserts


def audit_rates(rows: int) -> list[tuple[str, str]]:
    signal = {
        "symbol": "EURUSD",
        "timeframe": "H1",
        "bar_time": utc_now(),
        "strategy": "SmaCross(fast=10,slow=30)",
        "position": 1,
        "entry": 1,
        "action": "open_buy",
        "outcome": "executed",
        "detail": "",
    }
    results = []
    with tempfile.TemporaryDirectory() as folder:
        audit = AuditLogger(Path(folder) / "batched.db")
        started = time.perf_counter()
        for _ in range(rows // 1000):
            audit.insert_many("signals", [signal] * 1000)
        results.append(
            (
                "audit rows/s, batches of 1,000 (hash chained)",
                f"{rows / (time.perf_counter() - started):,.0f}",
            )
        )
        audit = AuditLogger(Path(folder) / "single.db")
        started = time.perf_counter()
        for _ in range(rows // 10):
            audit.insert("signals", signal)
        results.append(
            (
                "audit rows/s, one commit per row (hash chained)",
                f"{rows // 10 / (time.perf_counter() - started):,.0f}",
            )
        )
        results.append(
            (
                "baseline: plain sqlite3 executemany, same table, no chain",
                f"{_plain_rate(Path(folder) / 'batched.db', rows):,.0f}",
            )
        )
    return results


def _plain_rate(db: Path, rows: int) -> float:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE plain AS SELECT * FROM signals WHERE 0")
    values = [
        (
            "2026-01-01T00:00:00.000+00:00",
            "EURUSD",
            "H1",
            "2026-01-01T00:00:00.000+00:00",
            "SmaCross",
            1,
            1,
            "open_buy",
            "executed",
            "",
            None,
            "",
            "",
        )
    ] * 1000
    started = time.perf_counter()
    for _ in range(rows // 1000):
        with conn:
            conn.executemany(
                "INSERT INTO plain (ts, symbol, timeframe, bar_time, strategy, "
                "position, entry, action, outcome, detail, client_order_id, "
                "prev_hash, row_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
    return rows / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-bars", type=int, default=1000)
    parser.add_argument("--symbol-loops", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=100_000)
    parser.add_argument("--audit-rows", type=int, default=200_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    rows = [
        *latency_rows(args.latency_bars),
        *hundred_symbols(args.symbol_loops),
        *memory_growth(args.iterations, bar_every=10),
        *audit_rates(args.audit_rows),
    ]
    print_rows(rows)
    return 0


def print_rows(rows: list[tuple[str, str]]) -> None:
    """Each (what, figure) on a line, the figures aligned."""
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
