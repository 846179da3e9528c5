"""The trading loop's per-symbol faults: each failure recorded once per bar (or once while it
repeats loop after loop), logged and alerted once; a strategy that fails STRATEGY_MAX_FAILURES
closed bars in a row pauses its symbol, once, with one alert, while the other symbols go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from backtest.strategy import StrategyError
from live.audit_health import AuditHealth
from live.status import SessionSummary

logger = logging.getLogger(__name__)


class SymbolFaults:
    """Failures and pauses by symbol. `withdraw(reason, symbol=)` removes a paused symbol's
    waiting entries and `changed()` tells the status reporter; events go through `health`
    (the audit), alerts through `alerts`, and each failure counts in `summary.errors`."""

    def __init__(
        self,
        *,
        max_strategy_failures: int,
        summary: SessionSummary,
        health: AuditHealth,
        alerts: Any,
        withdraw: Callable[..., None],
        changed: Callable[[], None],
    ) -> None:
        self._max_strategy_failures = max_strategy_failures
        self._summary = summary
        self._health = health
        self._alerts = alerts
        self._withdraw = withdraw
        self._changed = changed
        self._failures: dict[str, tuple] = {}  # symbol -> its last (kind, message, bar)
        self._strategy_failures: dict[str, int] = {}  # symbol -> failed bars in a row
        self._paused: dict[str, str] = {}  # symbol -> why it was paused

    @property
    def paused(self) -> dict[str, str]:
        """The paused symbols and why (a copy)."""
        return dict(self._paused)

    def is_paused(self, symbol: str) -> bool:
        return symbol in self._paused

    def recovered(self, symbol: str) -> None:
        """The symbol's strategy decided again: its failures are history."""
        self._failures.pop(symbol, None)
        self._strategy_failures.pop(symbol, None)

    def failed(
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
        self._summary.errors += 1
        key = (kind, message, bar)
        if self._failures.get(symbol) == key:
            logger.debug("%s: %s (again)", symbol, message, extra={"symbol": symbol})
            return
        repeated = self._failures.get(symbol, ())[:2] == (kind, message)
        self._failures[symbol] = key
        self._health.event(kind, message, severity, symbol=symbol)
        if repeated:
            return
        logger.log(
            logging.CRITICAL if severity == "critical" else logging.ERROR,
            "%s: %s",
            symbol,
            message,
            extra={"symbol": symbol},
        )
        self._alerts.notify("error", f"{symbol}: {message}", severity=severity, symbol=symbol)

    def strategy_failed(self, symbol: str, bar_time: datetime, exc: StrategyError) -> None:
        """The strategy failed on the closed bar `bar_time`: recorded for that bar; after
        STRATEGY_MAX_FAILURES in a row the symbol is paused."""
        self.failed(symbol, "strategy_error", f"{exc}; skipped for this bar", bar=bar_time)
        failures = self._strategy_failures.get(symbol, 0) + 1
        self._strategy_failures[symbol] = failures
        if failures >= self._max_strategy_failures:
            self._pause(symbol, f"the strategy failed on {failures} bars in a row (last: {exc})")

    def _pause(self, symbol: str, why: str) -> None:
        self._paused[symbol] = why
        self._withdraw(f"{symbol} paused", symbol=symbol)
        self._changed()
        text = (
            f"{symbol} paused: {why}. No new decisions for it; its open positions keep their "
            "stops and the kill switch still acts. Fix the strategy and restart to resume"
        )
        self._health.event("symbol_paused", text, "critical", symbol=symbol)
        logger.critical(text, extra={"symbol": symbol})
        self._alerts.notify("error", text, severity="critical", symbol=symbol)
