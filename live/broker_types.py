"""The broker boundary's vocabulary: plain result records, MT5 constant values and code tables.

Nothing here imports an MT5 API: values are the documented facts of the MetaTrader5 package
(see shared reference mt5_api.json), so the bridge, the executor and the paper broker can build
requests and read results without touching the terminal. `Broker` is the interface the trader
uses; MT5Connector (live) and PaperBroker (dry run) implement it.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypedDict, Unpack

import numpy as np
import pandas as pd

from backtest.symbols import SymbolSpec
from live.mt5_records import (
    RECORDS,
    STRUCT_FIELDS,
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)

logger = logging.getLogger(__name__)

# --- MT5 constant values used by this project (names as in the MetaTrader5 package)
TRADE_ACTION_DEAL, TRADE_ACTION_PENDING, TRADE_ACTION_SLTP = 1, 5, 6
TRADE_ACTION_MODIFY, TRADE_ACTION_REMOVE = 7, 8
ORDER_TYPE_BUY, ORDER_TYPE_SELL = 0, 1
ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT, ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP = 2, 3, 4, 5
POSITION_TYPE_BUY, POSITION_TYPE_SELL = 0, 1
ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN = 0, 1, 2
ORDER_TIME_GTC, ORDER_TIME_SPECIFIED = 0, 2
SYMBOL_EXPIRATION_SPECIFIED = 4  # a flag of SYMBOL_EXPIRATION_MODE
DEAL_TYPE_BUY, DEAL_TYPE_SELL = 0, 1
DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_ENTRY_INOUT, DEAL_ENTRY_OUT_BY = 0, 1, 2, 3
DEAL_REASON_SL, DEAL_REASON_TP, DEAL_REASON_SO = 4, 5, 6
ACCOUNT_TRADE_MODE_DEMO, ACCOUNT_TRADE_MODE_CONTEST, ACCOUNT_TRADE_MODE_REAL = 0, 1, 2
ACCOUNT_MARGIN_MODE_RETAIL_NETTING, ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 0, 2
SYMBOL_TRADE_MODE_DISABLED, SYMBOL_TRADE_MODE_CLOSEONLY, SYMBOL_TRADE_MODE_FULL = 0, 3, 4
# Flags of symbol_info().filling_mode (documented for MQL5, not exported by the package).
SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC = 1, 2

TIMEFRAME_CODES: dict[str, int] = {
    **{f"M{m}": m for m in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)},
    **{f"H{h}": h | 0x4000 for h in (1, 2, 3, 4, 6, 8, 12)},
    "D1": 24 | 0x4000,
    "W1": 1 | 0x8000,
    "MN1": 1 | 0xC000,
}

# --- trade server return codes
RETCODE_PLACED, RETCODE_DONE, RETCODE_DONE_PARTIAL = 10008, 10009, 10010
SUCCESS_RETCODES = frozenset({RETCODE_PLACED, RETCODE_DONE, RETCODE_DONE_PARTIAL})
RETCODE_REQUOTE, RETCODE_TIMEOUT, RETCODE_INVALID_FILL = 10004, 10012, 10030
# Worth resending (after refreshing the price and checking the order does not exist yet).
RETRYABLE_RETCODES = frozenset(
    {
        10004,  # requote
        10012,  # request canceled by timeout
        10020,  # prices changed
        10021,  # no quotes (off quotes)
        10024,  # too frequent requests
        10028,  # request locked for processing
        10031,  # no connection with the trade server
    }
)
RETCODE_NAMES: dict[int, str] = {
    10004: "requote",
    10006: "rejected",
    10007: "canceled",
    10008: "placed",
    10009: "done",
    10010: "done partially",
    10011: "processing error",
    10012: "timeout",
    10013: "invalid request",
    10014: "invalid volume",
    10015: "invalid price",
    10016: "invalid stops",
    10017: "trade disabled",
    10018: "market closed",
    10019: "not enough money",
    10020: "prices changed",
    10021: "off quotes",
    10022: "invalid expiration",
    10023: "order changed",
    10024: "too many requests",
    10025: "no changes",
    10026: "autotrading disabled by server",
    10027: "autotrading disabled in the terminal",
    10028: "locked",
    10029: "frozen",
    10030: "unsupported filling mode",
    10031: "no connection",
    10032: "real accounts only",
    10033: "pending-order limit",
    10034: "volume limit",
    10035: "invalid order type",
    10036: "position already closed",
    10038: "close volume too big",
    10039: "close order exists",
    10040: "position limit",
    10041: "activation rejected",
    10042: "long only",
    10043: "short only",
    10044: "close only",
    10045: "FIFO close only",
}
# What to do about the refusals users meet most (shown in logs, alerts and --check).
RETCODE_HINTS: dict[int, str] = {
    10014: "volume must be volume_min + k × volume_step within [min, max]",
    10016: "SL/TP must be at least trade_stops_level points from the closing price, "
    "on the right side",
    10017: "the symbol cannot be traded on this account",
    10018: "the market is closed (weekend or session break)",
    10019: "free margin is too small for this volume",
    10027: "press Algo Trading in the terminal (Tools > Options > Expert Advisors)",
    10030: "the symbol does not support this filling mode; see symbol_info().filling_mode",
}

# --- last_error() codes
NO_IPC_CONNECTION, IPC_TIMEOUT = -10004, -10005
IPC_ERROR_CODES = frozenset({-10000, -10001, -10002, -10003, -10004, -10005})
# Failures after which an order_send may already have executed.
UNKNOWN_OUTCOME_ERROR_CODES = frozenset({-10000, -10002, -10005})


class MT5Constants:
    """The constants above as one namespace, with every trade return code by its MT5 name
    (`MT5Constants.TRADE_RETCODE_INVALID_STOPS == 10016`) and the retry rule."""

    RETCODE_NAMES = RETCODE_NAMES
    RETRYABLE_RETCODES = RETRYABLE_RETCODES

    @staticmethod
    def is_retryable(code: int) -> bool:
        return code in RETRYABLE_RETCODES


for _name, _value in list(globals().items()):
    if _name.isupper() and isinstance(_value, int) and not isinstance(_value, bool):
        setattr(MT5Constants, _name, _value)
# The package's own names of the trade return codes (mt5_api.json), by code.
_RETCODE_CONSTANTS = {
    10004: "REQUOTE",
    10006: "REJECT",
    10007: "CANCEL",
    10008: "PLACED",
    10009: "DONE",
    10010: "DONE_PARTIAL",
    10011: "ERROR",
    10012: "TIMEOUT",
    10013: "INVALID",
    10014: "INVALID_VOLUME",
    10015: "INVALID_PRICE",
    10016: "INVALID_STOPS",
    10017: "TRADE_DISABLED",
    10018: "MARKET_CLOSED",
    10019: "NO_MONEY",
    10020: "PRICE_CHANGED",
    10021: "PRICE_OFF",
    10022: "INVALID_EXPIRATION",
    10023: "ORDER_CHANGED",
    10024: "TOO_MANY_REQUESTS",
    10025: "NO_CHANGES",
    10026: "SERVER_DISABLES_AT",
    10027: "CLIENT_DISABLES_AT",
    10028: "LOCKED",
    10029: "FROZEN",
    10030: "INVALID_FILL",
    10031: "CONNECTION",
    10032: "ONLY_REAL",
    10033: "LIMIT_ORDERS",
    10034: "LIMIT_VOLUME",
    10035: "INVALID_ORDER",
    10036: "POSITION_CLOSED",
    10038: "INVALID_CLOSE_VOLUME",
    10039: "CLOSE_ORDER_EXIST",
    10040: "LIMIT_POSITIONS",
    10041: "REJECT_CANCEL",
    10042: "LONG_ONLY",
    10043: "SHORT_ONLY",
    10044: "CLOSE_ONLY",
    10045: "FIFO_CLOSE",
}
for _code, _name in _RETCODE_CONSTANTS.items():
    setattr(MT5Constants, "TRADE_RETCODE_" + _name, _code)


def retcode_text(code: int | None, comment: str = "") -> str:
    """`10016 invalid stops (Invalid stops)`, plus a hint when one is known."""
    if code is None:
        return comment or "no return code"
    text = f"{code} {RETCODE_NAMES.get(code, 'unknown code')}"
    if comment and comment.lower() != RETCODE_NAMES.get(code, "").lower():
        text += f" ({comment})"
    hint = RETCODE_HINTS.get(code)
    return f"{text}: {hint}" if hint else text


# --- records: plain, picklable, immutable copies of the terminal's result structures

# The records of the terminal's structures, by name (one field table: live/mt5_records.py).
RECORD_TYPES: dict[str, type] = {cls.__name__: cls for cls in RECORDS}
__all__ = [
    "RECORD_TYPES",
    "STRUCT_FIELDS",
    "Broker",
    "MT5Constants",
    "TradeRequestFields",
    "record",
    "retcode_text",
    "trade_request",
]

_record_types: dict[tuple[str, tuple[str, ...]], type] = {}


def record(type_name: str, values: Mapping[str, Any]) -> Any:
    """A namedtuple named like the MT5 structure with the same fields, in the same order."""
    keys = tuple(values)
    key = (type_name, keys)
    cls = _record_types.get(key)
    if cls is None:
        cls = _record_types[key] = namedtuple(type_name, keys)
    return cls(**values)


# The fields of an MT5 trade request as keyword arguments of send_order/check_order: the
# TradeRequest record's own table (live/mt5_records.py), none of them required.
TradeRequestFields = TypedDict(  # noqa: UP013 (built from the one field table)
    "TradeRequestFields", dict(TradeRequest.__annotations__), total=False
)


def trade_request(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The request as the terminal takes it (a dict); a field MT5 does not know is an error
    here, where the terminal would silently ignore it."""
    unknown = set(fields) - set(STRUCT_FIELDS["TradeRequest"])
    if unknown:
        raise TypeError(f"not fields of an MT5 trade request: {sorted(unknown)}")
    return dict(fields)


