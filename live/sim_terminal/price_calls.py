"""The simulated terminal's price calls: copy_rates_* and copy_ticks_*, bars and ticks up to the
simulated now, stamped in server time.

A mixin of SimTerminal (terminal.py), which holds the feeds, the clock and the server clock.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from live.sim_terminal import arguments
from live.sim_terminal.api_call import api_call
from live.sim_terminal.arguments import INVALID, CallFailed
from live.sim_terminal.constants import CONSTANTS, K
from live.sim_terminal.market import TIMEFRAME_NAMES as _TIMEFRAMES
from live.sim_terminal.market import finer_than

logger = logging.getLogger(__name__)

TIMEFRAME_NAMES = {CONSTANTS[f"TIMEFRAME_{name}"]: name for name in _TIMEFRAMES}
COPY_TICKS = (K.COPY_TICKS_ALL, K.COPY_TICKS_INFO, K.COPY_TICKS_TRADE)


class PriceCalls:
    """copy_rates_from, copy_rates_from_pos, copy_rates_range, copy_ticks_from, copy_ticks_range."""

    def _timeframe(self, code: object) -> str:
        """The timeframe's name; finer than the base bars is refused (they cannot be made)."""
        name = TIMEFRAME_NAMES.get(code) if arguments.is_int(code) else None
        if name is None or finer_than(name, self.config.timeframe):
            raise CallFailed(-2, INVALID)
        return name

    @api_call
    def copy_rates_from(
        self, symbol: str, timeframe: int, date_from: Any, count: int, /
    ) -> np.ndarray:
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        until = min(self.server_clock.date_argument(date_from), self.clock.now())
        wanted = arguments.count(count)
        rates = feed.rates_until(self.clock.now(), name)
        return self.server_clock.rates(rates[rates["time"] <= until][-wanted:])

    @api_call
    def copy_rates_from_pos(
        self, symbol: str, timeframe: int, start_pos: int, count: int, /
    ) -> np.ndarray:
        """`count` bars back from `start_pos` (0 = the forming bar); fewer where history
        ends; a start beyond history fails like the terminal's copy (-1, no data)."""
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        if not arguments.is_int(start_pos) or start_pos < 0:
            raise CallFailed(-2, INVALID)
        rates = feed.rates_until(self.clock.now(), name, tail=start_pos + arguments.count(count))
        if start_pos >= len(rates):
            raise CallFailed(-1, "Terminal: Call failed")
        return self.server_clock.rates(rates[: len(rates) - start_pos])

    @api_call
    def copy_rates_range(
        self, symbol: str, timeframe: int, date_from: Any, date_to: Any, /
    ) -> np.ndarray:
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        first, last = self._dates(date_from, date_to)
        rates = feed.rates_until(self.clock.now(), name)
        return self.server_clock.rates(rates[(rates["time"] >= first) & (rates["time"] <= last)])

    @api_call
    def copy_ticks_from(self, symbol: str, date_from: Any, count: int, flags: int, /) -> np.ndarray:
        feed, first = self._feed(symbol), self.server_clock.date_argument(date_from)
        wanted = arguments.count(count)
        ticks = _ticks_of_kind(feed.ticks_between(first, self.clock.now()), flags)[:wanted]
        return self.server_clock.ticks(ticks)

    @api_call
    def copy_ticks_range(
        self, symbol: str, date_from: Any, date_to: Any, flags: int, /
    ) -> np.ndarray:
        feed = self._feed(symbol)
        first, last = self._dates(date_from, date_to)
        ticks = _ticks_of_kind(feed.ticks_between(first, min(last, self.clock.now())), flags)
        return self.server_clock.ticks(ticks)


def _ticks_of_kind(ticks: np.ndarray, flags: object) -> np.ndarray:
    """COPY_TICKS_ALL / INFO (bid or ask changed) / TRADE (last or volume changed).

    The simulated ticks are all bid/ask ticks, so TRADE finds none, as for forex quotes.
    """
    if not arguments.is_int(flags) or flags not in COPY_TICKS:
        raise CallFailed(-2, INVALID)
    if flags == K.COPY_TICKS_TRADE:
        wanted = K.TICK_FLAG_LAST | K.TICK_FLAG_VOLUME
    elif flags == K.COPY_TICKS_INFO:
        wanted = K.TICK_FLAG_BID | K.TICK_FLAG_ASK
    else:
        return ticks
    return ticks[(ticks["flags"] & wanted) != 0]
