"""Trader state: positions (synced from the broker), daily and portfolio limits, the kill switch,
one action per symbol per closed bar, and whether trading is enabled.

The broker is the truth for positions; the audit DB is the memory that survives a restart
(the day's starting equity, the kill-switch state, the last bar processed per symbol).
Trading days start at TRADING_DAY_START_HOUR in TRADING_DAY_TZ: by default `broker`, the
server's own zone as the connector's BrokerClock knows it (so daily limits reset at the
broker's midnight, which moves against UTC with daylight saving).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backtest.broker_clock import DAY, BrokerZone, parse_zone
from live.audit_logger import AuditLogger
from live.audit_schema import utc_now
from live.broker_time import BrokerClock
from live.config import LiveConfig
from live.config_values import KILL_SWITCH_ACTIONS, TRADING_DAY_BROKER
from live.control_requests import Origin, kill_switch_origin, take_resume_origin
from live.errors import AuditWriteError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KillSwitch:
    """The kill-switch level in force (None = trading normally) and where it came from."""

    level: str | None
    source: str = ""

    @property
    def blocks_entries(self) -> bool:
        return self.level is not None


@dataclass(frozen=True)
class PositionChange:
    """A position that was open at the previous sync and is gone now; `identifier` stays
    the same for a position's whole life (a netting reversal may change its ticket)."""

    ticket: int
    identifier: int
    symbol: str
    position: Any


def kill_switch_file_level(path: Path, default: str) -> str | None:
    """The level a kill-switch file asks for: its first word, else `default` (also for a
    word that is no level); None when there is no file."""
    if not path.exists():
        return None
    try:
        words = path.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        words = []
    level = words[0].lower() if words else default
    if level not in KILL_SWITCH_ACTIONS:
        logger.warning("kill-switch file says %r; using %s", level, default)
        level = default
    return level


_PENDING_ENTRY_TYPES = frozenset(range(2, 8))  # buy/sell limit, stop, stop limit


