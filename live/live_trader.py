"""LiveTrader, the orchestrator loop, and the command line `python live_trader.py --strategy ...`.

Each iteration: kill switch, connection, positions from the broker (closed ones become trades),
daily limits, then per symbol: decision on the last closed bar -> sizing -> request -> checks
-> execution -> state -> audit. A failure in one symbol is recorded and the others go on.
Runnable as `python live/live_trader.py` from the project root or `python live_trader.py`
from `live/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `live` and `backtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backtest.data import DataError, timeframe_seconds
from backtest.sizing import Sizing
from backtest.strategy import Strategy, StrategyError
from live.audit_chain import HEADS_LOG_PREFIX, head_text
from live.audit_health import AuditHealth
from live.audit_logger import AuditLogger
from live.backtesting_bridge import (
    BacktestingBridge,
    Decision,
    PrecheckFailed,
    build_close_request,
    build_order_request,
    estimated_margin,
    get_strategy_from_file,
    simulate_precheck,
    stop_levels,
)
from live.broker_types import (
    ACCOUNT_TRADE_MODE_REAL,
    DEAL_ENTRY_IN,
    DEAL_REASON_SL,
    DEAL_REASON_TP,
    DEAL_TYPE_BUY,
    POSITION_TYPE_BUY,
)
from live.config import PROJECT_ROOT, LiveConfig, setup_logging
from live.errors import (
    AuditWriteError,
    BrokerError,
    BrokerUnavailable,
    ConfigError,
    OrderRejected,
    OutcomeUnknown,
)
from live.instance_lock import account_lock, database_lock, needs_account_lock
from live.mt5_connector import ConnectionState, MT5Connector
from live.order_executor import (
    ExecutionResult,
    OrderExecutor,
    OrderIntent,
    make_client_order_id,
)
from live.paper_broker import PaperBroker
from live.state_manager import StateManager

logger = logging.getLogger("live.live_trader")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
HEARTBEAT_WALL_SECONDS = 60.0  # and at once whenever the book, the switch or the link changes


class NullAlerts:
    """Used when no alert channel is configured."""

    def notify(self, kind: str, text: str, *, severity: str = "info", **data: Any) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class SessionSummary:
    """What one run did, printed at shutdown."""

    started_wall: float = field(default_factory=time.time)
    iterations: int = 0
    bars: int = 0
    signals: int = 0
    entries: int = 0
    exits: int = 0
    refused: int = 0
    errors: int = 0
    trades_closed: int = 0
    realized_pnl: float = 0.0
    stop_reason: str = ""

    def lines(self, execution: dict[str, object], mode: str) -> list[str]:
        runtime = time.time() - self.started_wall
        return [
            f"session summary ({mode}), {runtime:.1f} s, stopped: {self.stop_reason}",
            f"  loop iterations {self.iterations}, closed bars {self.bars}, "
            f"signals acted on {self.signals}",
            f"  entries {self.entries}, exits {self.exits}, refused {self.refused}, "
            f"symbol errors {self.errors}",
            f"  trades closed {self.trades_closed}, realized P/L {self.realized_pnl:,.2f}",
            f"  orders {execution['orders']}: filled {execution['filled']}, rejected "
            f"{execution['rejected']}, failed {execution['failed']}, retries "
            f"{execution['retries']}, duplicates suppressed {execution['duplicates_suppressed']}",
        ]


class LiveTrader:
    """Wires broker, strategy, executor, state and audit together and runs the loop."""

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
    ) -> None:
        self.config = config
        self.connector = connector
        self.strategy = strategy
        self.audit = audit
        self.alerts = alerts or NullAlerts()
        audit.use_clock(self.now)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._wall = wall_clock
        self.broker: Any = (
            PaperBroker(connector, audit, now=self.now) if config.dry_run else connector
        )
        self.state = StateManager(config, audit, now=self.now)
        self.audit_health = AuditHealth(audit, self.state, self.alerts, wall_clock=wall_clock)
        self.executor = OrderExecutor(self.broker, audit, config, sleep=self._sleep, now=self.now)
        self.summary = SessionSummary()
        self.sizing = Sizing(
            mode=config.sizing_mode, lots=config.lot_size, risk_percent=config.risk_percent
        )
        self.bridge = BacktestingBridge(
            strategy,
            self.broker,
            timeframe=config.timeframe,
            lookback=config.bars_lookback,
            sizing=self.sizing,
        )
        self._bar_seconds = timeframe_seconds(config.timeframe)
        self._last_snapshot: datetime | None = None
        self._last_heartbeat = 0.0
        self._link_down = False
        self._in_iteration = False
        self._iteration_clock: datetime | None = None
        self._last_market: datetime | None = None  # the simulator's clock, last seen
        self._unrecorded: set[int] = set()  # closed positions whose trade row is not written
        self._login = 0  # the account the trader started on
        self._failures: dict[str, tuple] = {}  # symbol -> its last (kind, message, bar)
        self._strategy_failures: dict[str, int] = {}  # symbol -> failed bars in a row
        self._paused: dict[str, str] = {}  # symbol -> why it was paused
        self._bar_times: set[datetime] = set()
        self._loop_seconds = 0.0
        self._latencies_ms: list[float] = []
        self._reconnects = 0
        self.last_status: dict[str, Any] = {}

    @property
    def mode(self) -> str:
        return "dry-run" if self.config.dry_run else "live"

    def now(self) -> datetime:
        """Market time: the simulator's clock when simulated, else UTC wall time.

        In lockstep the simulated clock cannot move during an iteration (only the loop steps
        it, between iterations), so it is read once per iteration, not once per audit row:
        over mt5linux every read is a network round trip. While a simulator cannot be reached
        its clock is taken to stand where it was last seen, so every row of a simulated
        session stays on the one market clock (never the wall clock of a replay).
        """
        if self._iteration_clock is not None:
            return self._iteration_clock
        if self.connector.is_simulator:
            try:
                moment = datetime.fromtimestamp(float(self.connector.sim_call("sim_time")), tz=UTC)
            except (BrokerError, OSError, EOFError):
                if self._last_market is not None:
                    return self._last_market
            else:
                self._last_market = moment
                if self._in_iteration and self.config.sim_lockstep:
                    self._iteration_clock = moment
                return moment
        return datetime.fromtimestamp(self._wall(), tz=UTC)

    @property
    def clock_name(self) -> str:
        """Which clock stamps this session's rows (shown by the dashboard)."""
        return "simulated market time (UTC)" if self.connector.is_simulator else "UTC"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Connect, guard, reconcile and adopt positions, before the first new signal."""
        if not self.connector.connected:
            self.connector.connect()
        account = self.connector.account()
        self._guard_real_account(account)
        self._login = int(account.login)
        for symbol in self.config.symbols:
            self.connector.symbol_info(symbol)  # unknown symbol -> BrokerError at start
        self._resume_simulated_market()
        results = self.executor.reconcile_pending()
        self.state.sync_positions(self.broker.positions())  # adopt; nothing is "gone" yet
        self._backfill_trades()
        kill = self.state.update_kill_switch()
        self.audit.record_event(
            "startup",
            self._startup_text(account),
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
                **self._simulator_record(),
            },
        )
        logger.info(self._startup_text(account))
        logger.info(
            "kill switch: touch %s to halt (write reduce or close_all in it for those levels)",
            self.config.kill_switch_file,
        )
        self.alerts.notify("startup", self._startup_text(account))
        if self.state.kill_switch.blocks_entries:
            logger.warning("kill switch active at start: %s", self.state.kill_switch.level)
        elif kill is not None:
            logger.warning("kill switch removed while the trader was down: trading resumes")

    def _market_stamp(self) -> str:
        """'[2020-03-09 09:00 market] ' on a simulator, whose clock is not the wall clock."""
        if not self.connector.is_simulator:
            return ""
        return f"[{self.now():%Y-%m-%d %H:%M} market] "

    def _resume_simulated_market(self) -> None:
        """The in-process simulator's market restarts with every process; move its clock to
        where the audit log's last decision left it, so a second run goes on from there
        instead of waiting, silent, through bars it already decided on."""
        last = self.state.last_decided_bar()
        if self.connector.backend != "sim" or last is None:
            return
        resume_at = last + timedelta(seconds=self._bar_seconds)
        if resume_at > self.now():
            self.connector.sim_call("sim_set_time", resume_at.timestamp())
            logger.info(
                "simulated market resumed at %s, after the last bar decided in %s",
                resume_at.isoformat(),
                self.config.audit_db,
            )

    def _startup_text(self, account: Any) -> str:
        return (
            f"{self.mode} trading {self.strategy.label()} on "
            f"{','.join(self.config.symbols)} {self.config.timeframe} via "
            f"{self.connector.backend}; account {account.login} ({account.server}), "
            f"balance {account.balance:,.2f} {account.currency}; "
            f"{len(self.state.positions)} open position(s) adopted"
        )

    def _guard_real_account(self, account: Any) -> None:
        real = int(account.trade_mode) == ACCOUNT_TRADE_MODE_REAL
        if real and not self.config.dry_run and not self.config.allow_real_account:
            raise ConfigError(
                f"account {account.login} is a REAL account; refusing to send orders. Set "
                "ALLOW_REAL_ACCOUNT=true to trade it, or run with --dry-run"
            )
        if real:
            logger.warning(
                "account %s is a REAL account (%s)",
                account.login,
                "dry run: nothing will be sent"
                if self.config.dry_run
                else "ALLOW_REAL_ACCOUNT=true: orders WILL be sent",
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
                if self._reached_max_bars():
                    self.request_stop(f"--max-bars {self.config.max_bars} reached")
                    break
                if not self._advance():
                    break
        finally:
            self.shutdown()
        return self.summary

    def _advance(self) -> bool:
        """Wait for the next iteration: step the simulator in lockstep, else sleep."""
        if self.connector.is_simulator and self.config.sim_lockstep:
            if self._link_down:
                self._sleep(min(self.config.interval_seconds, 1.0))
                return not self.stopping
            try:
                more = bool(self.connector.sim_call("sim_step_bar"))
            except (BrokerError, OSError, EOFError) as exc:
                logger.warning("simulator step failed: %s", exc)
                return not self.stopping
            if not more:
                self.request_stop("end of the simulated data")
            return more
        self._sleep(self.config.interval_seconds)
        return not self.stopping

    def _reached_max_bars(self) -> bool:
        return bool(self.config.max_bars) and self.summary.bars >= self.config.max_bars

    def shutdown(self) -> None:
        self.summary.stop_reason = self.summary.stop_reason or "stopped"
        self._last_heartbeat = 0.0  # the final state, whatever the interval
        self._heartbeat(self.connector.ensure_connected() is not ConnectionState.DOWN)
        lines = self.summary.lines(self.executor.stats.as_dict(), self.mode)
        for line in lines:
            logger.info(line)
        try:
            self.audit.record_event("shutdown", self.summary.stop_reason, data={"summary": lines})
        except AuditWriteError:
            logger.error("could not record the shutdown event")
        lines += self._anchor_audit_heads()
        self.alerts.notify("shutdown", "\n".join(lines))
        self.alerts.close()
        self.connector.shutdown()
        db, python, root = self.config.audit_db, _python_command(), PROJECT_ROOT
        logger.info(
            "the record of this session is in %s: browse it with `%s %s --db %s`, "
            "check it with `cd %s && %s -m live.audit_logger verify %s`",
            db,
            python,
            root / "live" / "dashboard.py",
            db,
            root,
            python,
            db,
        )

    def _anchor_audit_heads(self) -> list[str]:
        """Log the audit chains' last rows (the log lives apart from the database) and give
        them for the shutdown alert: `verify --anchor`/`--expect` then reveal rows removed
        from the end of a table, which a hash chain alone cannot."""
        try:
            heads = self.audit.reader.heads()
        except sqlite3.Error as exc:
            logger.error("could not read the audit chain heads: %s", exc)
            return []
        logger.info(HEADS_LOG_PREFIX + json.dumps(heads))
        return [
            "  audit heads: "
            + ", ".join(
                head_text(table, *heads[table]) for table in ("orders", "trades") if table in heads
            )
        ]

    # ------------------------------------------------------------ one iteration

    def iterate(self) -> int:
        """One pass of the loop; returns the number of (symbol, closed bar) decisions made."""
        started = time.monotonic()
        self.summary.iterations += 1
        self._in_iteration, self._iteration_clock = True, None
        try:
            self._check_kill_switch()
            self.audit_health.maybe_recover()
            connected = self._connected()
            made = self._trade_once() if connected else 0
            self._loop_seconds = time.monotonic() - started
            self._heartbeat(connected)
        finally:
            self._in_iteration, self._iteration_clock = False, None
        return made

    def _trade_once(self) -> int:
        try:
            self._sync_positions()
            self._close_all_if_asked()
            account = self.broker.account()
            if not self._account_still_allowed(account):
                return 0
            self._check_daily_limits(float(account.equity))
        except (BrokerError, OSError) as exc:
            logger.warning("skipping this iteration: %s", exc)
            return 0
        except AuditWriteError as exc:
            self._audit_failed(exc)
            return 0
        made = sum(self._process_symbol_safely(symbol) for symbol in self.config.symbols)
        self._snapshot()
        return made

    def _account_still_allowed(self, account: Any) -> bool:
        """The terminal can be switched to another account at any time (by hand, or by a
        reconnect with MT5_LOGIN=0): a live trader stops rather than trade an account it was
        not started on, or a real one it is not allowed to."""
        if self.config.dry_run:
            return True
        problem = None
        if int(account.login) != self._login:
            problem = f"the terminal switched from account {self._login} to {account.login}"
        elif (
            int(account.trade_mode) == ACCOUNT_TRADE_MODE_REAL
            and not self.config.allow_real_account
        ):
            problem = f"account {account.login} is now a REAL account"
        if problem is None:
            return True
        self._event("account_changed", f"{problem}; stopping", "critical")
        logger.critical("%s: no more orders; stopping", problem)
        self.alerts.notify("error", f"{problem}: trader stopped", severity="critical")
        self.request_stop(problem)
        return False

    def _heartbeat(self, connected: bool) -> None:
        """Record what the dashboard and the Telegram commands show: every minute, and at
        once after a change (`_last_heartbeat = 0`)."""
        wall = self._wall()
        if wall - self._last_heartbeat < HEARTBEAT_WALL_SECONDS and self.last_status:
            return
        self._last_heartbeat = wall
        try:
            self.last_status = self._status(connected, wall)
            self.audit.record_event("heartbeat", self.mode, data=self.last_status)
        except AuditWriteError as exc:
            self._audit_failed(exc)

    def _status(self, connected: bool, wall: float) -> dict[str, Any]:
        latencies = sorted(self._latencies_ms[-1000:])
        status: dict[str, Any] = {
            "wall_ts": datetime.fromtimestamp(wall, tz=UTC).isoformat(),
            "market_ts": self.now().isoformat(),
            "clock": self.clock_name,
            "mode": self.mode,
            "backend": self.connector.backend,
            "connected": connected,
            "strategy": self.strategy.label(),
            "symbols": list(self.config.symbols),
            "timeframe": self.config.timeframe,
            "kill_switch": self.state.kill_switch.level,
            "kill_switch_file": str(self.config.kill_switch_file),
            "entries_enabled": self.state.entries_enabled and self._entry_blocker() is None,
            "disabled_reasons": self._blocking_reasons(),
            "paused_symbols": dict(self._paused),
            "metrics": {
                "loop_seconds": round(self._loop_seconds, 6),
                "decision_latency_ms_p50": _percentile(latencies, 50),
                "decision_latency_ms_p99": _percentile(latencies, 99),
                "reconnects": self._reconnects,
                "iterations": self.summary.iterations,
                "bars": self.summary.bars,
                "alert_queue_depth": _queue_depth(self.alerts),
            },
            "execution": self.executor.stats.as_dict(),
        }
        if connected:
            status.update(self._book_status())
        return status

    def _book_status(self) -> dict[str, Any]:
        try:
            account = self.broker.account()
        except (BrokerError, OSError):
            return {}
        equity = float(account.equity)
        start_equity = self.state.day_start_equity(equity)
        _, day_start = self.state.trading_day(self.now())
        return {
            "account": {
                "login": account.login,
                "server": account.server,
                "currency": account.currency,
                "trade_mode": int(account.trade_mode),
                "balance": float(account.balance),
                "equity": equity,
                "margin": float(account.margin),
                "margin_free": float(account.margin_free),
                "margin_level": float(account.margin_level),
                "profit": float(account.profit),
            },
            "positions": [_position_dict(p) for p in self.state.positions.values()],
            "limits": {
                "entries_today": self.audit.reader.entries_filled_since(
                    day_start, dry_run=self.config.dry_run
                ),
                "max_trades_per_day": self.config.max_trades_per_day,
                "daily_loss_pct": round(100.0 * (start_equity - equity) / start_equity, 3)
                if start_equity
                else 0.0,
                "max_daily_loss_pct": self.config.max_daily_loss_pct,
                "day_start_equity": start_equity,
                "open_positions": len(self.state.positions),
                "max_open_positions": self.config.max_open_positions,
            },
        }

    # ------------------------------------------------------------ texts for chat commands

    def status_text(self) -> str:
        """One screen of status (used by the Telegram /status command; thread-safe)."""
        s = self.last_status
        if not s:
            return "starting up"
        account = s.get("account", {})
        lines = [
            f"{s['mode']} {s['strategy']} on {','.join(s['symbols'])} via {s['backend']}"
            f" ({'connected' if s['connected'] else 'DISCONNECTED'}), as of "
            f"{s['wall_ts'][11:19]} UTC"
        ]
        if account:
            lines.append(
                f"balance {account['balance']:,.2f} equity {account['equity']:,.2f} "
                f"{account['currency']}"
            )
        lines.append(
            f"kill switch: {s['kill_switch'] or 'off'}; entries "
            f"{'allowed' if s['entries_enabled'] else 'stopped: '}"
            + "; ".join(s["disabled_reasons"])
        )
        lines.append(f"open positions: {len(s.get('positions', []))}")
        return "\n".join(lines)

    def positions_text(self) -> str:
        positions = self.last_status.get("positions", [])
        if not positions:
            return "no open positions"
        return "\n".join(
            f"#{p['ticket']} {p['symbol']} {p['side']} {p['volume']} @ "
            f"{p['price_open']} P/L {p['profit']:,.2f}"
            for p in positions
        )

    def daily_text(self) -> str:
        limits = self.last_status.get("limits")
        if not limits:
            return "no data yet"
        return (
            f"entries today {limits['entries_today']}/"
            f"{limits['max_trades_per_day'] or 'no limit'}; daily loss "
            f"{limits['daily_loss_pct']:.2f}% (limit {limits['max_daily_loss_pct']:g}%); "
            f"day started at equity {limits['day_start_equity']:,.2f}"
        )

    def _simulator_record(self) -> dict[str, object]:
        """On the built-in simulator, what made its prices, so `live.compare --sim` can make
        the same bars again."""
        if self.connector.backend != "sim":
            return {}
        return {
            "sim": {
                "symbols": list(self.config.symbols),
                "timeframe": self.config.timeframe,
                "seed": self.config.sim_seed,
                "data": self.config.sim_data or None,
            }
        }

    def _check_kill_switch(self) -> None:
        before = self.state.kill_switch
        try:
            self.state.update_kill_switch()
        except AuditWriteError as exc:  # applied all the same: a full disk never delays it
            self._audit_failed(exc)
        change = self.state.kill_switch
        if change == before:
            return
        self._last_heartbeat = 0.0
        if change.level is None:
            logger.warning("kill switch cleared: trading resumes")
            self.alerts.notify(
                "kill_switch", "kill switch cleared: trading resumes", severity="warning"
            )
        else:
            logger.critical("KILL SWITCH %s (%s)", change.level, change.source)
            self.alerts.notify(
                "kill_switch",
                f"KILL SWITCH {change.level}: no new entries",
                severity="critical",
                level=change.level,
            )

    def _connected(self) -> bool:
        state = self.connector.ensure_connected()
        if state is ConnectionState.DOWN:
            if not self._link_down:
                self._link_down = True
                self._last_heartbeat = 0.0
                self._event("disconnect", "MT5 terminal unreachable; retrying", "error")
                self.alerts.notify(
                    "disconnect", "MT5 terminal unreachable; retrying", severity="error"
                )
            return False
        if state is ConnectionState.RECONNECTED or self._link_down:
            self._link_down = False
            self._last_heartbeat = 0.0
            self._reconnects += 1
            self._event("reconnect", "MT5 terminal reachable again", "warning")
            self.alerts.notify("reconnect", "MT5 terminal reachable again", severity="warning")
            try:
                self.executor.reconcile_pending()
            except (BrokerError, AuditWriteError) as exc:
                logger.error("reconciliation after reconnect failed: %s", exc)
                return False
        return True

    def _event(
        self,
        kind: str,
        message: str,
        level: str = "info",
        *,
        symbol: str | None = None,
        **data: Any,
    ) -> None:
        try:
            self.audit.record_event(kind, message, level=level, symbol=symbol, data=data or None)
        except AuditWriteError as exc:
            self._audit_failed(exc)

    def _audit_failed(self, exc: AuditWriteError) -> None:
        self.audit_health.failed(exc)

    # ------------------------------------------------------------ positions and trades

    def _sync_positions(self) -> None:
        if isinstance(self.broker, PaperBroker):
            self.broker.update_stops(self.config.timeframe, self._bar_seconds)
        self._unrecorded.update(
            c.ticket for c in self.state.sync_positions(self.broker.positions())
        )
        self._record_pending_trades()

    def _record_pending_trades(self) -> None:
        """Trade rows of closed positions; one that cannot be written yet (terminal away,
        deals not in the history yet) is retried next iteration, never forgotten."""
        for ticket in sorted(self._unrecorded):
            try:
                done = self._record_closed_trade(ticket)
            except (BrokerError, OSError) as exc:
                logger.warning("trade of position %s not recorded yet: %s", ticket, exc)
                return
            except AuditWriteError as exc:  # kept for later; the loop (and exits) go on
                self._audit_failed(exc)
                return
            if done:
                self._unrecorded.discard(ticket)

    def _record_closed_trade(self, ticket: int) -> bool:
        """Write the trade row of a closed position from its deals (the broker's record).
        False when its deals are not all in the history yet."""
        deals = self.broker.deals_for_position(ticket)
        entries = [d for d in deals if d.entry == DEAL_ENTRY_IN]
        exits = [d for d in deals if d.entry != DEAL_ENTRY_IN]
        if not exits or not entries:
            logger.warning("position %s is gone but its deals are not all there yet", ticket)
            return False
        first, last = entries[0], exits[-1]
        volume = sum(float(d.volume) for d in entries)
        direction = "long" if int(first.type) == DEAL_TYPE_BUY else "short"
        pnl = sum(
            float(d.profit) + float(d.commission) + float(d.swap) + float(d.fee) for d in deals
        )
        reason = {DEAL_REASON_SL: "sl", DEAL_REASON_TP: "tp"}.get(
            int(last.reason)
        ) or self._exit_reason(last.comment)
        trade_id = self.audit.record_trade(
            symbol=first.symbol,
            position_ticket=int(ticket),
            dry_run=self.broker.dry_run,
            direction=direction,
            volume=volume,
            entry_time=_utc(first.time),
            entry_price=round(_average_price(entries), 10),
            exit_time=_utc(last.time),
            exit_price=round(_average_price(exits), 10),
            pnl=round(pnl, 2),
            commission=sum(float(d.commission) for d in deals),
            swap=sum(float(d.swap) for d in deals),
            exit_reason=reason,
            entry_client_order_id=first.comment,
            exit_client_order_id=last.comment,
        )
        if trade_id is not None:
            self._last_heartbeat = 0.0  # the book changed: show it now
            self.summary.trades_closed += 1
            self.summary.realized_pnl += pnl
            logger.info(
                "%s%s closed %s %s lots: P/L %.2f (%s)",
                self._market_stamp(),
                first.symbol,
                direction,
                volume,
                pnl,
                reason,
                extra={"symbol": first.symbol},
            )
            self.alerts.notify(
                "trade_closed",
                f"closed {first.symbol} {direction} {volume} lots: P/L {pnl:,.2f} ({reason})",
                symbol=first.symbol,
                pnl=pnl,
            )
        return True

    def _exit_reason(self, exit_client_order_id: str) -> str:
        """Why a position was closed, from the exit order's intent row; "external" when the
        exit is not one of this trader's orders (closed by hand, by another program)."""
        why = self.audit.reader.order_reason(exit_client_order_id)
        if why is None:
            return "external"
        if why.startswith("kill switch"):
            return "kill_switch"
        if why.startswith("exit retry"):
            return "exit_retry"
        return "signal"

    def _backfill_trades(self) -> None:
        """Positions that closed while the trader was down (or just before it crashed) get
        their trade row, so no round trip is missing from the record."""
        since = self._backfill_since()
        if since is None:
            return
        still_open = {int(p.ticket) for p in self.broker.positions()}
        closed = {
            int(d.position_id) for d in self.broker.deals_since(since) if d.entry != DEAL_ENTRY_IN
        } - still_open
        for ticket in sorted(closed):
            if self.audit.reader.trade_for_position(ticket, self.broker.dry_run) is None:
                logger.info("recording trade of position %s closed while away", ticket)
                self._record_closed_trade(ticket)

    def _backfill_since(self) -> datetime | None:
        """From a day before the last recorded trade's exit (or the first order) onwards."""
        reader, dry_run = self.audit.reader, self.broker.dry_run
        anchor = reader.last_trade_exit(dry_run=dry_run) or reader.first_order_time(dry_run=dry_run)
        return anchor - timedelta(days=1) if anchor else None

    def _close_all_if_asked(self) -> None:
        if self.state.kill_switch.level != "close_all":
            return
        for position in list(self.state.positions.values()):
            cid = make_client_order_id(
                "close_all", position.symbol, _utc(position.time), f"close_{position.ticket}"
            )
            self._close_position(position, cid, "kill switch close_all")
        self.state.sync_positions(self.broker.positions())
        if not self.state.positions:
            self.state.settle_close_all()

    def _check_daily_limits(self, equity: float) -> None:
        reason = self.state.daily_limit_reason(equity)
        if reason and self.state.disable("daily_limit", reason):
            self._last_heartbeat = 0.0
            try:
                newly = self.state.record_daily_limit(reason)
            except AuditWriteError as exc:
                self._audit_failed(exc)
                newly = True
            if newly:
                self.alerts.notify(
                    "daily_limit",
                    f"daily limit reached: {reason}; no new entries until the next trading day",
                    severity="warning",
                )
        elif not reason and self.state.enable("daily_limit"):
            self._event("daily_limit_reset", "new trading day: entries allowed again")

    # ------------------------------------------------------------ per symbol

    def _process_symbol_safely(self, symbol: str) -> int:
        """One symbol's turn; whatever goes wrong is recorded and the other symbols go on."""
        try:
            return self._process_symbol(symbol)
        except AuditWriteError as exc:
            self._audit_failed(exc)
            return 0
        except OutcomeUnknown as exc:
            self._symbol_failed(symbol, "outcome_unknown", str(exc), "critical")
            return 0
        except StrategyError as exc:
            self._symbol_failed(symbol, "strategy_error", f"{exc}; skipped for this bar")
            return 0
        except Exception as exc:  # any other fault stays in this symbol: the loop goes on
            logger.debug("%s failed", symbol, exc_info=True)
            self._symbol_failed(symbol, "symbol_error", f"{type(exc).__name__}: {exc}")
            return 0

    def _symbol_failed(
        self,
        symbol: str,
        kind: str,
        message: str,
        severity: str = "error",
        *,
        bar: datetime | None = None,
    ) -> None:
        """Record a symbol's failure once per bar (`bar`) or once while it repeats loop after
        loop (a symbol gone, too few bars); log and alert it once while it repeats."""
        self.summary.errors += 1
        key = (kind, message, bar)
        if self._failures.get(symbol) == key:
            logger.debug("%s: %s (again)", symbol, message, extra={"symbol": symbol})
            return
        repeated = self._failures.get(symbol, ())[:2] == (kind, message)
        self._failures[symbol] = key
        self._event(kind, message, severity, symbol=symbol)
        if repeated:
            return
        logger.log(
            logging.CRITICAL if severity == "critical" else logging.ERROR,
            "%s: %s",
            symbol,
            message,
            extra={"symbol": symbol},
        )
        self.alerts.notify("error", f"{symbol}: {message}", severity=severity, symbol=symbol)

    def _process_symbol(self, symbol: str) -> int:
        if symbol in self._paused:
            return self._paused_bar(symbol)
        bars = self.bridge.latest_bars(symbol)
        bar_time = bars["time"].iloc[-1].to_pydatetime()
        new_bar = self.state.is_new_bar(symbol, bar_time)
        reducing = self.state.kill_switch.level == "reduce"
        if not new_bar and not reducing:
            return 0  # nothing closed since the last decision: skip the strategy
        seen_at = time.monotonic()
        sends_before = self.executor.stats.last_send_at
        try:
            decision = self.bridge.decide(symbol, bars)
        except StrategyError as exc:
            if not new_bar:
                raise
            self._strategy_failed(symbol, bar_time, exc)
            return 0
        self._failures.pop(symbol, None)  # this symbol works again
        self._strategy_failures.pop(symbol, None)
        if reducing:
            self._close_unwanted(decision, "reduce", "kill switch reduce")
        if not new_bar:
            return 0
        if decision.act:
            action, outcome, cid = self._act(decision)
        else:
            action, outcome, cid = self._hold(decision)
        self.state.mark_processed(symbol, decision.bar_time)  # decided, recorded or not
        self._count_bar(decision)
        self.audit.record_signal(
            symbol=symbol,
            bar_time=decision.bar_time,
            action=action,
            outcome=outcome,
            timeframe=self.config.timeframe,
            strategy=self.strategy.label(),
            position=decision.position,
            entry=decision.entry,
            client_order_id=cid,
            fallback=action != "none",  # a decision that acted is kept through an outage
        )
        if self.executor.stats.last_send_at != sends_before:
            self._latencies_ms.append(1000.0 * (self.executor.stats.last_send_at - seen_at))
            del self._latencies_ms[:-1000]
        return 1

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
        """A failed bar counts as processed; after STRATEGY_MAX_FAILURES in a row the symbol
        is paused, once, with one alert: the other symbols go on."""
        self.state.mark_processed(symbol, bar_time)  # skip this bar, not every loop
        self._count_bar_time(bar_time)
        self._symbol_failed(symbol, "strategy_error", f"{exc}; skipped for this bar", bar=bar_time)
        failures = self._strategy_failures.get(symbol, 0) + 1
        self._strategy_failures[symbol] = failures
        if failures >= self.config.strategy_max_failures:
            self._pause(symbol, f"the strategy failed on {failures} bars in a row (last: {exc})")

    def _pause(self, symbol: str, why: str) -> None:
        self._paused[symbol] = why
        self._last_heartbeat = 0.0
        text = (
            f"{symbol} paused: {why}. No new decisions for it; its open positions keep their "
            "stops and the kill switch still acts. Fix the strategy and restart to resume"
        )
        self._event("symbol_paused", text, "critical", symbol=symbol)
        logger.critical(text, extra={"symbol": symbol})
        self.alerts.notify("error", text, severity="critical", symbol=symbol)

    def _paused_bar(self, symbol: str) -> int:
        """A paused symbol's closed bars still count (a --max-bars run ends); nothing else."""
        bar_time = self.bridge.latest_bars(symbol)["time"].iloc[-1].to_pydatetime()
        if self.state.is_new_bar(symbol, bar_time):
            self.state.mark_processed(symbol, bar_time)
            self._count_bar_time(bar_time)
        return 0

    def _act(self, decision: Decision) -> tuple[str, str, str | None]:
        """Bring this symbol's positions to the decision. Returns (action, outcome, cid)."""
        label = self.strategy.label()
        side = decision.side
        open_cid = (
            make_client_order_id(label, decision.symbol, decision.bar_time, f"open_{side}")
            if side
            else None
        )
        if open_cid and self._already_opened(open_cid):
            return f"open_{side}", "already_executed", open_cid
        positions = self.state.positions_for(decision.symbol)
        to_close = [p for p in positions if _direction(p) != decision.position or decision.entry]
        for position in to_close:
            cid = make_client_order_id(
                label, decision.symbol, decision.bar_time, f"close_{position.ticket}"
            )
            self._close_position(position, cid, "strategy exit")
        if side is None:
            return "close", "executed" if to_close else "flat_already", None
        if len(to_close) < len(positions):
            return f"open_{side}", "already_in_position", open_cid
        return f"open_{side}", self._open(decision, open_cid), open_cid

    def _already_opened(self, cid: str) -> bool:
        row = self.audit.reader.latest_order(cid)
        return row is not None and row["status"] in (
            "filled",
            "partial",
            "reconciled_filled",
            "dry_filled",
        )

    def _entry_blocker(self) -> str | None:
        if self.state.kill_switch.blocks_entries:
            return f"kill_switch_{self.state.kill_switch.level}"
        if not self.state.entries_enabled:
            return "disabled: " + "; ".join(self.state.disabled_reasons)
        return None

    def _blocking_reasons(self) -> list[str]:
        kill = self.state.kill_switch
        return (
            [f"kill switch {kill.level}"] if kill.blocks_entries else []
        ) + self.state.disabled_reasons

    def _open(self, decision: Decision, cid: str) -> str:
        blocker = self._entry_blocker()
        if blocker:
            self.summary.refused += 1
            logger.info(
                "%s%s entry refused: %s",
                self._market_stamp(),
                decision.symbol,
                blocker,
                extra={"symbol": decision.symbol},
            )
            return f"refused: {blocker}"
        symbol, side = decision.symbol, decision.side
        try:
            request = self._entry_request(decision, cid)
        except PrecheckFailed as exc:
            self.summary.refused += 1
            logger.warning("%s entry refused: %s", symbol, exc, extra={"symbol": symbol})
            return f"refused: {exc}"
        result = self.executor.execute_order(
            OrderIntent(
                client_order_id=cid,
                symbol=symbol,
                side=side,
                volume=request["volume"],
                kind="open",
                request=request,
                reason=f"{self.strategy.label()} bar {decision.bar_time.isoformat()}",
            )
        )
        return self._entry_outcome(result)

    def _entry_request(self, decision: Decision, cid: str) -> dict[str, Any]:
        symbol, buying = decision.symbol, decision.position > 0
        broker = self.broker
        tick, spec, account = broker.tick(symbol), broker.symbol_spec(symbol), broker.account()
        price = float(tick.ask if buying else tick.bid)
        sl, tp = stop_levels(decision, spec, price)
        volume = self.bridge.position_size(
            spec=spec,
            equity=float(account.equity),
            entry_price=price,
            sl=sl,
            account_currency=account.currency,
        )
        request = build_order_request(
            symbol=symbol,
            side=decision.side,
            volume=volume,
            price=price,
            spec=spec,
            magic=self.config.magic_number,
            comment=cid,
            deviation=self.config.deviation_points,
            filling=broker.filling_mode(symbol),
            sl=sl,
            tp=tp,
        )
        margin = estimated_margin(volume, price, spec, account)
        refusal = self.state.entry_refusal(symbol, volume, margin, account)
        if refusal:
            raise PrecheckFailed(refusal)
        simulate_precheck(
            request,
            spec=spec,
            symbol_info=broker.symbol_info(symbol),
            tick=tick,
            account=account,
            now=self.now(),
            max_tick_age_s=max(3.0 * self._bar_seconds, 900.0),
        )
        request["type_filling"] = broker.confirm_filling(request)
        try:
            broker.check_order(request)
        except OrderRejected as exc:
            raise PrecheckFailed(f"order_check: {exc}", code=exc.code) from None
        return request

    def _entry_outcome(self, result: ExecutionResult) -> str:
        if result.filled:
            if not result.duplicate:
                self.summary.entries += 1
                logger.info(
                    "%s%s opened %s %s lots at %s (%s)",
                    self._market_stamp(),
                    result.symbol,
                    result.side,
                    result.volume,
                    result.price,
                    result.client_order_id,
                    extra={"symbol": result.symbol, "client_order_id": result.client_order_id},
                )
                self.alerts.notify(
                    "trade_opened",
                    f"opened {result.symbol} {result.side} {result.volume} lots at {result.price}",
                    symbol=result.symbol,
                )
            self.state.sync_positions(self.broker.positions())
            self._last_heartbeat = 0.0  # the book changed: show it now
            return "executed" if not result.duplicate else "already_executed"
        if result.status == "placed":  # accepted, fills later: adopted with the positions
            logger.info(
                "%s order %s is pending at the broker",
                result.symbol,
                result.client_order_id,
                extra={"symbol": result.symbol},
            )
            return "placed"
        self.summary.refused += 1
        self.alerts.notify(
            "order_failed",
            f"{result.symbol} {result.side} order {result.status}: {result.message}",
            severity="error",
            symbol=result.symbol,
        )
        return f"{result.status}: {result.message}"

    def _close_position(self, position: Any, cid: str, reason: str) -> ExecutionResult:
        broker = self.broker
        request = build_close_request(
            position=position,
            tick=broker.tick(position.symbol),
            spec=broker.symbol_spec(position.symbol),
            magic=self.config.magic_number,
            comment=cid,
            deviation=self.config.deviation_points,
            filling=broker.filling_mode(position.symbol),
        )
        intent = OrderIntent(
            client_order_id=cid,
            symbol=position.symbol,
            side="buy" if request["type"] == 0 else "sell",
            volume=float(position.volume),
            kind="close",
            request=request,
            position_ticket=int(position.ticket),
            reason=reason,
        )
        try:
            result = self.executor.execute_order(intent)
        except AuditWriteError:  # not even the fallback journal took its intent: not sent
            self.state.exit_failed(int(position.ticket))
            raise
        if result.filled or result.status == "not_needed":
            self.state.exit_done(int(position.ticket))
            self.summary.exits += 0 if result.duplicate else int(result.filled)
        else:
            self.state.exit_failed(int(position.ticket))
            self.alerts.notify(
                "order_failed",
                f"closing {position.symbol} #{position.ticket} {result.status}: {result.message}",
                severity="error",
                symbol=position.symbol,
            )
        self._unrecorded.update(c.ticket for c in self.state.sync_positions(broker.positions()))
        self._record_pending_trades()
        return result

    def _hold(self, decision: Decision) -> tuple[str, str, str | None]:
        """No new decision. An exit that failed on an earlier bar (requotes to the end, market
        closed) is tried again on each new bar while the strategy still does not want that
        position; a missed entry is not chased at a later price."""
        retry = {
            t
            for t in self.state.failed_exits
            if (p := self.state.positions.get(t)) is not None and p.symbol == decision.symbol
        }
        closed = (
            self._close_unwanted(
                decision, "exit_retry", "exit retry: an earlier exit failed", only=retry
            )
            if retry
            else []
        )
        if not closed:
            return "none", "no_action", None
        done = sum(r.filled or r.status == "not_needed" for r in closed)
        return "close", f"exit_retried: {done}/{len(closed)} closed", None

    def _close_unwanted(
        self, decision: Decision, purpose: str, reason: str, *, only: set[int] | None = None
    ) -> list[ExecutionResult]:
        """Close this symbol's positions (of `only`, if given) whose direction is not the
        strategy's target."""
        results = []
        for position in self.state.positions_for(decision.symbol):
            if only is not None and int(position.ticket) not in only:
                continue
            if _direction(position) == decision.position:
                self.state.exit_done(int(position.ticket))  # wanted again: nothing to retry
                continue
            cid = make_client_order_id(
                purpose, decision.symbol, decision.bar_time, f"close_{position.ticket}"
            )
            results.append(self._close_position(position, cid, reason))
        return results

    # ------------------------------------------------------------ snapshots

    def _snapshot(self) -> None:
        now = self.now()
        if (
            self._last_snapshot is not None
            and (now - self._last_snapshot).total_seconds() < self.config.snapshot_seconds
        ):
            return
        try:
            account = self.broker.account()
            self.audit.record_snapshot(
                balance=float(account.balance),
                equity=float(account.equity),
                margin=float(account.margin),
                margin_free=float(account.margin_free),
                margin_level=float(account.margin_level),
                profit=float(account.profit),
                open_positions=len(self.state.positions),
                dry_run=self.config.dry_run,
            )
            self._last_snapshot = now
        except (BrokerError, OSError) as exc:
            logger.warning("account snapshot skipped: %s", exc)
        except AuditWriteError as exc:
            self._audit_failed(exc)


def _python_command() -> str:
    """The interpreter running us, as the user can type it (the project's venv, usually)."""
    executable = Path(sys.executable)
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(len(values) * q / 100))], 3)


