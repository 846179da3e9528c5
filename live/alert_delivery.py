"""Delivering alerts on one channel: the message, the channel contract, and the worker.

An `Alert` is one message for one channel; a `Channel` sends it or raises `DeliveryError`
(retry_after to wait, permanent to give up). A `ChannelWorker` owns one channel's queue and
thread: it writes each alert to the audit DB's outbox, sends it with retries and backoff
(honouring the receiver's retry_after), records each outcome, and collapses a flood of the
same alert within FLOOD_WINDOW_S into one message and a "repeated N times" follow-up. Every
failure text is scrubbed of secrets (a bot token travels inside Telegram's URLs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from live.errors import AuditWriteError

logger = logging.getLogger(__name__)

TITLES = {
    "startup": "Trader started",
    "shutdown": "Trader stopped",
    "trade_opened": "Trade opened",
    "trade_closed": "Trade closed",
    "order_failed": "Order failed",
    "error": "Error",
    "kill_switch": "Kill switch",
    "daily_limit": "Daily limit reached",
    "account_rules": "Account rule breached",
    "disconnect": "Terminal disconnected",
    "reconnect": "Terminal reconnected",
}
MARKS = {"info": "[i]", "warning": "[!]", "error": "[x]", "critical": "[!!!]"}
FLOOD_WINDOW_S = 60.0
MAX_QUEUE = 1000


class DeliveryError(Exception):
    """A failed send. retry_after: seconds the receiver asked to wait; permanent: give up."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


class Channel(Protocol):
    name: str

    def send(self, text: str, alert: Alert) -> None:
        """Deliver or raise DeliveryError."""

    def close(self) -> None: ...


@dataclass
class Alert:
    """One message for one channel; `alert_id` is its outbox row (None if not persisted)."""

    kind: str
    severity: str
    text: str
    alert_id: int | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.text


def format_message(kind: str, severity: str, text: str) -> str:
    """The pre-built message: severity mark, title for the kind, then the text."""
    title = TITLES.get(kind, kind.replace("_", " ").capitalize())
    return f"{MARKS.get(severity, '')} {title}\n{text}".strip()


def scrub(text: str, secrets: list[str]) -> str:
    """`text` without any secret (a bot token travels inside Telegram's URLs)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class ChannelWorker:
    """A queue and a thread delivering one channel's alerts, oldest first."""

    def __init__(
        self,
        channel: Channel,
        audit: Any,
        *,
        secrets: list[str],
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        flood_window_s: float = FLOOD_WINDOW_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.audit = audit
        self._secrets = secrets
        self._base, self._max = base_delay_s, max_delay_s
        self._window = flood_window_s
        self._monotonic = monotonic
        self._pending: deque[Alert] = deque()
        self._recent: dict[tuple[str, str], list[Any]] = {}  # key -> [sent_at, repeats, alert]
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(
            target=self._run, name=f"alerts-{channel.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._pending) + int(self._busy)

    def put(self, alert: Alert, *, persist: bool = True) -> None:
        """Queue an alert (non-blocking); a repeat within the flood window is only counted."""
        if self._collapsed(alert):
            if alert.alert_id is not None:  # from the outbox: settle it, or it comes back
                self._outcome(alert, "dropped", 0, "collapsed into an identical alert")
            return
        if persist:
            alert.alert_id = self._persist(alert)
        with self._cond:
            if len(self._pending) >= MAX_QUEUE:
                dropped = self._pending.popleft()
                self._outcome(dropped, "dropped", 0, "queue full")
            self._pending.append(alert)
            self._cond.notify()

    def _collapsed(self, alert: Alert) -> bool:
        """Count a repeat of an alert sent within the flood window, or already waiting."""
        with self._cond:
            recent = self._recent.get(alert.key)
            if recent is not None and self._monotonic() - recent[0] < self._window:
                recent[1] += 1
                return True
            if any(queued.key == alert.key for queued in self._pending):
                return True
            self._recent[alert.key] = [self._monotonic(), 0, alert]
            return False

    def _persist(self, alert: Alert) -> int | None:
        try:
            return self.audit.record_alert(
                channel=self.channel.name, kind=alert.kind, severity=alert.severity, text=alert.text
            )
        except AuditWriteError as exc:  # still deliver it; it just will not survive a restart
            logger.warning("alert outbox not written (%s); sending anyway", exc)
            return None

    def stop(self, timeout_s: float) -> None:
        """Deliver what can be delivered within `timeout_s`, then stop the thread."""
        deadline = self._monotonic() + timeout_s
        with self._cond:
            while (self._pending or self._busy) and self._monotonic() < deadline:
                self._cond.wait(0.05)
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=max(0.1, deadline - self._monotonic()) + 1.0)

    def _run(self) -> None:
        try:
            while self._next():
                pass
        finally:
            self.channel.close()  # here: the channel's event loop belongs to this thread

    def _next(self) -> bool:
        """Deliver the next alert; False once stopping."""
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait(1.0)
                self._flush_repeats()
            if self._stopping:
                return False
            alert = self._pending.popleft()
            self._busy = True
        try:
            self._deliver(alert)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        return True

    def _flush_repeats(self) -> None:
        """Caller holds the lock. A window closed with repeats: one follow-up message."""
        now = self._monotonic()
        for key, (sent_at, repeats, alert) in list(self._recent.items()):
            if now - sent_at < self._window:
                continue
            del self._recent[key]
            if repeats:
                summary = Alert(
                    alert.kind,
                    alert.severity,
                    f"{alert.text}\n(repeated {repeats} "
                    f"more time{'s' if repeats > 1 else ''} in "
                    f"{self._window:.0f} s)",
                    data=alert.data,
                )
                self._pending.append(summary)

    def _deliver(self, alert: Alert) -> None:
        """Send until delivered, refused for good, or the worker stops (then the alert stays
        in the outbox for the next start). Transient failures back off up to max_delay_s."""
        text = format_message(alert.kind, alert.severity, alert.text)
        delay, attempt = self._base, 0
        while True:
            attempt += 1
            try:
                self.channel.send(text, alert)
            except DeliveryError as exc:
                detail = scrub(str(exc), self._secrets)
                if exc.permanent:
                    self._outcome(alert, "dropped", attempt, detail)
                    return
                self._outcome(alert, "failed", attempt, detail)
                wait = exc.retry_after if exc.retry_after is not None else delay
                logger.warning(
                    "%s alert attempt %d failed: %s; retrying in %.1f s",
                    self.channel.name,
                    attempt,
                    detail,
                    wait,
                )
                with self._cond:
                    if self._cond.wait_for(lambda: self._stopping, timeout=wait):
                        return
                delay = min(delay * 2, self._max)
            except Exception as exc:  # a channel bug must not kill the worker
                self._outcome(
                    alert, "failed", attempt, scrub(f"{type(exc).__name__}: {exc}", self._secrets)
                )
                return
            else:
                self._outcome(alert, "delivered", attempt, "")
                return

    def _outcome(self, alert: Alert, status: str, attempts: int, detail: str) -> None:
        if status == "dropped":
            logger.error(
                "%s alert given up after %d attempt(s): %s", self.channel.name, attempts, detail
            )
        if alert.alert_id is None:
            return
        try:
            self.audit.record_alert_delivery(
                alert.alert_id, status=status, attempts=attempts, detail=detail
            )
        except AuditWriteError as exc:
            logger.warning("alert delivery not recorded: %s", exc)
