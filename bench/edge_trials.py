"""Edge trials: the trader tried where it broke before, against a served simulator over
mt5linux, with one command:

    python bench/edge_trials.py [--quick]

1. Second traders: while one live trader runs, others start on its database, and on its
   account with a database of their own; the first is SIGKILLed and restarted in between.
2. The audit database held locked by another process for 20 s while the trader trades.
3. The disk holding the database filling up mid-run: a real small tmpfs in a private mount
   namespace (`unshare`), filled by another file, then freed.
4. Rewritten chains: edited and recomputed without the key (verify must fail), and with it
   (the heads anchored in the trader's log must say REWRITTEN).

It prints: duplicates (orders executed twice at the broker), positions held past their exit
decision during an outage (bars), fallback journal rows moved into the database, second
trader starts refused, rewritten chains caught; and every invariant that did not hold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.invariants import check_orders, print_verdict  # noqa: E402
from live.audit_chain import GENESIS_HASH, key_file_for, load_key, row_hash  # noqa: E402
from live.audit_reader import AuditReader  # noqa: E402
from live.audit_schema import CHAINED_TABLES, COLUMNS  # noqa: E402
from live.mt5_connector import to_local  # noqa: E402
from live.sim_terminal.launch import ServedSim, start_served_sim  # noqa: E402

MAGIC = 240_601
SYMBOLS = "EURUSD,GBPUSD,USDJPY"
SPEED = 3600  # simulated seconds per wall second: an H1 bar a second
BAR_SECONDS = 3600


@dataclass
class Figures:
    """What the trials measured, and every invariant that did not hold."""

    duplicates: int = 0
    held_past_exit_bars: int = 0
    outage_decisions: int = 0
    outage_exits: int = 0
    journaled: int = 0
    moved: int = 0
    second_starts: int = 0
    second_refused: int = 0
    chains_rewritten: int = 0
    chains_caught: int = 0
    violations: list[str] = field(default_factory=list)

    def add(self, other: dict) -> None:
        for key, value in other.items():
            if key == "violations":
                self.violations += value
            else:
                setattr(self, key, getattr(self, key) + value)


# ---------------------------------------------------------------- running traders


def settings(folder: Path, port: int, db: Path, **extra: object) -> Path:
    path = folder / f"{db.stem}.env"
    values = {
        "AUDIT_DB": db,
        "LOG_DIR": folder / f"logs-{db.stem}",
        "KILL_SWITCH_FILE": folder / "KILL",
        "LOCK_DIR": folder / "locks",
        "MT5_BACKEND": "mt5linux",
        "MT5LINUX_PORT": port,
        "MAGIC_NUMBER": MAGIC,
        "SYMBOLS": SYMBOLS,
        "MAX_TRADES_PER_DAY": 0,
        "MAX_DAILY_LOSS_PCT": 0,
        "MAX_MARGIN_PCT": 0,
        "ORDER_RETRY_BASE_SECONDS": 0,
        "ORDER_RETRY_MAX_SECONDS": 0,
        "LOG_LEVEL": "INFO",
        **extra,
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def trader_command(env: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "live" / "live_trader.py"),
        "--config",
        str(env),
        "--strategy",
        str(ROOT / "backtest" / "strategies" / "sma_cross.py"),
        "--param",
        "fast=2",
        "--param",
        "slow=4",
        "--live",
        "--sim-speed",
        str(SPEED),
        "--interval",
        "0.2",
        *extra,
    ]


def trader(env: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        trader_command(env, *extra),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_started(process: subprocess.Popen) -> None:
    """Until the trader logs the last line of its start-up (it then trades)."""
    for line in process.stderr:
        if "kill switch: touch" in line:
            threading.Thread(target=process.stderr.read, daemon=True).start()  # keep draining
            return
    raise RuntimeError(f"trader did not start (exit {process.wait()})")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=120)


def served(folder: Path) -> ServedSim:
    """A simulator in real time at SPEED (one H1 bar a second), with its own state file."""
    return start_served_sim(
        folder / "sim_state.json",
        "--symbols",
        SYMBOLS,
        "--speed",
        str(SPEED),
        bars=20_000,
        history_bars=200,
    )


def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def holds_positions(db: Path) -> bool:
    return count(db, "SELECT count(*) FROM orders WHERE kind = 'open' AND status = 'filled'") >= 3


# ---------------------------------------------------------------- measuring


def broker_deals(port: int) -> list:
    from mt5linux import MetaTrader5

    terminal = MetaTrader5(host="127.0.0.1", port=port)
    terminal.initialize()
    deals = terminal.history_deals_get(
        datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )
    return [d for d in (to_local(deal) for deal in deals or ()) if d.magic == MAGIC]


def held_past_exit(db: Path, deals: list, since: str, until_ts: str) -> tuple[int, int]:
    """(bars positions were held after a decision that no longer wanted them, decisions
    checked) for the decisions recorded between `since` and `until_ts` (market time)."""
    spans: dict[int, list] = {}
    for deal in deals:
        span = spans.setdefault(int(deal.position_id), [None, None, deal.symbol, 0])
        if deal.entry == 0:
            span[0], span[3] = float(deal.time), 1 if deal.type == 0 else -1
        else:
            span[1] = float(deal.time)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        decisions = conn.execute(
            "SELECT symbol, ts, position FROM signals WHERE action != 'none' AND ts >= ? "
            "AND ts <= ?",
            (since, until_ts),
        ).fetchall()
    late, end = 0, datetime.fromisoformat(until_ts).timestamp()
    for symbol, ts, target in decisions:
        moment = datetime.fromisoformat(ts).timestamp()
        for entry, exit_, span_symbol, direction in spans.values():
            if span_symbol != symbol or entry is None or entry >= moment:
                continue
            if direction != target and (exit_ is None or exit_ > moment + 1):
                late += max(1, math.ceil(((exit_ or end) - moment) / BAR_SECONDS))
    return late, len(decisions)


def journal_counts(log_dir: Path) -> tuple[int, int]:
    """(rows the trader kept in the fallback journal, rows it moved into the database), from
    its JSON log."""
    kept = moved = 0
    for log in log_dir.glob("live_trader.log*"):
        for line in log.read_text(errors="replace").splitlines():
            try:
                message = json.loads(line).get("message", "")
            except ValueError:
                continue
            if "row kept in the fallback journal" in message:
                kept += 1
            elif message.startswith("moved ") and "of the fallback journal" in message:
                moved += int(message.split()[1])
    return kept, moved


def outage_window(db: Path) -> tuple[str, str]:
    """Market times from the outage's start to its end, from the recovery event."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT ts, data FROM events WHERE kind = 'audit_recovered' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    if row is None:
        raise RuntimeError("the trader never recorded audit_recovered")
    return json.loads(row[1])["since"], row[0]


