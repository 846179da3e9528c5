"""Crash trials: kill the trader with SIGKILL at random moments while it trades a served
simulator over mt5linux, restart it, and check that nothing was sent twice or lost.

    python bench/crash_trials.py --trials 200

Each trial starts `live/live_trader.py --live` against one long-lived simulator (its state
outlives every trader) and kills it either the moment a send is announced (an `intent` or
`resend` row persisted: the send about to go or in flight) or after a random number of new
order rows plus a random few milliseconds. The simulator also loses replies, times out and
requotes (DEFAULT_FAULTS). After the last trial a clean run reconciles, then:
  - no client_order_id was executed twice at the broker (one deal per order comment);
  - every deal of the trader's magic has its order row in the audit DB (persisted before sent);
  - no order is left unresolved; at most one open position per symbol;
  - every closed position has exactly one trade row; the audit hash chains verify;
  - after every restart, once its first loop is done, each symbol's positions are the
    strategy's target, or the loop recorded why not (an entry not chased, an order refused).
`--managed` trades a strategy that moves its stops to break-even, exits partly and on time
(one trade row per exit deal then); `--pending` one that enters with buy and sell stop
orders that wait, expire or fill at the server. `--netting` runs the trials on a netting account;
`--broker-faults` adds a server that cuts or
rewrites comments, lags its history and fills market orders without their stops (which the
trader then sets again: stop modifications happen under the kills too). `--rules` trades
under a tight daily floor (RULES_PRESET: breaches come often), and checks that no entry is
sent while a breach holds and that no snapshot at or below the floor goes without a breach.
"""

from __future__ import annotations

import argparse
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.invariants import (  # noqa: E402
    check_account_rules,
    check_orders,
    check_positions_and_trades,
    check_restarts,
    print_verdict,
)
from live.audit_reader import AuditReader  # noqa: E402
from live.sim_terminal.launch import start_served_sim  # noqa: E402

MAGIC = 240_601
SYMBOLS = "EURUSD,GBPUSD"
# Lost replies and timeouts are what make naive traders send twice; requotes force retries.
DEFAULT_FAULTS = "requote_rate=0.05,reply_lost_rate=0.05,timeout_rate=0.03"
# Servers that keep no usable comment, lag their history and drop stops from market orders.
BROKER_FAULTS = (
    "comment_rewrite_rate=0.25,comment_truncate_rate=0.25,history_lag_rate=0.2,"
    "stops_ignored_rate=0.5"
)
# --rules: a daily floor 1 USD under the day's balance (0.01 lots: 10 pips), reset at the
# server's midnight; a breach closes everything and halts until then. The strategy trades
# without stops there: with them, the check before an entry keeps it off the floor.
RULES_STRATEGY = ROOT / "backtest" / "strategies" / "sma_cross.py"
RULES_FLOOR = 1.0
RULES_PRESET = f"""
[daily_floor]
limit_amount = {RULES_FLOOR}
of = "day_base"
day_base = "balance"
reset = "00:00 broker"
effect = "fail"
"""
STRATEGY = ROOT / "bench" / "strategies" / "sma_cross_stops.py"
STRATEGY_PARAMS = ("fast=2", "slow=4")
# --managed: stops moved to break-even, partial exits and time exits, all under the kills
MANAGED = ROOT / "backtest" / "strategies" / "breakeven_partial.py"
MANAGED_PARAMS = ("fast=2", "slow=4", "atr_period=3", "atr_stop=2.0", "partial_r=1.0",
                  "max_bars=8")  # fmt: skip
# --pending: buy/sell stop entries that wait, fill at the server, expire or are replaced
PENDING = ROOT / "backtest" / "strategies" / "pending_breakout.py"
PENDING_PARAMS = ("channel=4", "fast=2", "slow=6", "atr_period=3", "buffer_atr=0.0",
                  "expiry_bars=2", "max_bars=6")  # fmt: skip


@dataclass
class TrialReport:
    """What the trials did and every invariant that did not hold (empty = all held)."""

    trials: int = 0
    killed_mid_run: int = 0
    orders_rows: int = 0
    broker_deals: int = 0
    closed_positions: int = 0
    restarts_checked: int = 0
    stop_changes: int = 0
    breaches: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_trials(
    trials: int,
    workdir: Path,
    *,
    seed: int = 1,
    max_orders_before_kill: int = 6,
    faults: str = DEFAULT_FAULTS,
    netting: bool = False,
    managed: bool = False,
    pending: bool = False,
    server_tz: str = "NY+7",
    rules: bool = False,
) -> TrialReport:
    """Run `trials` kill/restart cycles in `workdir` against a simulator injecting `faults`
    (on a netting account with `netting`; trading the managed strategy with `managed`)."""
    rng = random.Random(seed)
    started = time.monotonic()
    served = start_served_sim(
        workdir / "sim_state.json",
        "--symbols",
        SYMBOLS,
        "--faults",
        f"seed={seed},{faults}" if faults else "",
        *(["--netting"] if netting else []),
        "--server-tz",
        server_tz,
        bars=20_000,
        history_bars=200,
    )
    # managed: 0.1 lots, so half of a position is a volume of its own (0.005 would close it)
    strategy = (MANAGED, MANAGED_PARAMS, 0.1) if managed else (STRATEGY, STRATEGY_PARAMS, 0.01)
    if pending:
        strategy = (PENDING, PENDING_PARAMS, 0.01)
    if rules:
        strategy = (RULES_STRATEGY, STRATEGY_PARAMS, 0.01)
    settings = _settings(workdir, served.port, *strategy)
    if rules:
        (workdir / "rules.toml").write_text(RULES_PRESET)
        with settings.open("a") as handle:
            handle.write(f"ACCOUNT_RULES={workdir / 'rules.toml'}\nSNAPSHOT_SECONDS=1\n")
    report = TrialReport()
    try:
        for _ in range(trials):
            report.killed_mid_run += _one_trial(
                settings, workdir / "audit.db", rng, max_orders_before_kill
            )
            report.trials += 1
        final = _trader(settings, "--max-bars", "3")
        if final.wait(timeout=120) != 0:
            report.violations.append(f"final clean run exited {final.returncode}")
        _check(workdir / "audit.db", served.port, report)
        if rules:
            violations, report.breaches = check_account_rules(
                AuditReader(workdir / "audit.db"), RULES_FLOOR
            )
            report.violations += violations
    finally:
        served.stop()
    report.seconds = time.monotonic() - started
    return report


