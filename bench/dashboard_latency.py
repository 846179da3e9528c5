"""Dashboard API latency with 100,000 rows per audit table while a writer keeps inserting.

    python bench/dashboard_latency.py [--rows 100000] [--requests 300]

Starts `live/dashboard.py` as its own process (waitress), a writer thread appending rows
through the AuditLogger as a busy trader would, and times each endpoint over HTTP: p50/p99
beside the same query made in-process on the reader (the floor the HTTP stack adds to).
Target: p99 under 50 ms for every endpoint.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from live.audit_logger import AuditLogger  # noqa: E402
from live.audit_reader import AuditReader  # noqa: E402
from live.dashboard import trader_status  # noqa: E402

ENDPOINTS = [
    "/api/status",
    "/api/positions",
    "/api/orders?limit=50",
    "/api/orders?symbol=GBPUSD&limit=50",
    "/api/signals?limit=50",
    "/api/events?limit=50&exclude_kind=heartbeat",
    "/api/summary",
    "/api/equity?limit=1000",
    "/metrics",
]
START = datetime(2024, 1, 1, tzinfo=UTC)


def fill(db: Path, rows: int) -> None:
    """`rows` rows in each of signals, orders, trades, events and account_snapshots."""
    audit = AuditLogger(db)
    for start in range(0, rows, 5000):
        count = min(5000, rows - start)
        times = [START + timedelta(minutes=start + i) for i in range(count)]
        audit.insert_many("signals", [_signal(t, start + i) for i, t in enumerate(times)])
        audit.insert_many("orders", [_order(t, start + i) for i, t in enumerate(times)])
        audit.insert_many("trades", [_trade(t, start + i) for i, t in enumerate(times)])
        audit.insert_many("events", [_event(t, start + i) for i, t in enumerate(times)])
        audit.insert_many(
            "account_snapshots", [_snapshot(t, start + i) for i, t in enumerate(times)]
        )
    audit.close()


def _symbol(i: int) -> str:
    return ("EURUSD", "GBPUSD", "USDJPY")[i % 3]


def _signal(t: datetime, i: int) -> dict:
    return {
        "ts": t,
        "symbol": _symbol(i),
        "timeframe": "H1",
        "bar_time": t,
        "strategy": "SmaCross(fast=10,slow=30)",
        "position": 1,
        "entry": 0,
        "action": "none",
        "outcome": "no_action",
    }


def _order(t: datetime, i: int) -> dict:
    return {
        "ts": t,
        "client_order_id": f"LT{i:016d}",
        "status": "filled",
        "symbol": _symbol(i),
        "side": "buy",
        "kind": "open",
        "volume": 0.01,
        "price": 1.1,
        "retcode": 10009,
        "fill_price": 1.1,
        "fill_volume": 0.01,
        "comment": f"LT{i:016d}",
        "dry_run": 0,
    }


def _trade(t: datetime, i: int) -> dict:
    return {
        "ts": t,
        "symbol": _symbol(i),
        "direction": "long",
        "volume": 0.01,
        "entry_time": t,
        "entry_price": 1.1,
        "exit_time": t,
        "exit_price": 1.1 + (i % 7 - 3) * 1e-4,
        "pnl": (i % 7 - 3) * 1.0,
        "exit_reason": "signal",
        "position_ticket": i,
        "dry_run": 0,
    }


def _event(t: datetime, i: int) -> dict:
    if i % 2:
        return {"ts": t, "level": "info", "kind": "paper_fill", "message": f"fill {i}"}
    beat = {
        "wall_ts": datetime.now(UTC).isoformat(),
        "mode": "live",
        "backend": "sim",
        "metrics": {"loop_seconds": 0.01},
        "positions": [],
        "account": {"balance": 10_000.0, "equity": 10_000.0 + i % 100},
    }
    return {
        "ts": t,
        "level": "info",
        "kind": "heartbeat",
        "message": "live",
        "data": json.dumps(beat),
    }


def _snapshot(t: datetime, i: int) -> dict:
    return {
        "ts": t,
        "balance": 10_000.0,
        "equity": 10_000.0 + i % 100,
        "margin": 10.0,
        "margin_free": 9_990.0,
        "margin_level": 1e5,
        "profit": 0.0,
        "open_positions": 1,
        "dry_run": 0,
    }


def writer(db: Path, stop: threading.Event, written: list[int]) -> None:
    """Appends a signal, an order and an event every 10 ms, like a busy trader."""
    audit = AuditLogger(db)
    i = 10**7
    while not stop.is_set():
        t = datetime.now(UTC)
        audit.insert("signals", _signal(t, i))
        audit.insert("orders", _order(t, i))
        audit.insert("events", _event(t, i))
        written[0] += 3
        i += 1
        stop.wait(0.01)
    audit.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_http(base: str, path: str, n: int) -> list[float]:
    session = requests.Session()
    session.get(base + path, timeout=10).raise_for_status()  # warm the caches
    out = []
    for _ in range(n):
        started = time.perf_counter()
        session.get(base + path, timeout=10).raise_for_status()
        out.append(1000 * (time.perf_counter() - started))
    return out


def time_direct(db: Path, path: str, n: int) -> list[float]:
    reader = AuditReader(db)
    call = {
        "/api/status": lambda: trader_status(reader, time.time()),
        "/api/summary": lambda: reader.trades_summary(),
        "/api/equity?limit=1000": lambda: reader.equity_series(1000),
        "/api/orders?symbol=GBPUSD&limit=50": lambda: reader.page("orders", symbol="GBPUSD"),
    }.get(path)
    if call is None:
        table = path.split("/")[-1].split("?")[0]
        table = table if table in ("orders", "signals", "events") else None
        if table is None:
            return []
        call = lambda: reader.page(table)  # noqa: E731
    call()
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append(1000 * (time.perf_counter() - started))
    return out


def pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "audit.db"
        started = time.perf_counter()
        fill(db, args.rows)
        print(f"filled {args.rows:,} rows x 5 tables in {time.perf_counter() - started:.1f} s")
        port = free_port()
        env = Path(folder) / "empty.env"
        env.touch()
        server = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "live" / "dashboard.py"),
                "--db",
                str(db),
                "--port",
                str(port),
                "--config",
                str(env),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        server.stdout.readline()  # "dashboard on ..." once it is about to serve
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(base)
        stop, written = threading.Event(), [0]
        thread = threading.Thread(target=writer, args=(db, stop, written), daemon=True)
        thread.start()
        try:
            rows = [
                (path, time_http(base, path, args.requests), time_direct(db, path, args.requests))
                for path in ENDPOINTS
            ]
        finally:
            stop.set()
            thread.join()
            server.terminate()
            server.wait(timeout=10)
    print(f"writer appended {written[0]:,} rows meanwhile")
    print(
        f"{'endpoint':<44} {'HTTP p50':>9} {'HTTP p99':>9} {'reader p50':>11} "
        f"{'reader p99':>11}  (ms)"
    )
    for path, http, direct in rows:
        print(
            f"{path:<44} {pct(http, 50):>9} {pct(http, 99):>9} {pct(direct, 50):>11} "
            f"{pct(direct, 99):>11}"
        )
    worst = max(float(pct(http, 99)) for _, http, _ in rows)
    print(
        f"worst p99 {worst:.2f} ms: {'within' if worst < 50 else 'OVER'} the 50 ms target "
        f"(HTTP median {statistics.median([x for _, h, _ in rows for x in h]):.2f} ms)"
    )
    return 0


def _wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/api/status", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("the dashboard did not come up")


if __name__ == "__main__":
    sys.exit(main())
