"""The Telegram Bot API: the alert channel, and the commands the trader answers.

Both go through python-telegram-bot (its base URL is configurable, which is how the tests
point it at a local stand-in). `CommandListener` answers /status, /positions, /daily, /stop,
/resume and /help from the configured chat only; commands sent while no trader was listening
are dropped, not replayed at the next start, and a command that fails is answered with the
error while the listener keeps going. The bot token never reaches a log or a reply: failure
texts are scrubbed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from live.alert_delivery import Alert, DeliveryError, scrub
from live.control_requests import Origin, clear_kill_switch, set_kill_switch
from live.state_manager import kill_switch_file_level

logger = logging.getLogger(__name__)

HELP_TEXT = (
    "/status - mode, account, kill switch, limits\n/positions - open positions\n"
    "/daily - today's entries and loss against the limits\n/stop - create the "
    "kill-switch file (halt new entries)\n/resume - remove the kill-switch file\n"
    "/help - this list"
)


class TelegramChannel:
    """Sends through python-telegram-bot on the worker's own event loop."""

    name = "telegram"

    def __init__(self, token: str, chat_id: str, api_url: str) -> None:
        self._token, self.chat_id, self._api_url = token, chat_id, api_url.rstrip("/")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot: Any = None

    def twin(self) -> TelegramChannel:
        """The same bot and chat on a new channel, for another thread (each owns its loop)."""
        return TelegramChannel(self._token, self.chat_id, self._api_url)

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
