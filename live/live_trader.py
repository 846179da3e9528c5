"""LiveTrader, the loop; `python live_trader.py --strategy ...` runs its command line
(live/trader_cli.py).

Each iteration: kill switch, connection, positions from the broker (closed ones become trades),
daily limits, then per symbol: on a new closed bar the strategy's decision becomes the
symbol's target; then, every loop, the broker's positions are reconciled with the target
(exits chased, entries on their bar). A failure in one symbol is recorded and the others go
on. The rooms it wires own the rest: market_clock, link_watch, risk_gate, target_book with
reconciler and positions, trade_ledger, symbol_faults, status, session_end. Runnable as
`python live/live_trader.py` from the project root, `python live_trader.py` from `live/`, or
`python -m live.live_trader`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `live` and `backtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from backtest.data import timeframe_seconds
from backtest.prop_rules import load_preset
from backtest.sizing import Sizing
from backtest.strategy import Strategy, StrategyError
from backtest.trading_windows import symbol_currencies
from live.account_guard import AccountGuard
from live.audit_health import AuditHealth
from live.audit_logger import AuditLogger
from live.backtesting_bridge import BacktestingBridge, Decision
from live.config import LiveConfig
from live.control_desk import ControlDesk
from live.errors import AuditWriteError, BrokerError, OutcomeUnknown
from live.link_watch import LinkWatch
from live.market_clock import MarketClock
from live.market_hours import MarketHours
from live.mt5_connector import ConnectionState, MT5Connector
from live.order_executor import OrderExecutor
from live.paper_broker import PaperBroker
from live.positions import Outcome, PositionManager
from live.risk_gate import RiskGate
from live.session_end import anchor_audit_heads, log_record_hint
from live.state_manager import StateManager
from live.status import SessionSummary, StatusReporter
from live.symbol_faults import SymbolFaults
from live.target_book import TargetBook
from live.trade_ledger import TradeLedger

logger = logging.getLogger("live.live_trader")


class NullAlerts:
    """Used when no alert channel is configured."""

    def notify(self, kind: str, text: str, *, severity: str = "info", **data: Any) -> None:
        return None

    def close(self) -> None:
        return None


class LiveTrader:
    """The loop: the rooms (market clock, risk gate, target book and position manager, trade
    ledger, status) wired over one broker, strategy and audit log, run in order each pass."""

    def __init__(
        self,
        config: LiveConfig,
        *,
        connector: MT5Connector,
        strategy: Strategy,
        audit: AuditLogger,
        alerts: Any = None,
        sleep: Callable[[float], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
        calendar: pd.DataFrame | None = None,
    ) -> None:
        self.config = config
        self.connector = connector
        self.strategy = strategy
        self.audit = audit
        self.alerts = alerts or NullAlerts()
        self._stop = threading.Event()
        sleep = sleep or self._stop.wait
        self.clock = MarketClock(connector, config, wall_clock=wall_clock, sleep=sleep)
        audit.use_clock(self.clock.now)
        self.broker: Any = (
            PaperBroker(connector, audit, now=self.clock.now) if config.dry_run else connector
        )
        self.state = StateManager(config, audit, now=self.clock.now, broker_clock=connector.clock)
        self.audit_health = AuditHealth(audit, self.state, self.alerts, wall_clock=wall_clock)
        self.executor = OrderExecutor(self.broker, audit, config, sleep=sleep, now=self.clock.now)
        sizing = Sizing(
            mode=config.sizing_mode, lots=config.lot_size, risk_percent=config.risk_percent
        )
        self.market_hours = MarketHours(
            config,
            zone=lambda: connector.clock.zone,
            currencies=lambda symbol: symbol_currencies(connector.symbol_spec(symbol)),
            now=self.clock.now,
            calendar=calendar,
        )
        self.bridge = BacktestingBridge(
            strategy,
            self.broker,
            timeframe=config.timeframe,
            lookback=config.bars_lookback,
            sizing=sizing,
            market=self.market_hours,
        )
        self._bar_seconds = timeframe_seconds(config.timeframe)
        self._wire_rooms()
        self._bar_times: set[datetime] = set()
        self._first_decided: set[str] = set()  # symbols decided on since the start

    def _wire_rooms(self) -> None:
        config, audit, health, alerts = self.config, self.audit, self.audit_health, self.alerts
        self.targets = TargetBook()
        self.risk = RiskGate(
            config,
            self.state,
            health=health,
            alerts=alerts,
            on_change=lambda: self.status.changed(),
            request_stop=self.request_stop,
            guard=self._account_guard(),
        )
        self.status = StatusReporter(
            config,
            audit=audit,
            health=health,
            broker=self.broker,
            state=self.state,
            risk=self.risk,
            clock=self.clock,
            describe=self._describe,
            extras=self._status_extras,
        )
        self.ledger = TradeLedger(
            self.broker,
            audit,
            health=health,
            alerts=alerts,
            stamp=self.clock.stamp,
            on_change=self.status.changed,
            summary=self.status.summary,
        )
        self.positions = PositionManager(
            config,
            broker=self.broker,
            executor=self.executor,
            bridge=self.bridge,
            strategy=self.strategy,
            state=self.state,
            risk=self.risk,
            ledger=self.ledger,
            audit=audit,
            health=health,
            clock=self.clock,
            summary=self.status.summary,
            alerts=alerts,
            on_change=self.status.changed,
            bar_seconds=self._bar_seconds,
        )
        self.link = LinkWatch(
            self.connector,
            executor=self.executor,
            status=self.status,
            health=health,
            alerts=alerts,
        )
        self.faults = SymbolFaults(
            max_strategy_failures=config.strategy_max_failures,
            summary=self.status.summary,
            health=health,
            alerts=alerts,
            withdraw=self.positions.remove_waiting_entries,
            changed=self.status.changed,
        )
        self.control = ControlDesk(
            config,
            state=self.state,
            close=self.positions.close,
            all_positions=self.connector.all_positions,
            audit=audit,
            health=health,
        )

    def _account_guard(self) -> AccountGuard | None:
        """The ACCOUNT_RULES preset's guard (None when the setting is empty)."""
        if not self.config.account_rules:
            return None
        return AccountGuard(
            load_preset(self.config.account_rules),
            self.audit.reader,
            record=self.audit.record_event,
            zone=lambda: self.connector.clock.zone,
            now=self.clock.now,
            account_size=self.config.account_size,
        )

    @property
    def mode(self) -> str:
        return "dry-run" if self.config.dry_run else "live"

    @property
    def summary(self) -> SessionSummary:
        return self.status.summary

    @property
    def last_status(self) -> dict[str, Any]:
        return self.status.last_status

    def now(self) -> datetime:
        """Market time (see MarketClock)."""
        return self.clock.now()

    def status_text(self) -> str:
        return self.status.status_text()

    def positions_text(self) -> str:
        return self.status.positions_text()

    def daily_text(self) -> str:
        return self.status.daily_text()

    def _describe(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "backend": self.connector.backend,
            "strategy": self.strategy.label(),
        }

    def _status_extras(self) -> dict[str, object]:
        return {
            "paused_symbols": self.faults.paused,
            "targets": self.targets.summary(),
            "metrics": {"alert_queue_depth": _queue_depth(self.alerts)},
            "execution": self.executor.stats.as_dict(),
            "market": self._market_status(),
            "account_rules": self.risk.guard.describe() if self.risk.guard else None,
        }

    def _market_status(self) -> dict[str, object]:
        """The broker's clock, the window rules and the next news blackouts (dashboard)."""
        try:
            status = self.market_hours.describe(self.clock.now())
            status["broker_clock"] = self.connector.clock.source
        except Exception as exc:  # never stops the heartbeat (a link down, a clock away)
            return {"error": f"{type(exc).__name__}: {exc}"}
        status["closed_sessions"] = self.market_hours.closed_symbols
        return status

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect, guard, reconcile orders and adopt positions, before the first new bar."""
        if not self.connector.connected:
            self.connector.connect()
        account = self.connector.account()
        self.risk.guard_at_start(account)
        for symbol in self.config.symbols:
            self.connector.symbol_info(symbol)  # unknown symbol -> BrokerError at start
        self.clock.resume_after(self.state.last_decided_bar(), self._bar_seconds)
        results = self.executor.reconcile_pending()
        self.state.sync_positions(self.broker.positions())  # adopt; nothing is "gone" yet
        self.positions.settle_placed()  # pending entries that filled or expired meanwhile
        self.ledger.backfill()
        kill = self.state.update_kill_switch()
        text = self._startup_text(account)
        self.audit.record_event(
            "startup",
            text,
            data={
                "mode": self.mode,
                "backend": self.connector.backend,
                "strategy": self.strategy.label(),
                "symbols": list(self.config.symbols),
                "strategy_source": type(self.strategy).source,
                "strategy_params": self.strategy.params,
                "timeframe": self.config.timeframe,
                "reconciled": len(results),
                "adopted_positions": len(self.state.positions),
                "kill_switch_file": str(self.config.kill_switch_file),
                **self.clock.startup_record(),
            },
        )
        logger.info(text)
        logger.info(
            "kill switch: touch %s to halt (write reduce or close_all in it for those levels)",
            self.config.kill_switch_file,
        )
        self.alerts.notify("startup", text)
        if self.state.kill_switch.blocks_entries:
            logger.warning("kill switch active at start: %s", self.state.kill_switch.level)
        elif kill is not None:
            logger.warning("kill switch removed while the trader was down: trading resumes")

    def _startup_text(self, account: Any) -> str:
        return (
            f"{self.mode} trading {self.strategy.label()} on "
            f"{','.join(self.config.symbols)} {self.config.timeframe} via "
            f"{self.connector.backend}; account {account.login} ({account.server}), "
            f"balance {account.balance:,.2f} {account.currency}; "
            f"{len(self.state.positions)} open position(s) adopted"
        )

    def request_stop(self, reason: str = "stop requested") -> None:
        self.summary.stop_reason = self.summary.stop_reason or reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> SessionSummary:
        """start(), then iterate until stopped, max bars reached or the replay ends."""
        self.start()
        try:
            while not self.stopping:
                self.iterate()
                if self.config.max_bars and self.summary.bars >= self.config.max_bars:
                    self.request_stop(f"--max-bars {self.config.max_bars} reached")
                    break
                ended = self.clock.next_turn(link_down=self.link.down)
                if ended:
                    self.request_stop(ended)
        finally:
            self.shutdown()
        return self.summary

    def shutdown(self) -> None:
        self.summary.stop_reason = self.summary.stop_reason or "stopped"
        self.status.changed()  # the final state, whatever the interval
        self.status.heartbeat(self.connector.ensure_connected() is not ConnectionState.DOWN)
        lines = self.summary.lines(self.executor.stats.as_dict(), self.mode)
        for line in lines:
            logger.info(line)
        try:
            self.audit.record_event("shutdown", self.summary.stop_reason, data={"summary": lines})
        except AuditWriteError:
            logger.error("could not record the shutdown event")
        lines += anchor_audit_heads(self.audit.reader)
        self.alerts.notify("shutdown", "\n".join(lines))
        self.alerts.close()
        self.connector.shutdown()
        log_record_hint(self.config.audit_db)

    # ------------------------------------------------------------ one iteration

    def iterate(self) -> int:
        """One pass of the loop; returns the number of (symbol, closed bar) decisions made."""
        started = time.monotonic()
        self.summary.iterations += 1
        with self.clock.iteration():
            self.risk.check_kill_switch()
            self.audit_health.maybe_recover()
            connected = self.link.check()
            made = self._trade_once() if connected else 0
            self.status.metrics.loop_seconds = time.monotonic() - started
            self.status.heartbeat(connected)
        return made

    def _trade_once(self) -> int:
        try:
            if self.config.dry_run:  # the paper broker fires its stops on the closed bars
                self.broker.update_stops(self.config.timeframe, self._bar_seconds)
            self.positions.sync()
            self.state.sync_foreign(self.connector.all_positions(), self.config.magic_number)
            self.control.serve()  # a close asked from the dashboard: within this loop
            if self.risk.kill_level == "close_all":
                self.positions.close_all()
            account = self.broker.account()
            if not self.risk.account_allowed(account):
                return 0
            self._protect_account(account)
            self.risk.check_daily_limits(float(account.equity))
            blocked = self.risk.entry_blocker()
            if blocked and self.state.pending:  # every symbol's, reconciled or not
                self.positions.remove_waiting_entries(f"entries blocked ({blocked})")
        except (BrokerError, OSError) as exc:
            logger.warning("skipping this iteration: %s", exc)
            return 0
        except AuditWriteError as exc:
            self.audit_health.failed(exc)
            return 0
        made = sum(self._process_symbol_safely(symbol) for symbol in self.config.symbols)
        self.status.snapshot()
        return made

    def _protect_account(self, account: Any) -> None:
        """The account rules on this loop's equity: on a fail-type breach close everything
        first (never waiting for the disk), then halt, alert and record, in that order."""
        breach = self.risk.check_account_rules(account)
        try:
            if self.risk.rules_flatten and (self.state.positions or self.state.pending):
                self.positions.close_all(self.risk.guard.blocker() or "account rules")
        finally:
            if breach is not None:
                self.risk.announce(breach)

    # ------------------------------------------------------------ per symbol

    def _process_symbol_safely(self, symbol: str) -> int:
        """One symbol's turn; whatever goes wrong is recorded and the other symbols go on."""
        try:
            return self._process_symbol(symbol)
        except AuditWriteError as exc:
            self.audit_health.failed(exc)
            return 0
        except OutcomeUnknown as exc:
            self.faults.failed(symbol, "outcome_unknown", str(exc), "critical")
            return 0
        except StrategyError as exc:
            self.faults.failed(symbol, "strategy_error", f"{exc}; skipped for this bar")
            return 0
        except Exception as exc:  # any other fault stays in this symbol: the loop goes on
            logger.debug("%s failed", symbol, exc_info=True)
            self.faults.failed(symbol, "symbol_error", f"{type(exc).__name__}: {exc}")
            return 0

    def _process_symbol(self, symbol: str) -> int:
        """Decide on a new closed bar (or, first thing after a start, on the last one), then
        reconcile the symbol's positions with the target: every loop, so exits are chased."""
        if self.faults.is_paused(symbol):
            return self._paused_bar(symbol)
        bars = self.bridge.latest_bars(symbol)
        bar_time = bars["time"].iloc[-1].to_pydatetime()
        new_bar = self.state.is_new_bar(symbol, bar_time)
        decision = self.targets.decision(symbol)
        seen_at, sends_before = time.monotonic(), self.executor.stats.last_send_at
        if new_bar or (decision is None and symbol not in self._first_decided):
            self._first_decided.add(symbol)
            try:
                decision = self.bridge.decide(symbol, bars)
            except StrategyError as exc:
                if not new_bar:
                    raise
                self._strategy_failed(symbol, bar_time, exc)
                return 0
            self.faults.recovered(symbol)  # this symbol works again
            self.targets.update(decision)
        if decision is None:  # no target yet (the last decision failed): nothing to reconcile
            return 0
        outcome = self._reconcile_in_session(decision, fresh=new_bar)
        if not new_bar:
            return 0
        self.state.mark_processed(symbol, decision.bar_time)  # decided, recorded or not
        self._count_bar(decision)
        if self.executor.stats.last_send_at != sends_before:
            self.status.metrics.latency(1000.0 * (self.executor.stats.last_send_at - seen_at))
        self.audit.record_signal(
            symbol=symbol,
            bar_time=decision.bar_time,
            action=outcome.action,
            outcome=outcome.outcome,
            timeframe=self.config.timeframe,
            strategy=self.strategy.label(),
            position=decision.position,
            entry=decision.entry,
            client_order_id=outcome.client_order_id,
            fallback=outcome.action != "none",  # a decision that acted is kept through an outage
        )
        return 1

    def _reconcile_in_session(self, decision: Decision, *, fresh: bool) -> Outcome:
        """Reconcile while the symbol's session is open; while it is closed the server would
        answer 10018, so nothing is sent (the decision is kept for the reopening)."""
        symbol, now = decision.symbol, self.clock.now()
        if not self.market_hours.gate(symbol, now, self.clock.stamp()):
            return Outcome("none", "market closed")
        outcome = self.positions.reconcile(decision, fresh=fresh)
        mismatch = self.market_hours.broker_said(symbol, now, outcome.outcome)
        if mismatch:
            self.audit_health.event("session_mismatch", mismatch, level="warning", symbol=symbol)
        return outcome

    def _count_bar(self, decision: Decision) -> None:
        self._count_bar_time(decision.bar_time)
        if decision.act:
            self.summary.signals += 1

    def _count_bar_time(self, bar_time: datetime) -> None:
        """Closed bars processed (decided, failed or skipped), counted once over symbols."""
        if bar_time not in self._bar_times:
            self._bar_times.add(bar_time)
            self.summary.bars += 1
            if len(self._bar_times) > 10_000:  # only recent bars matter; keep memory flat
                self._bar_times = {max(self._bar_times)}

    def _strategy_failed(self, symbol: str, bar_time: datetime, exc: StrategyError) -> None:
        """A failed bar counts as processed (skip this bar, not every loop); the faults
        record it and pause the symbol after STRATEGY_MAX_FAILURES in a row."""
        self.state.mark_processed(symbol, bar_time)
        self._count_bar_time(bar_time)
        self.faults.strategy_failed(symbol, bar_time, exc)

    def _paused_bar(self, symbol: str) -> int:
        """A paused symbol's closed bars still count (a --max-bars run ends); nothing else."""
        bar_time = self.bridge.latest_bars(symbol)["time"].iloc[-1].to_pydatetime()
        if self.state.is_new_bar(symbol, bar_time):
            self.state.mark_processed(symbol, bar_time)
            self._count_bar_time(bar_time)
        return 0


def _queue_depth(alerts: Any) -> int:
    depth = getattr(alerts, "queue_depth", None)
    return int(depth()) if callable(depth) else 0


if __name__ == "__main__":
    from live.trader_cli import main

    sys.exit(main())