def after_outage(db: Path, port: int, log_dir: Path, what: str) -> dict:
    deals = broker_deals(port)
    since, until_ts = outage_window(db)
    late, decisions = held_past_exit(db, deals, since, until_ts)
    exits = count(
        db,
        "SELECT count(*) FROM orders WHERE kind = 'close' AND status = 'intent' "
        f"AND ts >= '{since}' AND ts <= '{until_ts}'",
    )
    kept, moved = journal_counts(log_dir)
    reader = AuditReader(db)
    violations = [f"{what}: {v}" for v in check_orders(reader, deals)]
    broken = [r for r in reader.verify(load_key(key_file_for(db))) if not r.ok]
    violations += [f"{what}: chain of {r.table} broken at {r.broken_id}" for r in broken]
    if moved != kept:
        violations.append(f"{what}: {kept} rows journaled, {moved} moved into the database")
    duplicates = sum("executed" in v and "times" in v for v in violations)
    return {
        "duplicates": duplicates,
        "held_past_exit_bars": late,
        "outage_decisions": decisions,
        "outage_exits": exits,
        "journaled": kept,
        "moved": moved,
        "violations": violations,
    }


# ---------------------------------------------------------------- the scenarios


def second_traders(folder: Path, attempts: int) -> dict:
    """Second traders on the running one's database, and on its account with a database of
    their own; every third attempt the first is SIGKILLed and restarted."""
    sim = served(folder)
    try:
        env = settings(folder, sim.port, folder / "one.db")
        other = settings(folder, sim.port, folder / "other.db")
        refused = 0
        first = trader(env)
        wait_started(first)
        for attempt in range(attempts):
            command = trader_command(other if attempt % 2 else env)
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
            refused += done.returncode == 2 and "another trader holds" in done.stderr
            if attempt % 3 == 2:  # the holder dies without a word: its restart must not wait
                stop(first, signal.SIGKILL)
                first = trader(env)
                wait_started(first)
        stop(first)
        deals = broker_deals(sim.port)
    finally:
        sim.stop()
    violations = [
        f"second traders: {v}" for v in check_orders(AuditReader(folder / "one.db"), deals)
    ]
    if refused != attempts:
        violations.append(f"second traders: {attempts - refused} of {attempts} were not refused")
    return {
        "second_starts": attempts,
        "second_refused": refused,
        "duplicates": sum("times at the broker" in v for v in violations),
        "violations": violations,
    }