class StateManager:
    """Holds what the loop must know between iterations and across restarts.

    `broker_clock` is the connector's (`connector.clock`): with TRADING_DAY_TZ=broker, days
    follow its zone as it resolves; without one, a clock is made from BROKER_TZ (for `auto`
    that means UTC, as nothing here sees a tick). Another TRADING_DAY_TZ ignores it.
    """

    def __init__(
        self,
        config: LiveConfig,
        audit: AuditLogger,
        *,
        now: Callable[[], datetime] = utc_now,
        broker_clock: BrokerClock | None = None,
    ) -> None:
        self.config = config
        self.audit = audit
        self._now = now
        self._day_clock: BrokerClock | None = None  # TRADING_DAY_TZ=broker: the days' zone
        if config.trading_day_timezone == TRADING_DAY_BROKER:
            self._day_clock = broker_clock or BrokerClock(config.broker_tz)
        self.positions: dict[int, Any] = {}
        self._last_bar: dict[str, datetime] = {}
        self._day_start: tuple[str, float] | None = None
        self._limit_hit: tuple[str, str] | None = None  # (trading day, why) once reached
        self._limit_recorded: tuple[str, str] | None = None
        self.kill_switch = KillSwitch(None)
        self._disabled: dict[str, str] = {}
        self.foreign_lots = 0.0  # open volume of other programs and of hand trades
        self.pending: list[Any] = []  # this trader's orders at the broker, not filled yet
        self._restore()

    def _restore(self) -> None:
        reader = self.audit.reader
        for symbol in self.config.symbols:
            row = reader.last_signal(symbol)
            if row is not None:
                self._last_bar[symbol] = datetime.fromisoformat(row["bar_time"])
        hit = reader.last_event("daily_limit")
        if hit is not None:
            day = json.loads(hit["data"] or "{}").get("day")
            if day:
                self._limit_hit = self._limit_recorded = (day, hit["message"])
        last = reader.last_event(("kill_switch_on", "kill_switch_off"))
        if last is not None and last["kind"] == "kill_switch_on":
            data = json.loads(last["data"] or "{}")
            # the source tells update_kill_switch that a close_all already ran
            self.kill_switch = KillSwitch(
                data.get("level", "halt"), data.get("source") or "restored from audit log"
            )

    # ------------------------------------------------------------ positions

    def sync_positions(self, positions: Iterable[Any]) -> list[PositionChange]:
        """Replace the known positions with the broker's; return those that disappeared
        (by identifier: a netting reversal that changes the ticket is the same position)."""
        current = {int(p.ticket): p for p in positions}
        alive = {_identifier(p) for p in current.values()}
        gone = [
            PositionChange(ticket, _identifier(p), p.symbol, p)
            for ticket, p in self.positions.items()
            if ticket not in current and _identifier(p) not in alive
        ]
        self.positions = current
        return gone

    def sync_orders(self, orders: Iterable[Any]) -> list[int]:
        """This trader's orders not filled yet (pending at the broker); returns the tickets
        of those that are gone since (filled, expired or removed)."""
        before = {int(o.ticket) for o in self.pending}
        self.pending = list(orders)
        return sorted(before - {int(o.ticket) for o in self.pending})

    def pending_for(self, symbol: str) -> list[Any]:
        return [o for o in self.pending if o.symbol == symbol]

    def sync_foreign(self, all_positions: Iterable[Any], magic: int) -> None:
        """Positions of other magic numbers (other programs, hand trades) are never touched,
        but their volume counts toward MAX_TOTAL_LOTS."""
        self.foreign_lots = sum(float(p.volume) for p in all_positions if int(p.magic) != magic)

    def positions_for(self, symbol: str) -> list[Any]:
        return [p for p in self.positions.values() if p.symbol == symbol]

    @property
    def total_lots(self) -> float:
        return sum(float(p.volume) for p in self.positions.values())

    # ------------------------------------------------------------ bars

    def is_new_bar(self, symbol: str, bar_time: datetime) -> bool:
        """True once per closed bar and symbol: the guard against acting twice on one bar."""
        last = self._last_bar.get(symbol)
        return last is None or bar_time > last

    def last_decided_bar(self) -> datetime | None:
        """The latest closed bar decided on, over all symbols (None before the first)."""
        return max(self._last_bar.values(), default=None)

    def mark_processed(self, symbol: str, bar_time: datetime) -> None:
        self._last_bar[symbol] = bar_time

    # ------------------------------------------------------------ daily limits

    @property
    def day_zone(self) -> BrokerZone:
        """The zone trading days are counted in (the broker's as its clock knows it now)."""
        if self._day_clock is not None:
            return self._day_clock.zone
        return parse_zone(self.config.trading_day_timezone, "TRADING_DAY_TZ")

    def trading_day(self, moment: datetime) -> tuple[str, datetime]:
        """The trading day containing `moment` (its label: the date it starts on in the day's
        zone) and its start in UTC."""
        zone = self.day_zone
        utc = int(moment.timestamp())
        start_hour = self.config.trading_day_start_hour * 3600
        wall = utc + zone.offset_at(utc)
        start_wall = (wall - start_hour) // DAY * DAY + start_hour
        start = datetime.fromtimestamp(float(zone.to_utc(start_wall)), UTC)
        label = datetime.fromtimestamp(start_wall, UTC).date().isoformat()
        return label, start

    def day_start_equity(self, equity: float) -> float:
        """The equity at the start of the current trading day, recorded once per day.

        A restart finds the recorded value, so restarting cannot reset the daily loss limit.
        """
        label, _ = self.trading_day(self._now())
        if self._day_start is not None and self._day_start[0] == label:
            return self._day_start[1]
        for row in self.audit.reader.recent_events(limit=20, kind="day_start"):
            data = json.loads(row["data"] or "{}")
            if data.get("day") == label:
                self._day_start = (label, float(data["equity"]))
                return self._day_start[1]
        self._day_start = (label, equity)
        try:
            self.audit.record_event(
                "day_start",
                f"trading day {label} starts at equity {equity:,.2f}",
                data={"day": label, "equity": equity},
                fallback=True,
            )
        except AuditWriteError:  # the logger's outage says so; the day goes on from memory
            logger.debug("day start of %s not recorded", label)
        return equity

    def daily_limit_reason(self, equity: float) -> str | None:
        """Why new entries are stopped for the rest of the trading day, or None.

        Once a limit is reached it holds until the next trading day, even if the equity
        recovers meanwhile; `record_daily_limit` makes that survive a restart.
        """
        label, _ = self.trading_day(self._now())
        if self._limit_hit is not None and self._limit_hit[0] == label:
            return self._limit_hit[1]
        reason = self._limit_breached(equity)
        if reason is not None:
            self._limit_hit = (label, reason)
        return reason

    def record_daily_limit(self, reason: str) -> bool:
        """Persist that today's limit was reached; False if it already was (a restart)."""
        label, _ = self.trading_day(self._now())
        if self._limit_recorded == (label, reason):
            return False
        self.audit.record_event(
            "daily_limit", reason, level="warning", data={"day": label}, fallback=True
        )
        self._limit_recorded = (label, reason)
        return True

    def _limit_breached(self, equity: float) -> str | None:
        start_equity = self.day_start_equity(equity)
        cfg = self.config
        if cfg.max_daily_loss_pct > 0 and start_equity > 0:
            loss_pct = 100.0 * (start_equity - equity) / start_equity
            if loss_pct >= cfg.max_daily_loss_pct:
                return (
                    f"daily loss {loss_pct:.2f}% reached MAX_DAILY_LOSS_PCT "
                    f"{cfg.max_daily_loss_pct:g}% (start equity {start_equity:,.2f})"
                )
        if cfg.max_trades_per_day > 0:
            _, day_start = self.trading_day(self._now())
            entries = self.audit.reader.entries_filled_since(day_start, dry_run=self.config.dry_run)
            if entries >= cfg.max_trades_per_day:
                return (
                    f"{entries} entries today reached MAX_TRADES_PER_DAY {cfg.max_trades_per_day}"
                )
        return None

    # ------------------------------------------------------------ portfolio limits

    def entry_refusal(
        self, symbol: str, volume: float, margin: float, account: Any, *, new_position: bool = True
    ) -> str | None:
        """Why a new entry of `volume` lots needing `margin` would break a portfolio limit
        (`new_position` False: it adds to a position, as a scale-in on a netting account).
        This trader's pending entries count as the positions and lots they will become."""
        cfg = self.config
        waiting = [o for o in self.pending if int(o.type) in _PENDING_ENTRY_TYPES]
        count = len(self.positions) + len(waiting)
        if new_position and cfg.max_open_positions and count >= cfg.max_open_positions:
            pending = f" (with {len(waiting)} pending)" if waiting else ""
            return f"MAX_OPEN_POSITIONS {cfg.max_open_positions} reached{pending}"
        on_symbol = len(self.positions_for(symbol)) + sum(o.symbol == symbol for o in waiting)
        if new_position and on_symbol >= cfg.max_positions_per_symbol:
            return f"MAX_POSITIONS_PER_SYMBOL {cfg.max_positions_per_symbol} reached for {symbol}"
        pending_lots = sum(float(o.volume_current) for o in waiting)
        held = self.total_lots + self.foreign_lots + pending_lots
        if cfg.max_total_lots and held + volume > cfg.max_total_lots + 1e-9:
            foreign = f" ({self.foreign_lots:g} not this trader's)" if self.foreign_lots else ""
            pending = f", {pending_lots:g} pending" if pending_lots else ""
            return (
                f"MAX_TOTAL_LOTS {cfg.max_total_lots:g} would be exceeded "
                f"({held:g} open{foreign}{pending} + {volume:g})"
            )
        equity = float(account.equity)
        if cfg.max_margin_pct and equity > 0:
            used = float(account.margin) + margin
            if 100.0 * used / equity > cfg.max_margin_pct:
                return (
                    f"MAX_MARGIN_PCT {cfg.max_margin_pct:g}% would be exceeded "
                    f"({100.0 * used / equity:.1f}% of equity)"
                )
        return None

    # ------------------------------------------------------------ kill switch

    def read_kill_switch(self, path: Path | None = None) -> KillSwitch:
        """The level the kill-switch file asks for (its first word, else KILL_SWITCH_ACTION)."""
        path = path or self.config.kill_switch_file
        level = kill_switch_file_level(path, self.config.kill_switch_action)
        return KillSwitch(None) if level is None else KillSwitch(level, str(path))

    def update_kill_switch(self) -> KillSwitch | None:
        """Re-read the file; apply, record and return the new state when it changed. The
        state applies even when it cannot be recorded (AuditWriteError after the change)."""
        wanted = self.read_kill_switch()
        path = self.config.kill_switch_file
        # taken whenever the file is gone: a note with no switch left to clear is stale
        resumed_by = take_resume_origin(path) if wanted.level is None else None
        if wanted.level == self.kill_switch.level:
            return None
        if wanted.level == "close_all" and self.kill_switch.source == "after close_all":
            return None  # already flattened for this file; stay halted
        self.kill_switch = wanted
        if wanted.level is None:
            self.audit.record_event(
                "kill_switch_off",
                f"kill-switch file removed{_by(resumed_by)}: trading resumes",
                level="warning",
                data=_asked(resumed_by) or None,
                fallback=True,
            )
        else:
            origin = kill_switch_origin(path)
            self.audit.record_event(
                "kill_switch_on",
                f"kill switch: {wanted.level} ({wanted.source}){_by(origin)}",
                level="critical",
                data={"level": wanted.level, "source": wanted.source, **_asked(origin)},
                fallback=True,
            )
        return wanted

    def settle_close_all(self) -> None:
        """close_all has flattened the book: stay halted from now on."""
        if self.kill_switch.level == "close_all":
            self.kill_switch = KillSwitch("halt", "after close_all")
            self.audit.record_event(
                "kill_switch_on",
                "close_all done: halted",
                level="critical",
                data={"level": "halt", "source": "after close_all"},
                fallback=True,
            )

    # ------------------------------------------------------------ enable / disable

    def disable(self, key: str, reason: str) -> bool:
        """Stop new entries for `key` (e.g. 'audit', 'real_account'); True if newly disabled."""
        if key in self._disabled:
            return False
        self._disabled[key] = reason
        logger.error("new entries disabled: %s", reason)
        return True

    def enable(self, key: str) -> bool:
        return self._disabled.pop(key, None) is not None

    @property
    def entries_enabled(self) -> bool:
        return not self._disabled

    @property
    def disabled_reasons(self) -> list[str]:
        return list(self._disabled.values())


def _by(origin: Origin | None) -> str:
    return f", asked from {origin.describe()}" if origin else ""


def _asked(origin: Origin | None) -> dict[str, Any]:
    return {"origin": origin.as_dict()} if origin else {}


def _identifier(position: Any) -> int:
    return int(getattr(position, "identifier", 0) or position.ticket)
