"""Alerts to Telegram and webhooks, and Telegram commands to the trader: the AlertSystem.

`AlertSystem.notify()` never blocks the trading loop and never raises: each alert is queued on
every channel whose worker (alert_delivery.py) writes it to the audit DB's outbox, sends it
with retries and backoff, and records each outcome. Alerts still undelivered when the process
stops are sent after the next start. Channels are independent: a slow or failing one never
delays another. The channels are telegram_alerts.py's (which also answers commands, started
by `start_commands(trader)`) and webhook_alerts.py's.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from live.alert_delivery import Alert, Channel, ChannelWorker, format_message, scrub
from live.config import LiveConfig
from live.config_values import ALERT_LEVELS
from live.telegram_alerts import HELP_TEXT, CommandListener, TelegramChannel
from live.webhook_alerts import WebhookChannel

logger = logging.getLogger(__name__)

__all__ = ["HELP_TEXT", "AlertSystem", "format_message"]  # the names imported from here


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
            self._telegram.twin(),
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
