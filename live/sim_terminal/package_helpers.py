"""The MetaTrader5 package's Python helpers Buy, Sell and Close, as the simulated terminal's
methods: market deals built from the current tick, retried on requotes and off quotes.

A mixin of SimTerminal (terminal.py); it goes through the terminal's own API calls.
"""

from __future__ import annotations

import logging
from typing import Any

from live.sim_terminal.constants import K

logger = logging.getLogger(__name__)


class PackageHelpers:
    """Buy, Sell, Close (MT5_NOTES §3)."""

    def Buy(
        self,
        symbol: str,
        volume: float,
        price: float | None = None,
        *,
        comment: str | None = None,
        ticket: int | None = None,
    ) -> Any:
        """The package's helper: a market buy, retried on requote/off quotes up to 10 times."""
        return self._helper_deal(symbol, volume, K.ORDER_TYPE_BUY, price, comment, ticket)

    def Sell(
        self,
        symbol: str,
        volume: float,
        price: float | None = None,
        *,
        comment: str | None = None,
        ticket: int | None = None,
    ) -> Any:
        return self._helper_deal(symbol, volume, K.ORDER_TYPE_SELL, price, comment, ticket)

    def Close(
        self, symbol: str, *, comment: str | None = None, ticket: int | None = None
    ) -> bool | str | None:
        """The package's helper: close the symbol's positions (or one ticket) at bid/ask.

        True when all closed, "Partially" when some did, False when none, None on failure.
        """
        positions = (
            self.positions_get(ticket=ticket)
            if ticket is not None
            else self.positions_get(symbol=symbol)
        )
        if not positions:
            return None if positions is None else False
        done = 0
        for position in positions:
            side = K.ORDER_TYPE_SELL if position.type == K.POSITION_TYPE_BUY else K.ORDER_TYPE_BUY
            result = self._helper_deal(
                position.symbol, position.volume, side, None, comment, position.ticket
            )
            done += result is not None and result.retcode == K.TRADE_RETCODE_DONE
        return True if done == len(positions) else ("Partially" if done else False)

    def _helper_deal(
        self,
        symbol: str,
        volume: float,
        side: int,
        price: float | None,
        comment: str | None,
        ticket: int | None,
    ) -> Any:
        result = None
        for _ in range(10):
            tick = self.symbol_info_tick(symbol)
            if tick is None:
                return None
            request = {
                "action": K.TRADE_ACTION_DEAL,
                "symbol": symbol,
                "volume": float(volume),
                "type": side,
                "deviation": 10,
                "magic": 0,
                "price": float(price or (tick.ask if side == K.ORDER_TYPE_BUY else tick.bid)),
            }
            if comment is not None:
                request["comment"] = comment
            if ticket is not None:
                request["position"] = ticket
            result = self.order_send(request)
            if result is None or result.retcode not in (
                K.TRADE_RETCODE_REQUOTE,
                K.TRADE_RETCODE_PRICE_OFF,
            ):
                return result
        return result