def _settings(
    workdir: Path, port: int, strategy: Path, params: tuple[str, ...], lots: float
) -> Path:
    path = workdir / "trials.env"
    path.write_text(
        f"AUDIT_DB={workdir / 'audit.db'}\nLOG_DIR={workdir / 'logs'}\n"
        f"KILL_SWITCH_FILE={workdir / 'KILL'}\nLOCK_DIR={workdir / 'locks'}\n"
        "MT5_BACKEND=mt5linux\n"
        f"MT5LINUX_PORT={port}\nMAGIC_NUMBER={MAGIC}\nSYMBOLS={SYMBOLS}\n"
        "MAX_TRADES_PER_DAY=0\nMAX_DAILY_LOSS_PCT=0\nORDER_RETRY_BASE_SECONDS=0\n"
        "ORDER_RETRY_MAX_SECONDS=0\nLOG_LEVEL=WARNING\n"
        f"STRATEGY_PATH={strategy}\nSTRATEGY_PARAMS={','.join(params)}\nLOT_SIZE={lots}\n"
    )
    return path


def _trader(settings: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable,
        str(ROOT / "live" / "live_trader.py"),
        "--config",
        str(settings),
        "--live",
        "--sim-speed",
        "max",
        *extra,
    ]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _one_trial(settings: Path, db: Path, rng: random.Random, max_orders: int) -> int:
    """One run, killed at once when a send is announced (intent or resend row: the send is
    about to go or in flight) or after a random number of new order rows plus a few milliseconds.
    Returns 1 if it died mid-run."""
    on_intent = rng.random() < 0.5
    query = "orders WHERE status IN ('intent', 'resend')" if on_intent else "orders"
    target = _count(db, query) + (1 if on_intent else rng.randint(1, max_orders))
    process = _trader(settings)
    deadline = time.monotonic() + 120
    while process.poll() is None and _count(db, query) < target:
        if time.monotonic() > deadline:
            break
        time.sleep(0.001)
    if not on_intent:
        time.sleep(rng.uniform(0.0, 0.03))  # lands anywhere in the next order's life
    alive = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return int(alive)


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not created yet


def _check(db: Path, port: int, report: TrialReport) -> None:
    from mt5linux import MetaTrader5

    terminal = MetaTrader5(host="127.0.0.1", port=port)
    terminal.initialize()
    deals = [
        d
        for d in terminal.history_deals_get(
            datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        )
        if d.magic == MAGIC
    ]
    positions = [p for p in (terminal.positions_get() or ()) if p.magic == MAGIC]
    reader = AuditReader(db)
    report.orders_rows = reader.count("orders")
    report.broker_deals = len(deals)
    report.violations += check_orders(reader, deals)
    restarts, report.restarts_checked = check_restarts(reader)
    report.violations += restarts
    report.stop_changes = reader.query(
        "SELECT count(DISTINCT client_order_id) AS n FROM orders WHERE kind = 'modify' "
        "AND status IN ('filled', 'reconciled_filled')"
    )[0]["n"]
    violations, report.closed_positions = check_positions_and_trades(
        reader, deals, positions, dry_run=False
    )
    report.violations += violations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help="simulator fault knobs")
    parser.add_argument("--netting", action="store_true", help="a netting account")
    parser.add_argument(
        "--broker-faults",
        action="store_true",
        help="also comments cut or rewritten, a lagging history, stops left out",
    )
    parser.add_argument(
        "--pending",
        action="store_true",
        help="trade backtest/strategies/pending_breakout.py: pending entries that expire",
    )
    parser.add_argument(
        "--managed",
        action="store_true",
        help="trade backtest/strategies/breakeven_partial.py: moving stops, partial and time exits",
    )
    parser.add_argument(
        "--server-tz",
        default="NY+7",
        help="the served simulator's clock (default NY+7; the trader reads it, BROKER_TZ=auto)",
    )
    parser.add_argument(
        "--rules",
        action="store_true",
        help="under a tight daily floor that closes and halts (RULES_PRESET)",
    )
    args = parser.parse_args()
    faults = f"{args.faults},{BROKER_FAULTS}" if args.broker_faults else args.faults
    with tempfile.TemporaryDirectory(prefix="crash_trials_") as folder:
        report = run_trials(
            args.trials,
            Path(folder),
            seed=args.seed,
            faults=faults,
            netting=args.netting,
            managed=args.managed,
            pending=args.pending,
            server_tz=args.server_tz,
            rules=args.rules,
        )
    print(
        f"trials {report.trials} (killed mid-run {report.killed_mid_run}) in "
        f"{report.seconds:.0f} s on a {'netting' if args.netting else 'hedging'} account; "
        f"order rows {report.orders_rows}, broker deals {report.broker_deals}, closed "
        f"positions {report.closed_positions}, stop changes {report.stop_changes}, restarts "
        f"checked one loop after start {report.restarts_checked}"
        + (f", account-rule breaches {report.breaches}" if args.rules else "")
    )
    return print_verdict(report.violations)


if __name__ == "__main__":
    sys.exit(main())
