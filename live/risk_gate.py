"""The risk gate: whether the trader may trade now, and why not. It owns the kill-switch file's
effect (halt, reduce, close_all), the daily limits, the account guards (a real account, a
terminal switched to another account), the effect of an account-rules breach
(live/account_guard.py decides it) and the list of reasons new entries are blocked.

State that must survive a restart lives in the StateManager; this module decides with it and
says so (log, audit event, alert).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from live.account_guard import AccountGuard, Breach
from live.audit_health import AuditHealth
from live.broker_types import ACCOUNT_TRADE_MODE_REAL
from live.config import LiveConfig
from live.errors import AuditWriteError, ConfigError
from live.state_manager import StateManager

logger = logging.getLogger(__name__)


class RiskGate:
    """Kill switch, daily limits, account guards and entry blockers for one trader."""

    def __init__(
        self,
        config: LiveConfig,
        state: StateManager,
        *,
        health: AuditHealth,
        alerts: Any,
        on_change: Callable[[], None],
        request_stop: Callable[[str], None],
        guard: AccountGuard | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self._health = health
        self._alerts = alerts
        self._changed = on_change
        self._request_stop = request_stop
        self._login = 0  # the account the trader started on
        self.guard = guard

    # ------------------------------------------------------------ account

    def guard_at_start(self, account: Any) -> None:
        """Refuse a real account unless allowed (ConfigError); remember the account."""
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
        self._login = int(account.login)

    def account_allowed(self, account: Any) -> bool:
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
        self._health.event("account_changed", f"{problem}; stopping", "critical")
        logger.critical("%s: no more orders; stopping", problem)
        self._alerts.notify("error", f"{problem}: trader stopped", severity="critical")
        self._request_stop(problem)
        return False

    # ------------------------------------------------------------ kill switch

    @property
    def kill_level(self) -> str | None:
        return self.state.kill_switch.level

    def check_kill_switch(self) -> None:
        """Re-read the kill-switch file; a change applies at once, recorded or not."""
        before = self.state.kill_switch
        try:
            self.state.update_kill_switch()
        except AuditWriteError as exc:  # applied all the same: a full disk never delays it
            self._health.failed(exc)
        change = self.state.kill_switch
        if change == before:
            return
        self._changed()
        if change.level is None:
            logger.warning("kill switch cleared: trading resumes")
            self._alerts.notify(
                "kill_switch", "kill switch cleared: trading resumes", severity="warning"
            )
        else:
            logger.critical("KILL SWITCH %s (%s)", change.level, change.source)
            self._alerts.notify(
                "kill_switch",
                f"KILL SWITCH {change.level}: no new entries",
                severity="critical",
                level=change.level,
            )

    def settle_close_all(self) -> None:
        """close_all flattened the book: stay halted from now on."""
        try:
            self.state.settle_close_all()
        except AuditWriteError as exc:
            self._health.failed(exc)

    # ------------------------------------------------------------ daily limits

    def check_daily_limits(self, equity: float) -> None:
        reason = self.state.daily_limit_reason(equity)
        if reason and self.state.disable("daily_limit", reason):
            self._changed()
            try:
                newly = self.state.record_daily_limit(reason)
            except AuditWriteError as exc:
                self._health.failed(exc)
                newly = True
            if newly:
                self._alerts.notify(
                    "daily_limit",
                    f"daily limit reached: {reason}; no new entries until the next trading day",
                    severity="warning",
                )
        elif not reason and self.state.enable("daily_limit"):
            self._health.event("daily_limit_reset", "new trading day: entries allowed again")

    # ------------------------------------------------------------ account rules

    def check_account_rules(self, account: Any) -> Breach | None:
        """Hold the account's equity against the preset's floors (every loop); a new breach
        is returned for the caller to close first, then `announce`."""
        if self.guard is None:
            return None
        breach = self.guard.check(float(account.balance), float(account.equity))
        if breach is not None:
            logger.critical("%s", breach.text())
            self._changed()
        return breach

    @property
    def rules_flatten(self) -> bool:
        """A fail-type breach is in force: this trader's positions must all be closed."""
        return self.guard is not None and self.guard.flattening

    def announce(self, breach: Breach) -> None:
        """After the close: alert, then record the event with the numbers."""
        self._alerts.notify("account_rules", breach.text(), severity="critical", **breach.data())
        self.guard.record_breach(breach)

    # ------------------------------------------------------------ entries

    def entry_blocker(self) -> str | None:
        """Why no new position may open now, or None."""
        if self.state.kill_switch.blocks_entries:
            return f"kill_switch_{self.state.kill_switch.level}"
        if not self.state.entries_enabled:
            return "disabled: " + "; ".join(self.state.disabled_reasons)
        return self.guard.blocker() if self.guard is not None else None

    def blocking_reasons(self) -> list[str]:
        kill = self.state.kill_switch
        rules = self.guard.blocker() if self.guard is not None else None
        return (
            ([f"kill switch {kill.level}"] if kill.blocks_entries else [])
            + self.state.disabled_reasons
            + ([rules] if rules else [])
        )

    @property
    def entries_allowed(self) -> bool:
        return self.entry_blocker() is None
