"""What the MT5 API's failures mean for the caller: the exceptions a call may raise instead of
answering, and the trade return codes and `last_error()` codes mapped onto live.errors (done,
retry, skip the order, reconcile first, terminal away).

The connector (live/mt5_connector.py and its mt5_* siblings) translates through these; nothing
here calls the API.
"""

from __future__ import annotations

from live.broker_types import (
    IPC_ERROR_CODES,
    RETRYABLE_RETCODES,
    SUCCESS_RETCODES,
    UNKNOWN_OUTCOME_ERROR_CODES,
)
from live.errors import (
    BrokerError,
    BrokerUnavailable,
    OrderRejected,
    OutcomeUnknown,
    RetryableOrderError,
)

# Exceptions a remote (RPyC) or dying terminal raises instead of returning None.
TRANSPORT_ERRORS = (EOFError, ConnectionError, TimeoutError, OSError)
# Anything else an API call raises: over RPyC, a remote exception is re-raised here under
# its own type (TypeError, NameError, ...); it still means the call failed.
API_ERRORS = (Exception,)


def error_for_retcode(code: int) -> type[BrokerError] | None:
    """What a trade return code means for the caller: None (done), retry, or rejected."""
    if code in SUCCESS_RETCODES:
        return None
    return RetryableOrderError if code in RETRYABLE_RETCODES else OrderRejected


def error_for_last_error(code: int, *, sending: bool) -> type[BrokerError]:
    """What a failed call's last_error() code means: terminal away, outcome unknown (only for
    order_send, after which the order may exist), or a refused call."""
    if sending and code in UNKNOWN_OUTCOME_ERROR_CODES:
        return OutcomeUnknown
    if code in IPC_ERROR_CODES:
        return BrokerUnavailable
    return OrderRejected if sending else BrokerError


def described(exc: BaseException) -> str:
    """An exception the API raised, in one line: its type and the first line of its text."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
