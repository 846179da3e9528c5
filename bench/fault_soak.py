"""Fault soak: the trader acts on thousands of signals against an in-process simulator that
requotes, rejects, times out, loses replies, fills partially and drops the connection; then
the invariants of bench/invariants.py must hold and the execution statistics are printed.

    python bench/fault_soak.py --signals 2000
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.invariants import (  # noqa: E402
    check_orders,
    check_positions_and_trades,
    print_verdict,
)
from live.audit_logger import AuditLogger  # noqa: E402
from live.backtesting_bridge import get_strategy_from_file  # noqa: E402
from live.config import LiveConfig  # noqa: E402
from live.live_trader import LiveTrader  # noqa: E402
from live.mt5_connector import MT5Connector  # noqa: E402
from live.sim_terminal import FaultConfig, SimConfig, SimTerminal  # noqa: E402

SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY")
FAULTS = dict(
    requote_rate=0.1,
    reject_rate=0.02,
    timeout_rate=0.05,
    reply_lost_rate=0.05,
    partial_fill_rate=0.05,
    drop_every_calls=700,
    drop_for_calls=3,
)


@dataclass
class SoakReport:
    """Signals acted on, bars, execution statistics and invariant violations."""

    signals: int = 0
    bars: int = 0
    seconds: float = 0.0
    execution: dict[str, object] = field(default_factory=dict)
    reconnects: int = 0
    violations: list[str] = field(default_factory=list)


def run_soak(signals: int, workdir: Path, *, seed: int = 1) -> SoakReport:
    """Trade until `signals` signals were acted on (or the data ends); check the invariants."""
    config = LiveConfig.load(
        env_file=_empty(workdir),
        environ={},
        overrides={
            "backend": "sim",
            "dry_run": False,
            "symbols": SYMBOLS,
            "sim_speed": "max",
            "audit_db": workdir / "audit.db",
            "log_dir": workdir / "logs",
            "kill_switch_file": workdir / "KILL",
            "max_trades_per_day": 0,
            "max_daily_loss_pct": 0.0,
            "order_retry_base_seconds": 0.0,
            "order_retry_max_seconds": 0.0,
            "order_max_retries": 5,
        },
    )
    terminal = SimTerminal(
        SimConfig(
            symbols=SYMBOLS,
            n_bars=60_000,
            history_bars=200,
            faults=FaultConfig(seed=seed, **FAULTS),
        )
    )
    ticks = itertools.count(step=2.0)  # a reconnection clock that never makes us wait
    connector = MT5Connector(config, api=terminal, monotonic=lambda: float(next(ticks)))
    strategy = get_strategy_from_file(
        ROOT / "backtest/strategies/sma_cross.py", {"fast": 2, "slow": 4}
    )
    trader = LiveTrader(
        config, connector=connector, strategy=strategy, audit=AuditLogger(config.audit_db)
    )
    started = time.monotonic()
    trader.start()
    while trader.summary.signals < signals:
        trader.iterate()
        if trader.connector.ensure_connected().value != "down" and not terminal.sim_step_bar():
            break
    # the faults stop before the final reconciliation: it must reach the broker to settle
    # every order, as the trader's own reconciliation does once the link is back
    terminal.sim_set_faults(**{k: 0 for k in FAULTS})
    terminal.initialize()
    trader.connector.ensure_connected()
    trader.executor.reconcile_pending()
    report = SoakReport(
        signals=trader.summary.signals,
        bars=trader.summary.bars,
        seconds=time.monotonic() - started,
        execution=trader.executor.stats.as_dict(),
        reconnects=trader.last_status.get("metrics", {}).get("reconnects", 0),
    )
    _check(trader, terminal, report)
    trader.audit.close()
    return report


def _check(trader: LiveTrader, terminal: SimTerminal, report: SoakReport) -> None:
    magic = trader.config.magic_number
    deals = [d for d in terminal.history_deals_get(0, 2**40) if d.magic == magic]
    positions = [p for p in terminal.positions_get() if p.magic == magic]
    reader = trader.audit.reader
    report.violations += check_orders(reader, deals)
    violations, _ = check_positions_and_trades(reader, deals, positions, dry_run=False)
    report.violations += violations


def _empty(folder: Path) -> Path:
    path = folder / "empty.env"
    path.touch()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signals", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the faults make every retry log a warning
    with tempfile.TemporaryDirectory(prefix="fault_soak_") as folder:
        report = run_soak(args.signals, Path(folder), seed=args.seed)
    print(
        f"signals {report.signals} on {report.bars} bars in {report.seconds:.1f} s "
        f"({report.signals / report.seconds:.0f} signals/s); reconnects {report.reconnects}"
    )
    print(
        "execution:",
        ", ".join(f"{k} {v}" for k, v in report.execution.items() if not isinstance(v, dict)),
    )
    return print_verdict(report.violations)


if __name__ == "__main__":
    sys.exit(main())