def _queue_depth(alerts: Any) -> int:
    depth = getattr(alerts, "queue_depth", None)
    return int(depth()) if callable(depth) else 0


def _position_dict(position: Any) -> dict[str, Any]:
    return {
        "ticket": int(position.ticket),
        "symbol": position.symbol,
        "side": "buy" if position.type == POSITION_TYPE_BUY else "sell",
        "volume": float(position.volume),
        "price_open": float(position.price_open),
        "price_current": float(position.price_current),
        "sl": float(position.sl),
        "tp": float(position.tp),
        "profit": float(position.profit),
        "time": _utc(position.time).isoformat(),
        "comment": position.comment,
    }


def _average_price(deals: list[Any]) -> float:
    volume = sum(float(d.volume) for d in deals)
    return sum(float(d.price) * float(d.volume) for d in deals) / volume


def _direction(position: Any) -> int:
    return 1 if position.type == POSITION_TYPE_BUY else -1


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(float(epoch_seconds), tz=UTC)


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="live_trader.py",
        description="Trade a backtest strategy on MetaTrader 5 (or its simulator).",
    )
    parser.add_argument("--strategy", help="strategy file (path[:ClassName]); or STRATEGY_PATH")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="strategy parameter (repeatable); or STRATEGY_PARAMS",
    )
    parser.add_argument("--symbols", help="comma-separated symbols, e.g. EURUSD,GBPUSD")
    parser.add_argument("--timeframe", help="bar timeframe, e.g. H1")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="paper-trade: validate orders, never send them (the default)",
    )
    mode.add_argument(
        "--live", action="store_true", help="send real orders (same as DRY_RUN=false)"
    )
    parser.add_argument("--backend", choices=("auto", "mt5", "mt5linux", "sim"))
    parser.add_argument("--sim-data", help="bars CSV for the simulator (default: generated)")
    parser.add_argument("--sim-speed", help="simulated seconds per second, or max (lockstep)")
    parser.add_argument("--max-bars", type=int, help="stop after N closed bars")
    parser.add_argument("--config", help="settings file (default .env in the project root)")
    parser.add_argument("--interval", type=float, help="seconds between loop iterations")
    parser.add_argument("--db", help="audit database file (AUDIT_DB)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check settings, connection, account and symbols, then exit "
        "(0 ready, 1 problems); sends no order",
    )
    return parser


