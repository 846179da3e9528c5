"""The symbols as the terminal knows them: selected into Market Watch when hidden (a terminal
gives no prices for a hidden symbol), their trading facts as the SymbolSpec sizing uses, and
the filling mode its market orders need (decoded from the symbol's flags, confirmed with
order_check); both cached per symbol.

Part of the connector: MT5Connector owns one MarketWatch and hands it its own (serialised,
UTC-converting) calls, so every API call still goes through live/mt5_connector.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from backtest.symbols import SymbolSpec
from live.broker_types import (
    ORDER_FILLING_FOK,
    ORDER_FILLING_IOC,
    ORDER_FILLING_RETURN,
    RETCODE_INVALID_FILL,
    SYMBOL_FILLING_FOK,
    SYMBOL_FILLING_IOC,
)
from live.errors import BrokerError, BrokerUnavailable, OrderRejected

logger = logging.getLogger(__name__)

FILLING_ORDER = (ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN)
FILLING_NAMES = {ORDER_FILLING_FOK: "FOK", ORDER_FILLING_IOC: "IOC", ORDER_FILLING_RETURN: "RETURN"}

Call = Callable[..., Any]


def decode_filling(flags: int) -> int:
    """symbol_info().filling_mode is a bit mask (FOK=1, IOC=2), not an ORDER_FILLING_* value:
    prefer FOK, then IOC, else RETURN."""
    if flags & SYMBOL_FILLING_FOK:
        return ORDER_FILLING_FOK
    if flags & SYMBOL_FILLING_IOC:
        return ORDER_FILLING_IOC
    return ORDER_FILLING_RETURN


class MarketWatch:
    """Symbol facts through the connector's calls: `call(name, *args)` in UTC and
    `call_raw(name, *args)` with times as the server stamps them (both raise BrokerError)."""

    def __init__(self, call: Call, call_raw: Call) -> None:
        self._call = call
        self._call_raw = call_raw
        self._specs: dict[str, SymbolSpec] = {}
        self._filling: dict[str, int] = {}

    def info(self, symbol: str) -> Any:
        """Symbol facts; a symbol missing from Market Watch is selected first."""
        try:
            info = self._call("symbol_info", symbol)
        except BrokerError as exc:
            if isinstance(exc, BrokerUnavailable):
                raise
            raise BrokerError(
                f"unknown symbol {symbol!r} on this terminal ({exc.code} {exc.text})",
                code=exc.code,
                text=exc.text,
            ) from None
        if not info.visible:
            self._call("symbol_select", symbol, True)
            logger.info("selected %s into Market Watch", symbol)
            info = self._call("symbol_info", symbol)
        return info

    def spec(self, symbol: str) -> SymbolSpec:
        """The symbol's trading facts as the SymbolSpec the sizing code uses (cached)."""
        spec = self._specs.get(symbol)
        if spec is None:
            info = self.info(symbol)
            spec = SymbolSpec(
                name=symbol,
                digits=int(info.digits),
                point=float(info.point),
                contract_size=float(info.trade_contract_size),
                volume_min=float(info.volume_min),
                volume_max=float(info.volume_max),
                volume_step=float(info.volume_step),
                currency_base=info.currency_base,
                currency_profit=info.currency_profit,
                currency_margin=info.currency_margin,
                stops_level=int(info.trade_stops_level),
            )
            self._specs[symbol] = spec
        return spec

    def forget_specs(self) -> None:
        """Drop the cached specs (a new session or account may trade other terms)."""
        self._specs.clear()

    def selecting(self, symbol: str, name: str, *args: Any, raw: bool = False) -> Any:
        """Call `name` (`raw`: times as the server stamps them); when it fails because
        `symbol` is not in Market Watch (a terminal gives no prices then), select the symbol
        and try once more."""
        call = self._call_raw if raw else self._call
        try:
            return call(name, *args)
        except BrokerUnavailable:
            raise
        except BrokerError:
            if not self._select_hidden(symbol):
                raise
        return call(name, *args)

    def _select_hidden(self, symbol: str) -> bool:
        """Put `symbol` into Market Watch if it exists and is hidden; whether it was."""
        try:
            info = self._call("symbol_info", symbol)
        except BrokerUnavailable:
            raise
        except BrokerError:
            return False  # unknown symbol: the first error stands
        if info.visible:
            return False
        self._call("symbol_select", symbol, True)
        logger.info("selected %s into Market Watch", symbol)
        return True

    def filling_mode(self, symbol: str) -> int:
        """The ORDER_FILLING_* value for market orders, decoded from the symbol's flags."""
        mode = self._filling.get(symbol)
        if mode is None:
            mode = decode_filling(int(self.info(symbol).filling_mode))
            self._filling[symbol] = mode
        return mode

    def confirm_filling(self, request: Mapping[str, Any]) -> int:
        """Check the request with order_check, falling back to other filling modes on 10030.

        The first accepted mode is cached for the symbol (and used for closes too).
        """
        symbol = request["symbol"]
        first = self.filling_mode(symbol)
        candidates = [first] + [m for m in FILLING_ORDER if m != first]
        for mode in candidates:
            result = self._call("order_check", {**request, "type_filling": mode})
            if result.retcode != RETCODE_INVALID_FILL:
                if mode != first:
                    logger.warning(
                        "%s: filling mode %s refused, using %s",
                        symbol,
                        FILLING_NAMES[first],
                        FILLING_NAMES[mode],
                    )
                self._filling[symbol] = mode
                return mode
        raise OrderRejected(
            f"{symbol}: no filling mode accepted by the server", code=RETCODE_INVALID_FILL
        )

    def forget_filling(self, symbol: str) -> None:
        self._filling.pop(symbol, None)
