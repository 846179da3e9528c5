"""The trader's logs: JSON lines to a rotating `LOG_DIR/live_trader.log`, readable lines on
stderr, every configured secret redacted from both (`setup_logging`)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from live.config_values import REDACTED

if TYPE_CHECKING:
    from live.config import LiveConfig

logger = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC ISO-8601), level, logger, message, plus context."""

    CONTEXT_KEYS = ("symbol", "client_order_id", "retcode", "event", "ticket", "bar_time")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in self.CONTEXT_KEYS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info or record.exc_text:
            # exc_text holds the traceback already redacted by RedactingFilter
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RedactingFilter(logging.Filter):
    """Replaces secret values wherever they appear in a record's final text."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = self._redact(text)
        if redacted != text:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def setup_logging(config: LiveConfig, *, console: bool = True) -> Path:
    """JSON lines to a rotating `LOG_DIR/live_trader.log`, readable lines on stderr.

    Returns the log file path. Secret values are redacted from both.
    """
    config.log_dir.mkdir(parents=True, exist_ok=True)
    log_file = config.log_dir / "live_trader.log"
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_live_trader", False):
            root.removeHandler(handler)
            handler.close()
    redact = RedactingFilter(config.secrets())
    file_handler = logging.handlers.RotatingFileHandler(
        log_file,
        maxBytes=config.log_max_bytes,
        backupCount=config.log_backups,
        encoding="utf-8",
    )
    file_handler.setFormatter(JsonFormatter())
    handlers: list[logging.Handler] = [file_handler]
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
        )
        handlers.append(stream)
    for handler in handlers:
        handler.addFilter(redact)
        handler._live_trader = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(config.log_level)
    for chatty in ("httpx", "httpcore", "telegram", "urllib3", "rpyc"):
        # libraries that log every request (and Telegram's URLs carry the bot token)
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    return log_file


def _utc_iso(created: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
