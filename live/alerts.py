"""Alerts to Telegram and webhooks, and Telegram commands to the trader.

`AlertSystem.notify()` never blocks the trading loop and never raises: each alert is written
to the audit DB's outbox (one row per channel) and queued for that channel's worker thread,
which sends it with retries and backoff, honours Telegram's retry_after, and records each
outcome. Alerts still undelivered when the process stops are sent after the next start. A
flood of the same alert within FLOOD_WINDOW_S becomes one message and a "repeated N times"
follow-up. Channels are independent: a slow or failing one never delays another.

Telegram goes through python-telegram-bot (its base URL is configurable, which is how the
tests point it at a local stand-in), webhooks are JSON POSTs signed with HMAC-SHA256 in the
X-Signature-SHA256 header when WEBHOOK_SECRET is set. `start_commands(trader)` answers
/status, /positions, /daily, /stop, /resume and /help from the configured chat only; commands
sent while no trader was listening are dropped, not replayed at the next start, and a command
that fails is answered with the error while the listener keeps going.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from live.config import ALERT_LEVELS, LiveConfig
from live.control_requests import Origin, clear_kill_switch, set_kill_switch
from live.errors import AuditWriteError
from live.state_manager import kill_switch_file_level

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
HELP_TEXT = (
    "/status - mode, account, kill switch, limits\n/positions - open positions\n"
    "/daily - today's entries and loss against the limits\n/stop - create the "
    "kill-switch file (halt new entries)\n/resume - remove the kill-switch file\n"
    "/help - this list"
)


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


# ---------------------------------------------------------------- channels


class TelegramChannel:
    """Sends through python-telegram-bot on the worker's own event loop."""

    name = "telegram"

    def __init__(self, token: str, chat_id: str, api_url: str) -> None:
        self._token, self.chat_id, self._api_url = token, chat_id, api_url.rstrip("/")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot: Any = None

    def bot(self) -> Any:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        if self._bot is None:
            self._loop = asyncio.new_event_loop()
            self._bot = Bot(
                self._token,
                base_url=f"{self._api_url}/bot",
                request=HTTPXRequest(connect_timeout=5, read_timeout=10),
            )
        return self._bot

    def run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def send(self, text: str, alert: Alert) -> None:
        from telegram import error

        bot = self.bot()
        try:
            self.run(bot.send_message(chat_id=self.chat_id, text=text[:4096]))
        except error.RetryAfter as exc:
            with warnings.catch_warnings():  # PTB 22 announces a type change; both handled
                warnings.simplefilter("ignore", DeprecationWarning)
                seconds = exc.retry_after
            seconds = seconds.total_seconds() if hasattr(seconds, "total_seconds") else seconds
            raise DeliveryError("Telegram asked to slow down", retry_after=float(seconds)) from None
        except (error.BadRequest, error.Forbidden, error.InvalidToken) as exc:
            raise DeliveryError(f"Telegram refused: {exc}", permanent=True) from None
        except error.TelegramError as exc:  # network errors, timeouts, 5xx
            raise DeliveryError(f"Telegram unreachable: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        if self._loop is not None:
            if self._bot is not None:
                try:
                    self.run(self._bot.shutdown())
                except Exception as exc:  # closing must not raise
                    logger.debug("telegram shutdown: %s", type(exc).__name__)
            self._loop.close()
            self._loop = None


class WebhookChannel:
    """JSON POSTs, signed when a secret is set."""

    name = "webhook"

    def __init__(self, url: str, secret: str = "", timeout_s: float = 5.0) -> None:
        import requests

        self.url, self._secret, self._timeout = url, secret, timeout_s
        self._session = requests.Session()

    def body(self, text: str, alert: Alert) -> bytes:
        return json.dumps(
            {
                "kind": alert.kind,
                "severity": alert.severity,
                "text": text,
                "time": alert.created.isoformat(),
                "data": alert.data,
            },
            default=str,
            sort_keys=True,
        ).encode()

    def signature(self, body: bytes) -> str:
        return hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()

    def send(self, text: str, alert: Alert) -> None:
        import requests

        body = self.body(text, alert)
        headers = {"Content-Type": "application/json"}
        if self._secret:
            headers["X-Signature-SHA256"] = self.signature(body)
        try:
            response = self._session.post(
                self.url, data=body, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from None
        if response.status_code < 300:
            return
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryError(
                f"webhook answered {response.status_code}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        raise DeliveryError(f"webhook answered {response.status_code}", permanent=True)

    def close(self) -> None:
        self._session.close()


def _retry_after(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:
        return None


# ---------------------------------------------------------------- one worker per channel


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


# ---------------------------------------------------------------- the system


class AlertSystem:
    """The trader's alerts: `notify(kind, text, severity=...)` fans out to every channel."""

    def __init__(
        self,
        workers: list[ChannelWorker],
        *,
        min_level: str = "info",
        telegram: TelegramChannel | None = None,
        kill_switch_file: Path | None = None,
        kill_switch_action: str = "halt",
        secrets: list[str] | None = None,
    ) -> None:
        self.workers = workers
        self._min = ALERT_LEVELS.index(min_level)
        self._telegram = telegram
        self._kill_switch_file = kill_switch_file
        self._kill_switch_action = kill_switch_action
        self._secrets = secrets or []
        self._commands: CommandListener | None = None

    @classmethod
    def from_config(cls, config: LiveConfig, *, audit: Any, **worker_options: Any) -> AlertSystem:
        """Channels from the config; undelivered alerts of earlier runs are queued first."""
        secrets = config.secrets()
        channels: list[Channel] = []
        telegram = None
        if config.telegram_bot_token and config.telegram_chat_id:
            telegram = TelegramChannel(
                config.telegram_bot_token, config.telegram_chat_id, config.telegram_api_url
            )
            channels.append(telegram)
        if config.webhook_url:
            channels.append(WebhookChannel(config.webhook_url, config.webhook_secret))
        workers = [ChannelWorker(c, audit, secrets=secrets, **worker_options) for c in channels]
        system = cls(
            workers,
            min_level=config.alert_min_level,
            telegram=telegram,
            kill_switch_file=config.kill_switch_file,
            kill_switch_action=config.kill_switch_action,
            secrets=secrets,
        )
        for worker in workers:
            system._requeue(worker)
            worker.start()
        return system

    def _requeue(self, worker: ChannelWorker) -> None:
        try:
            rows = worker.audit.reader.undelivered_alerts(worker.channel.name)
        except Exception as exc:  # alerts must never stop the trader
            logger.warning("could not read the alert outbox: %s", exc)
            return
        for row in rows:
            worker.put(
                Alert(row["kind"], row["severity"], row["text"], alert_id=row["id"]), persist=False
            )
        if rows:
            logger.info(
                "%d undelivered %s alert(s) from an earlier run queued",
                len(rows),
                worker.channel.name,
            )

    def notify(self, kind: str, text: str, *, severity: str = "info", **data: Any) -> None:
        """Queue an alert on every channel; returns at once, never raises."""
        try:
            if severity not in ALERT_LEVELS or ALERT_LEVELS.index(severity) < self._min:
                return
            for worker in self.workers:
                worker.put(Alert(kind, severity, text, data=dict(data)))
        except Exception as exc:  # alerting must never break trading
            logger.error("alert %s not queued: %s", kind, scrub(str(exc), self._secrets))

    def queue_depth(self) -> int:
        return sum(worker.depth for worker in self.workers)

    def start_commands(self, trader: Any, *, poll_timeout_s: float = 20.0) -> None:
        """Answer Telegram commands from the configured chat (needs a Telegram channel)."""
        if self._telegram is None:
            return
        self._commands = CommandListener(
            TelegramChannel(self._telegram._token, self._telegram.chat_id, self._telegram._api_url),
            trader,
            kill_switch_file=self._kill_switch_file,
            kill_switch_action=self._kill_switch_action,
            poll_timeout_s=poll_timeout_s,
            secrets=self._secrets,
        )
        self._commands.start()

    @property
    def commands_listening(self) -> bool:
        """Whether the Telegram command listener's thread is alive."""
        return self._commands is not None and self._commands.alive

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what can be flushed within `timeout_s` (per channel, in parallel), stop."""
        if self._commands is not None:
            self._commands.stop()
        stoppers = [threading.Thread(target=w.stop, args=(timeout_s,)) for w in self.workers]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()


# ---------------------------------------------------------------- Telegram commands


class CommandListener:
    """Long-polls getUpdates and answers commands from the configured chat only."""

    def __init__(
        self,
        channel: TelegramChannel,
        trader: Any,
        *,
        kill_switch_file: Path | None,
        poll_timeout_s: float,
        secrets: list[str],
        kill_switch_action: str = "halt",
    ) -> None:
        self.channel = channel
        self.trader = trader
        self.kill_switch_file = kill_switch_file
        self.kill_switch_action = kill_switch_action
        self.poll_timeout_s = poll_timeout_s
        self._secrets = secrets
        self._stop = threading.Event()
        self._offset: int | None = None  # None until the backlog before the start is skipped
        self._started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="telegram-commands", daemon=True)

    def start(self) -> None:
        self._started_at = time.time()
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the thread to end; a long poll in flight is not waited for (daemon thread),
        so Ctrl+C never hangs on Telegram."""
        self._stop.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        try:
            self._poll()
        finally:
            self.channel.close()  # in this thread, which owns the channel's event loop

    def _poll(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                if self._offset is None:
                    self._skip_backlog()
                    continue
                updates = self._updates(self._offset, self.poll_timeout_s)
                delay = 1.0
            except Exception as exc:  # keep listening whatever happens
                logger.warning(
                    "telegram commands: %s; retrying in %.0f s",
                    scrub(f"{type(exc).__name__}: {exc}", self._secrets),
                    delay,
                )
                self._stop.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            for update in updates:
                self._offset = update.update_id + 1
                self._handle_safely(update)

    def _updates(self, offset: int, timeout_s: float) -> Any:
        return self.channel.run(
            self.channel.bot().get_updates(
                offset=offset,
                timeout=timeout_s,
                read_timeout=timeout_s + 10,
                allowed_updates=["message"],
            )
        )

    def _skip_backlog(self) -> None:
        """Telegram keeps unanswered messages for a day: a /resume sent while the trader was
        down must not act when it starts. offset=-1 returns only the newest update and makes
        Telegram forget the older ones; the newest is answered only if sent after the start."""
        newest = list(self._updates(-1, 0))
        self._offset = newest[-1].update_id + 1 if newest else 0
        if not newest:
            return
        message = newest[-1].message
        sent = message.date.timestamp() if message is not None and message.date else 0.0
        if sent >= int(self._started_at):
            self._handle_safely(newest[-1])
        else:
            logger.warning(
                "telegram: commands sent before the trader started were dropped (the newest: %r)",
                (message.text or "")[:40] if message else "",
            )

    def _handle_safely(self, update: Any) -> None:
        try:
            self._handle(update)
        except Exception:  # one bad update must not end the listener
            logger.exception("telegram: an update could not be handled; still listening")

    def _handle(self, update: Any) -> None:
        message = update.message
        if message is None or not message.text:
            return
        if str(message.chat.id) != str(self.channel.chat_id):
            logger.warning(
                "telegram: ignored a message from chat %s (not the configured chat)",
                message.chat.id,
            )
            return
        reply = self._answer_or_error(message.text)
        try:
            self.channel.run(
                self.channel.bot().send_message(chat_id=self.channel.chat_id, text=reply[:4096])
            )
        except Exception as exc:
            logger.warning(
                "telegram reply failed: %s", scrub(f"{type(exc).__name__}: {exc}", self._secrets)
            )

    def _answer_or_error(self, text: str) -> str:
        try:
            return self.answer(text)
        except Exception as exc:  # the trader goes on; say what failed instead of silence
            command = text.strip().split()[0][:40] if text.strip() else text
            logger.exception("telegram command %s failed", command)
            return scrub(
                f"{command} failed: {type(exc).__name__}: {exc}. The trader keeps "
                "running; details are in its log.",
                self._secrets,
            )

    def answer(self, text: str) -> str:
        """The reply to one command text (e.g. '/status' or '/status@my_bot')."""
        command = text.strip().split()[0].split("@")[0].lower() if text.strip() else ""
        logger.info("telegram command %s", command)
        if command == "/status":
            return self.trader.status_text()
        if command == "/positions":
            return self.trader.positions_text()
        if command == "/daily":
            return self.trader.daily_text()
        if command == "/stop":
            return self._stop_trading()
        if command == "/resume":
            return self._resume_trading()
        return HELP_TEXT

    def kill_switch_level(self) -> str | None:
        """The level the file asks for, read as the trader reads it (first word, else
        KILL_SWITCH_ACTION); None without a file."""
        if self.kill_switch_file is None:
            return None
        return kill_switch_file_level(self.kill_switch_file, self.kill_switch_action)

    def _stop_trading(self) -> str:
        if self.kill_switch_file is None:
            return "no kill-switch file configured"
        level = self.kill_switch_level()
        if level == "halt":
            return f"kill switch already on (halt, {self.kill_switch_file}): no new entries"
        if level is not None:  # reduce or close_all: /stop must never weaken them
            return (
                f"kill switch already on at {level} ({self.kill_switch_file}), stronger "
                "than halt: left as it is"
            )
        set_kill_switch(self.kill_switch_file, "halt", self._origin())
        return f"kill switch created ({self.kill_switch_file}): no new entries from the next loop"

    def _resume_trading(self) -> str:
        if self.kill_switch_file is None or not clear_kill_switch(
            self.kill_switch_file, self._origin()
        ):
            return "no kill switch was active"
        return "kill switch removed: trading resumes from the next loop"

    def _origin(self) -> Origin:
        """Who asked, for the trader's event: the configured chat (the only one answered)."""
        return Origin.now("telegram", address=f"chat {self.channel.chat_id}")