class Broker(Protocol):
    """What the trader needs from a broker; MT5Connector and PaperBroker provide it. Results
    are the typed records of live/mt5_records.py; orders go out as keyword arguments only
    (the fields of an MT5 trade request), so a misspelt one is an error, not an ignored key."""

    dry_run: bool

    def account(self) -> AccountInfo: ...
    def symbol_spec(self, symbol: str) -> SymbolSpec: ...
    def symbol_info(self, symbol: str) -> SymbolInfo: ...
    def tick(self, symbol: str) -> Tick: ...
    def rates(
        self, symbol: str, timeframe: str, count: int, *, start_pos: int = 1
    ) -> pd.DataFrame: ...
    def rates_array(self, symbol: str, timeframe: str, count: int) -> np.ndarray: ...
    def positions(self, symbol: str | None = None) -> tuple[TradePosition, ...]: ...
    def orders(self, symbol: str | None = None) -> tuple[TradeOrder, ...]: ...
    def deals_since(self, since: datetime) -> tuple[TradeDeal, ...]: ...
    def deals_for_position(self, position_ticket: int) -> tuple[TradeDeal, ...]: ...
    def deals_for_order(self, order_ticket: int) -> tuple[TradeDeal, ...]: ...
    def filling_mode(self, symbol: str) -> int: ...
    def check_order(self, **request: Unpack[TradeRequestFields]) -> OrderCheckResult: ...
    def send_order(self, **request: Unpack[TradeRequestFields]) -> OrderSendResult: ...
