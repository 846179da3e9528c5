"""The terminal link as the trading loop sees it: a drop is announced once (status, audit
event, alert), the return once too (plus the reconnect metric), and after a return the
orders whose outcome was pending are reconciled before trading resumes.
"""

from __future__ import annotations

import logging
from typing import Any

from live.audit_health import AuditHealth
from live.errors import AuditWriteError, BrokerError
from live.mt5_connector import ConnectionState, MT5Connector
from live.order_executor import OrderExecutor
from live.status import StatusReporter

logger = logging.getLogger(__name__)

_DOWN_TEXT = "MT5 terminal unreachable; retrying"
_BACK_TEXT = "MT5 terminal reachable again"


class LinkWatch:
    """Asks the connector for the link each loop (it reconnects with backoff) and tells the
    rest of the trader when the link went down or came back."""

    def __init__(
        self,
        connector: MT5Connector,
        *,
        executor: OrderExecutor,
        status: StatusReporter,
        health: AuditHealth,
        alerts: Any,
    ) -> None:
        self._connector = connector
        self._executor = executor
        self._status = status
        self._health = health
        self._alerts = alerts
        self.down = False  # the link was found down and has not come back yet

    def check(self) -> bool:
        """Whether this loop may trade: the link is up, and reconciled after a return."""
        state = self._connector.ensure_connected()
        if state is ConnectionState.DOWN:
            if not self.down:
                self.down = True
                self._status.changed()
                self._health.event("disconnect", _DOWN_TEXT, "error")
                self._alerts.notify("disconnect", _DOWN_TEXT, severity="error")
            return False
        if state is ConnectionState.RECONNECTED or self.down:
            self.down = False
            self._status.changed()
            self._status.metrics.reconnects += 1
            self._health.event("reconnect", _BACK_TEXT, "warning")
            self._alerts.notify("reconnect", _BACK_TEXT, severity="warning")
            try:
                self._executor.reconcile_pending()
            except (BrokerError, AuditWriteError) as exc:
                logger.error("reconciliation after reconnect failed: %s", exc)
                return False
        return True
