"""The live trader's exceptions, grouped by what the caller must do about them.

ConfigError          fatal: fix the configuration (exit code 2)
BrokerUnavailable    temporary: reconnect and retry later
RetryableOrderError  temporary for this order: refresh the price and resend
OrderRejected        final for this order: skip it, record why
OutcomeUnknown       the order may or may not exist: reconcile before anything else
AuditWriteError      no audit trail: stop opening positions
StrategyError        (backtest.strategy) skip this symbol for this bar
"""

from __future__ import annotations

from backtest.strategy import StrategyError

__all__ = [
    "AuditWriteError",
    "BrokerError",
    "BrokerUnavailable",
    "ConfigError",
    "OrderRejected",
    "OutcomeUnknown",
    "RetryableOrderError",
    "StrategyError",
    "TraderError",
]


class TraderError(Exception):
    """Base of the live trader's own errors."""


class ConfigError(TraderError):
    """A setting is missing or invalid; the message names the key and the value."""


class BrokerError(TraderError):
    """A failure reported by the MT5 terminal or the trade server.

    `code` is the `last_error()` code (negative, or 1) or the trade return code (10xxx);
    `text` is the terminal's message or the server's comment; `result` is the server's
    OrderSendResult/OrderCheckResult record when there was one.
    """

    def __init__(
        self, message: str, *, code: int | None = None, text: str = "", result: object = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.text = text
        self.result = result


class BrokerUnavailable(BrokerError):
    """The terminal or its server cannot be reached now (IPC failure, no connection)."""


class RetryableOrderError(BrokerError):
    """The server refused this attempt for a passing reason (requote, price changed, ...)."""


class OrderRejected(BrokerError):
    """The server refused the order for a reason that a retry will not fix."""


class OutcomeUnknown(BrokerError):
    """The request may have been executed but no reply arrived (timeout, lost reply)."""


class AuditWriteError(TraderError):
    """The audit database could not record an event; trading without a trail is not allowed."""