def config_from_args(args: argparse.Namespace, *, need_strategy: bool = True) -> LiveConfig:
    overrides: dict[str, object] = {
        "strategy_path": args.strategy,
        "symbols": tuple(s.strip() for s in args.symbols.split(",") if s.strip())
        if args.symbols
        else None,
        "timeframe": args.timeframe,
        "backend": args.backend,
        "sim_data": args.sim_data,
        "sim_speed": args.sim_speed,
        "max_bars": args.max_bars,
        "interval_seconds": args.interval,
        "audit_db": args.db,
        "dry_run": False if args.live else (True if args.dry_run else None),
    }
    if args.param:
        overrides["strategy_params"] = ",".join(args.param)
    config = LiveConfig.load(args.config, overrides=overrides)
    if need_strategy and not config.strategy_path:
        raise ConfigError("no strategy: pass --strategy PATH or set STRATEGY_PATH")
    return config


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (2 for configuration and usage errors)."""
    args = build_parser().parse_args(argv)
    if args.check:
        return _check(args)
    logged = False
    try:
        config = config_from_args(args)
        try:
            setup_logging(config)
        except OSError as exc:
            raise ConfigError(
                f"LOG_DIR={config.log_dir}: cannot write the log there ({exc.strerror or exc})"
            ) from None
        logged = True
        with ExitStack() as held:  # the instance locks, released when the run ends
            trader = _build_trader(config, held)
            _install_signal_handlers(trader)
            if hasattr(trader.alerts, "start_commands"):
                trader.alerts.start_commands(trader)
            trader.run()  # start() may refuse too: a real account, a locked database, ...
    except (ConfigError, StrategyError, AuditWriteError, DataError) as exc:
        return _cannot_start(str(exc), EXIT_USAGE, logged)
    except BrokerUnavailable as exc:
        return _cannot_start(f"MT5 terminal unreachable: {exc}", EXIT_FAILURE, logged)
    except BrokerError as exc:
        return _cannot_start(str(exc), EXIT_USAGE, logged)
    return EXIT_OK


def _build_trader(config: LiveConfig, held: ExitStack) -> LiveTrader:
    """Load the strategy and reach the terminal before the audit DB is created, so a run
    that cannot start leaves no empty database behind; take the instance locks (`held`
    keeps them) before anything is written."""
    strategy = get_strategy_from_file(config.strategy_path, config.strategy_param_pairs())
    connector = MT5Connector(config)
    connector.connect()
    for symbol in config.symbols:
        connector.symbol_info(symbol)  # an unknown symbol stops us here
    command = _command_line(config)
    if needs_account_lock(dry_run=config.dry_run, backend=connector.backend):
        account = connector.account()
        held.enter_context(
            account_lock(
                config.lock_dir,
                login=int(account.login),
                server=str(account.server),
                magic=config.magic_number,
                command=command,
            )
        )
    held.enter_context(database_lock(config.audit_db, command=command))
    audit = AuditLogger(config.audit_db, key_file=config.audit_key_file, busy_timeout_s=2.0)
    return LiveTrader(
        config, connector=connector, strategy=strategy, audit=audit, alerts=_alerts(config, audit)
    )


def _command_line(config: LiveConfig) -> str:
    """This process's command line for the lock's holder note, secrets blanked."""
    text = " ".join([Path(sys.executable).name, *sys.argv])
    for secret in config.secrets():
        text = text.replace(secret, "***")
    return text


def _cannot_start(message: str, code: int, logged: bool) -> int:
    """One line on stderr: through the log's console handler when logging is set up (the
    log file keeps it too), else printed."""
    if logged:
        logger.error("cannot start: %s", message)
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def _check(args: argparse.Namespace) -> int:
    from live.doctor import print_config_error, run_check

    try:
        config = config_from_args(args, need_strategy=False)
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return run_check(config)


def _alerts(config: LiveConfig, audit: AuditLogger) -> Any:
    from live.alerts import AlertSystem

    return AlertSystem.from_config(config, audit=audit)


def _install_signal_handlers(trader: LiveTrader) -> None:
    def handle(signum: int, _frame: object) -> None:
        trader.request_stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    if hasattr(signal, "SIGBREAK"):  # Ctrl+Break on Windows
        signal.signal(signal.SIGBREAK, handle)


if __name__ == "__main__":
    sys.exit(main())
