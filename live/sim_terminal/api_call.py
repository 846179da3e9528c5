"""The wrapper every MetaTrader5 function of the simulated terminal goes through.

One call at a time (the terminal's lock); the error slot reset to (1, 'Success'); the link
and faults applied first (the terminal's `_before_call`); a CallFailed turned into what the
package answers: None, or False for its bool functions (MT5_NOTES §2).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from live.sim_terminal import arguments
from live.sim_terminal.arguments import CallFailed

logger = logging.getLogger(__name__)

NO_IPC = (-10004, "No IPC connection")
IPC_TIMEOUT = (-10005, "IPC timeout")
_BOOL_FUNCTIONS = {"initialize", "login", "symbol_select", "market_book_add", "market_book_release"}
# malformed arguments give None here, not False (MT5_NOTES §2)
_NONE_WHEN_MALFORMED = {"market_book_add", "market_book_release"}


def api_call(function: Callable[..., Any]) -> Callable[..., Any]:
    """Serialise the call, reset the error slot, apply faults, turn CallFailed into None/False."""
    name = function.__name__
    failed = False if name in _BOOL_FUNCTIONS else None

    @functools.wraps(function)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._error = (1, "Success")
            try:
                self._before_call(name)
                return arguments.invoke(function, self, args, kwargs)
            except CallFailed as fail:
                self._error = (fail.code, fail.text)
                return None if fail.code == -2 and name in _NONE_WHEN_MALFORMED else failed

    return call
