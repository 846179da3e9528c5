"""What the trader tells about itself: the heartbeat (the status the dashboard and the
Telegram commands show), account snapshots, the console and chat texts, and the session
summary printed and recorded at shutdown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from live.audit_health import AuditHealth
from live.audit_logger import AuditLogger
from live.broker_types import POSITION_TYPE_BUY
from live.config import LiveConfig
from live.errors import AuditWriteError, BrokerError
from live.market_clock import MarketClock
from live.risk_gate import RiskGate
from live.state_manager import StateManager

logger = logging.getLogger(__name__)

HEARTBEAT_WALL_SECONDS = 60.0  # and at once whenever the book, the switch or the link changes


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
    stop_changes: int = 0
    stop_reason: str = ""

    def lines(self, execution: Mapping[str, object], mode: str) -> list[str]:
        runtime = time.time() - self.started_wall
        return [
            f"session summary ({mode}), {runtime:.1f} s, stopped: {self.stop_reason}",
            f"  loop iterations {self.iterations}, closed bars {self.bars}, "
            f"signals acted on {self.signals}",
            f"  entries {self.entries}, exits {self.exits}, stop changes {self.stop_changes}, "
            f"refused {self.refused}, symbol errors {self.errors}",
            f"  trades closed {self.trades_closed}, realized P/L {self.realized_pnl:,.2f}",
            f"  orders {execution['orders']}: filled {execution['filled']}, rejected "
            f"{execution['rejected']}, failed {execution['failed']}, retries "
            f"{execution['retries']}, duplicates suppressed {execution['duplicates_suppressed']}",
        ]


@dataclass
class LoopMetrics:
    """Measured as the loop runs (kept small: only the recent latencies)."""

    loop_seconds: float = 0.0
    reconnects: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def latency(self, milliseconds: float) -> None:
        self.latencies_ms.append(milliseconds)
        del self.latencies_ms[:-1000]


class StatusReporter:
    """Heartbeats, snapshots and texts; `changed()` asks for a heartbeat at the next chance."""

    def __init__(
        self,
        config: LiveConfig,
        *,
        audit: AuditLogger,
        health: AuditHealth,
        broker: Any,
        state: StateManager,
        risk: RiskGate,
        clock: MarketClock,
        describe: Callable[[], Mapping[str, object]],
        extras: Callable[[], Mapping[str, object]],
    ) -> None:
        self.config = config
        self._audit = audit
        self._health = health
        self._broker = broker
        self._state = state
        self._risk = risk
        self._clock = clock
        self._describe = describe  # mode, backend, strategy: fixed for the run
        self._extras = extras  # metrics, execution statistics, paused symbols: per heartbeat
        self.summary = SessionSummary()
        self.metrics = LoopMetrics()
        self.last_status: dict[str, Any] = {}
        self._last_heartbeat = 0.0
        self._last_snapshot: datetime | None = None

    def changed(self) -> None:
        """The book, the switch or the link changed: the next heartbeat goes out at once."""
        self._last_heartbeat = 0.0

    def heartbeat(self, connected: bool) -> None:
        """Record what the dashboard and the Telegram commands show: every minute of wall
        time, and at once after a change."""
        wall = self._clock.wall()
        if wall - self._last_heartbeat < HEARTBEAT_WALL_SECONDS and self.last_status:
            return
        self._last_heartbeat = wall
        try:
            self.last_status = self._status(connected, wall)
            self._audit.record_event("heartbeat", self.last_status["mode"], data=self.last_status)
        except AuditWriteError as exc:
            self._health.failed(exc)

    def snapshot(self) -> None:
        """An account snapshot every SNAPSHOT_SECONDS of market time."""
        now = self._clock.now()
        last = self._last_snapshot
        if last is not None and (now - last).total_seconds() < self.config.snapshot_seconds:
            return
        try:
            account = self._broker.account()
            self._audit.record_snapshot(
                balance=float(account.balance),
                equity=float(account.equity),
                margin=float(account.margin),
                margin_free=float(account.margin_free),
                margin_level=float(account.margin_level),
                profit=float(account.profit),
                open_positions=len(self._state.positions),
                dry_run=self.config.dry_run,
            )
            self._last_snapshot = now
        except (BrokerError, OSError) as exc:
            logger.warning("account snapshot skipped: %s", exc)
        except AuditWriteError as exc:
            self._health.failed(exc)

    def _status(self, connected: bool, wall: float) -> dict[str, Any]:
        latencies = sorted(self.metrics.latencies_ms)
        status: dict[str, Any] = {
            "wall_ts": datetime.fromtimestamp(wall, tz=UTC).isoformat(),
            "market_ts": self._clock.now().isoformat(),
            "clock": self._clock.name,
            **self._describe(),
            "connected": connected,
            "symbols": list(self.config.symbols),
            "timeframe": self.config.timeframe,
            "kill_switch": self._state.kill_switch.level,
            "kill_switch_file": str(self.config.kill_switch_file),
            "entries_enabled": self._risk.entries_allowed,
            "disabled_reasons": self._risk.blocking_reasons(),
        }
        extras = dict(self._extras())
        status["metrics"] = {
            "loop_seconds": round(self.metrics.loop_seconds, 6),
            "decision_latency_ms_p50": _percentile(latencies, 50),
            "decision_latency_ms_p99": _percentile(latencies, 99),
            "reconnects": self.metrics.reconnects,
            "iterations": self.summary.iterations,
            "bars": self.summary.bars,
            **extras.pop("metrics", {}),
        }
        status.update(extras)
        if connected:
            status.update(self._book_status())
        return status

    def _book_status(self) -> dict[str, Any]:
        try:
            account = self._broker.account()
        except (BrokerError, OSError):
            return {}
        equity = float(account.equity)
        start_equity = self._state.day_start_equity(equity)
        _, day_start = self._state.trading_day(self._clock.now())
        config = self.config
        return {
            "account": _account_dict(account),
            "positions": [position_dict(p) for p in self._state.positions.values()],
            "pending_orders": [order_dict(o) for o in self._state.pending],
            "limits": {
                "entries_today": self._audit.reader.entries_filled_since(
                    day_start, dry_run=config.dry_run
                ),
                "max_trades_per_day": config.max_trades_per_day,
                "daily_loss_pct": round(100.0 * (start_equity - equity) / start_equity, 3)
                if start_equity
                else 0.0,
                "max_daily_loss_pct": config.max_daily_loss_pct,
                "day_start_equity": start_equity,
                "open_positions": len(self._state.positions),
                "max_open_positions": config.max_open_positions,
            },
        }

    # ------------------------------------------------------------ texts for chat commands

    def status_text(self) -> str:
        """One screen of status (the Telegram /status command; thread-safe)."""
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


def position_dict(position: Any) -> dict[str, Any]:
    """A position as the dashboard and the chat commands show it."""
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
        "time": datetime.fromtimestamp(float(position.time), tz=UTC).isoformat(),
        "comment": position.comment,
    }


ORDER_TYPE_NAMES = {
    0: "buy",
    1: "sell",
    2: "buy limit",
    3: "sell limit",
    4: "buy stop",
    5: "sell stop",
    6: "buy stop limit",
    7: "sell stop limit",
}


def order_dict(order: Any) -> dict[str, Any]:
    """A pending order as the dashboard shows it (expiry None: good till cancelled)."""
    expires = int(getattr(order, "time_expiration", 0) or 0)
    return {
        "ticket": int(order.ticket),
        "symbol": order.symbol,
        "type": ORDER_TYPE_NAMES.get(int(order.type), str(order.type)),
        "volume": float(order.volume_current),
        "price": float(order.price_open),
        "sl": float(order.sl),
        "tp": float(order.tp),
        "placed": datetime.fromtimestamp(float(order.time_setup), tz=UTC).isoformat(),
        "expires": datetime.fromtimestamp(expires, tz=UTC).isoformat() if expires else None,
        "comment": order.comment,
    }


def _account_dict(account: Any) -> dict[str, Any]:
    return {
        "login": account.login,
        "server": account.server,
        "currency": account.currency,
        "trade_mode": int(account.trade_mode),
        "balance": float(account.balance),
        "equity": float(account.equity),
        "margin": float(account.margin),
        "margin_free": float(account.margin_free),
        "margin_level": float(account.margin_level),
        "profit": float(account.profit),
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(len(values) * q / 100))], 3)
