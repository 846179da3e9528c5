"""The trader's answer to an audit outage (the database refusing writes: a full disk, a lock
held too long): no new positions, exits go on (their rows wait in the fallback journal), one
alert, one log line a minute, and probes with backoff; entries come back only after a probe
write got through.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from live.audit_logger import AuditLogger
from live.errors import AuditWriteError
from live.state_manager import StateManager

logger = logging.getLogger(__name__)

PROBE_FIRST_SECONDS = 1.0  # then doubling, up to PROBE_MAX_SECONDS
PROBE_MAX_SECONDS = 60.0
REPORT_EVERY_SECONDS = 60.0


class AuditHealth:
    """Tracks whether the audit log takes writes, on the wall clock (injectable)."""

    def __init__(
        self,
        audit: AuditLogger,
        state: StateManager,
        alerts: Any,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.audit = audit
        self.state = state
        self.alerts = alerts
        self._wall = wall_clock
        self.down_since: float | None = None
        self._delay = PROBE_FIRST_SECONDS
        self._next_probe = 0.0
        self._last_report = 0.0
        self._failures = 0
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def event(
        self,
        kind: str,
        message: str,
        level: str = "info",
        *,
        symbol: str | None = None,
        **data: Any,
    ) -> None:
        """Record an event; a failed write counts toward the outage instead of raising."""
        try:
            self.audit.record_event(kind, message, level=level, symbol=symbol, data=data or None)
        except AuditWriteError as exc:
            self.failed(exc)

    def failed(self, exc: AuditWriteError) -> None:
        """A write failed: the first one stops entries, logs and alerts; later ones are
        counted and summed up once a minute."""
        wall = self._wall()
        if self.down_since is None:
            self._start_outage(wall, exc)
            return
        self._failures += 1
        if wall - self._last_report >= REPORT_EVERY_SECONDS:
            logger.error(
                "audit log still unwritable after %.0f s: %d writes failed in the last %.0f s, "
                "%d rows wait in the fallback journal; no new positions, exits go on (%s)",
                wall - self.down_since,
                self._failures,
                wall - self._last_report,
                len(self.audit.journal.records),
                exc,
            )
            self._last_report, self._failures = wall, 0

    def maybe_recover(self) -> bool:
        """Probe the database when a probe is due; True when the audit log takes writes."""
        if self.audit.outage is not None and self.down_since is None:
            self.failed(AuditWriteError(self.audit.outage.error))  # noticed by a fallback write
        if self.down_since is None:
            return True
        wall = self._wall()
        if wall < self._next_probe:
            return False
        waiting = len(self.audit.journal.records)
        if not self.audit.probe():
            self._delay = min(2 * self._delay, PROBE_MAX_SECONDS)
            self._next_probe = wall + self._delay
            return False
        self._end_outage(wall, waiting)
        return True

    def _start_outage(self, wall: float, exc: AuditWriteError) -> None:
        self.down_since, self._last_report, self._failures = wall, wall, 0
        self._delay = PROBE_FIRST_SECONDS
        self._next_probe = wall + self._delay
        self.outages += 1
        self.state.disable("audit", f"audit log cannot be written: {exc}")
        logger.critical(
            "AUDIT LOG UNWRITABLE: no new positions until it is writable again; exits go on, "
            "recorded first in the fallback journal %s (%s)",
            self.audit.journal.path,
            exc,
        )
        self.alerts.notify(
            "error",
            f"audit log cannot be written, entries stopped (exits go on): {exc}",
            severity="critical",
        )

    def _end_outage(self, wall: float, moved: int) -> None:
        seconds = wall - (self.down_since or wall)
        self.down_since = None
        self.state.enable("audit")
        logger.warning(
            "audit log writable again after %.0f s: entries re-enabled; %d rows moved from the "
            "fallback journal",
            seconds,
            moved,
        )
        self.alerts.notify(
            "error", f"audit log writable again after {seconds:.0f} s", severity="warning"
        )
