"""The simulated trade server's records: account, positions, orders, deals, fills, the refusal
a server answers with, and the small price and time rules the server's modules share.

The ticket of the order that opened a position is the position's identifier, as in MT5.
Money is in the account currency (USD).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from backtest.broker_clock import UTC_ZONE, BrokerZone
from live.sim_terminal.constants import K
from live.sim_terminal.market import SimSymbol

logger = logging.getLogger(__name__)

EXPERT = K.DEAL_REASON_EXPERT  # requests from the Python API count as an expert's
BUY_SIDE = (K.ORDER_TYPE_BUY, K.ORDER_TYPE_BUY_LIMIT, K.ORDER_TYPE_BUY_STOP)
PENDING_TYPES = (
    K.ORDER_TYPE_BUY_LIMIT,
    K.ORDER_TYPE_SELL_LIMIT,
    K.ORDER_TYPE_BUY_STOP,
    K.ORDER_TYPE_SELL_STOP,
)
STOP_TYPES = (K.ORDER_TYPE_BUY_STOP, K.ORDER_TYPE_SELL_STOP)
_DAY = 86_400


class TradeRefused(Exception):
    """A request the server refuses: its retcode and the comment the server writes."""

    def __init__(self, retcode: int, comment: str) -> None:
        super().__init__(f"{retcode} {comment}")
        self.retcode = retcode
        self.comment = comment


@dataclass
class Account:
    login: int = 10_000_001
    name: str = "Simulated Trader"
    server: str = "Sim-Demo"
    company: str = "Simulated Broker Ltd"
    currency: str = "USD"
    balance: float = 10_000.0
    leverage: int = 100
    margin_mode: int = K.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    trade_mode: int = K.ACCOUNT_TRADE_MODE_DEMO

    @property
    def hedging(self) -> bool:
        return self.margin_mode == K.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING


@dataclass
class Position:
    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    sl: float
    tp: float
    time_msc: int
    time_update_msc: int
    magic: int
    comment: str
    identifier: int = 0
    reason: int = EXPERT


@dataclass
class Order:
    """A pending order, or (in history) any order with its final state."""

    ticket: int
    symbol: str
    type: int
    volume_initial: float
    volume_current: float
    price_open: float
    sl: float
    tp: float
    time_setup_msc: int
    magic: int
    comment: str
    type_filling: int = 0
    type_time: int = 0
    time_expiration: int = 0
    state: int = K.ORDER_STATE_PLACED
    time_done_msc: int = 0
    position_id: int = 0
    reason: int = EXPERT
    price_current: float = 0.0
    position_by_id: int = 0  # the opposite position of a close-by order


@dataclass
class Deal:
    ticket: int
    order: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    profit: float
    symbol: str
    comment: str
    commission: float = 0.0
    swap: float = 0.0
    fee: float = 0.0


@dataclass
class Fill:
    """What one executed request did, for OrderSendResult."""

    retcode: int
    deal: int
    order: int
    volume: float
    price: float


def msc(moment: float) -> int:
    """Epoch seconds as the epoch milliseconds the records keep."""
    return round(moment * 1000)


def same_price(a: float, b: float, spec: SimSymbol) -> bool:
    """Equal prices to the symbol's precision (a request's float against a stored level)."""
    return abs(a - b) < spec.point / 2


def expires_at(
    type_time: int, expiration: int, placed: float, zone: BrokerZone = UTC_ZONE
) -> float:
    """The UTC moment an order of `type_time` expires; days are the server's (`zone`).

    DAY: the server's next midnight after it was placed; SPECIFIED: `expiration` (UTC here:
    the API edge converts the client's server time); SPECIFIED_DAY: the server's midnight
    after `expiration`; GTC (or no expiration given): never.
    """
    if type_time == K.ORDER_TIME_DAY:
        return server_day_end(placed, zone)
    if type_time == K.ORDER_TIME_SPECIFIED and expiration:
        return float(expiration)
    if type_time == K.ORDER_TIME_SPECIFIED_DAY and expiration:
        return server_day_end(expiration, zone)
    return math.inf


def server_day_end(moment: float, zone: BrokerZone = UTC_ZONE) -> float:
    """The UTC moment of the server's first midnight after `moment` (UTC)."""
    wall = math.floor(moment) + zone.offset_at(moment)
    return float(zone.to_utc((wall // _DAY + 1) * _DAY))