def locked_database(folder: Path, seconds: float) -> dict:
    """Another process holds the database's write lock for `seconds` while the trader trades."""

    def outage(db: Path) -> None:
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)  # the lock is the scenario: held this long, then let go
        holder.execute("ROLLBACK")
        holder.close()

    return _through_outage(folder, folder / "locked.db", outage, "locked database")


def _through_outage(folder: Path, db: Path, outage: object, what: str) -> dict:
    """A live trader holding positions, `outage(db)` while it trades, its recovery, then
    what the outage did (after_outage)."""
    sim = served(folder)
    env = settings(folder, sim.port, db)
    try:
        process = trader(env)
        wait_started(process)
        until(lambda: holds_positions(db), 120, f"positions before the {what}")
        outage(db)
        until(
            lambda: count(db, "SELECT count(*) FROM events WHERE kind = 'audit_recovered'"),
            120,
            "the trader's recovery",
        )
        time.sleep(2)  # a few more loops after the recovery, then a clean stop
        stop(process)
        return after_outage(db, sim.port, folder / f"logs-{db.stem}", what)
    finally:
        sim.stop()


def filling_disk(folder: Path, seconds: float) -> dict:
    """The disk holding the database fills up mid-run: this same script, run in a private mount
    namespace on a small tmpfs (`--inner-disk`), reports what it measured as JSON."""
    disk = folder / "disk"
    disk.mkdir()
    script = 'mount -t tmpfs -o size=24m tmpfs "$1" && shift && exec "$@"'
    inner = [sys.executable, __file__, "--inner-disk", str(folder), "--seconds", str(seconds)]
    wrappers = ([["unshare", "-m"]] if os.geteuid() == 0 else []) + [["unshare", "-rm"]]
    for wrapper in wrappers:
        done = subprocess.run(
            [*wrapper, "sh", "-c", script, "sh", str(disk), *inner],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if lines:
            return json.loads(lines[-1])
    return {"violations": [f"filling disk: cannot run on a small tmpfs: {done.stderr[-500:]}"]}


def _inner_disk(folder: Path, seconds: float) -> dict:
    def outage(db: Path) -> None:
        filler = db.parent / "filler"
        with open(filler, "wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(bytes(1 << 16))
            except OSError:  # full: from here every new page of the database fails
                pass
        time.sleep(seconds)  # the outage is the scenario: the disk stays full this long
        filler.unlink()

    return _through_outage(folder, folder / "disk" / "audit.db", outage, "filling disk")


def rewritten_chains(folder: Path, db: Path) -> dict:
    """An order row edited in a copy of `db` and the chain recomputed, without the key (the
    chain must not verify) and with it (the heads the trader logged must say REWRITTEN)."""
    caught, violations = 0, []
    log = folder / f"logs-{db.stem}" / "live_trader.log"
    for attempt, key in (
        ("without the key", b"a key the attacker made up"),
        ("with the key", load_key(key_file_for(db))),
    ):
        copy = folder / f"rewritten-{len(attempt)}.db"
        with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
            source.backup(target)  # the WAL's rows too, as a file copy would not
        source.close()
        target.close()
        shutil.copy2(key_file_for(db), key_file_for(copy))
        _rewrite(copy, key)
        done = subprocess.run(
            [sys.executable, "-m", "live.audit_logger", "verify", str(copy), "--anchor", str(log)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        expected = "BROKEN" if attempt == "without the key" else "REWRITTEN"
        if done.returncode == 1 and expected in done.stdout:
            caught += 1
        else:
            violations.append(f"a chain rewritten {attempt} was not caught: {done.stdout}")
    return {"chains_rewritten": 2, "chains_caught": caught, "violations": violations}


def _rewrite(path: Path, key: bytes) -> None:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    for table in CHAINED_TABLES:
        conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
    conn.execute("UPDATE orders SET fill_price = fill_price + 0.001 WHERE id = 2")
    prev = GENESIS_HASH
    for row in conn.execute("SELECT * FROM orders ORDER BY id").fetchall():
        digest = row_hash(prev, [row[c] for c in COLUMNS["orders"]], key)
        conn.execute(
            "UPDATE orders SET prev_hash = ?, row_hash = ? WHERE id = ?", (prev, digest, row["id"])
        )
        prev = digest
    conn.commit()
    conn.close()


# ---------------------------------------------------------------- command line


def run_all(folder: Path, *, attempts: int, lock_seconds: float) -> Figures:
    figures = Figures()
    steps = (
        ("second traders", lambda: second_traders(folder / "second", attempts)),
        ("locked database", lambda: locked_database(folder / "locked", lock_seconds)),
        ("filling disk", lambda: filling_disk(folder / "disk", lock_seconds)),
        (
            "rewritten chains",
            lambda: rewritten_chains(folder / "locked", folder / "locked" / "locked.db"),
        ),
    )
    for sub in ("second", "locked", "disk"):
        (folder / sub).mkdir()
    for name, step in steps:
        started = time.monotonic()
        try:
            figures.add(step())
        except Exception as exc:  # a scenario that cannot run is a finding, not a crash
            figures.violations.append(f"{name}: {type(exc).__name__}: {exc}")
        print(f"  {name}: {time.monotonic() - started:.0f} s", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer attempts, 5 s outages")
    parser.add_argument("--inner-disk", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner_disk:
        print(json.dumps(_inner_disk(args.inner_disk, args.seconds)))
        return 0
    attempts, seconds = (4, 5.0) if args.quick else (20, 20.0)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edge_trials_") as folder:
        f = run_all(Path(folder), attempts=attempts, lock_seconds=seconds)
    print(
        f"edge trials in {time.monotonic() - started:.0f} s:\n"
        f"  duplicates: {f.duplicates}\n"
        f"  positions held past their exit decision during an outage: {f.held_past_exit_bars} "
        f"bars ({f.outage_decisions} decisions checked, {f.outage_exits} exits sent, two "
        f"outages of {seconds:g} s)\n"
        f"  fallback journal rows moved into the database: {f.moved} of {f.journaled}\n"
        f"  second-trader starts refused: {f.second_refused} of {f.second_starts}\n"
        f"  rewritten chains caught: {f.chains_caught} of {f.chains_rewritten}"
    )
    return print_verdict(f.violations)


if __name__ == "__main__":
    sys.exit(main())
