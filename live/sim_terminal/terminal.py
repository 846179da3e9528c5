"""SimTerminal: a module-like object with the MetaTrader5 API, backed by the simulated market.

Faithful to the package's behaviour (see shared reference MT5_NOTES.md): every call resets the
error slot to (1, 'Success'); failures return None (or False) and leave (code, text) for
last_error(); before initialize() everything fails with (-10004, 'No IPC connection');
positional/keyword conventions and request field types are checked as the compiled module does
(the rules live in arguments.py, the call wrapper in api_call.py).
Non-MT5 controls are methods named sim_* (clock, faults, state), usable over RPyC too.

This module owns the terminal's state, the link (connection drops, the error slot) and the
session calls; the other calls are mixins, one module per group: info_calls.py (terminal,
account, symbols), price_calls.py (copy_*), trade_queries.py (positions, orders, history),
trade_calls.py (order_calc_*, order_check, order_send), package_helpers.py (Buy, Sell, Close),
sim_controls.py (sim_*).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from live.sim_terminal import arguments, structs
from live.sim_terminal.api_call import IPC_TIMEOUT, NO_IPC, api_call
from live.sim_terminal.arguments import INVALID, WRONG_COUNT, CallFailed
from live.sim_terminal.broker import Account, RequestRate, TradeServer
from live.sim_terminal.config import SimConfig
from live.sim_terminal.constants import CONSTANTS, K
from live.sim_terminal.feeds import build_feeds
from live.sim_terminal.info_calls import InfoCalls
from live.sim_terminal.market import SimClock, SymbolFeed
from live.sim_terminal.package_helpers import PackageHelpers
from live.sim_terminal.price_calls import PriceCalls
from live.sim_terminal.server_clock import ServerClock
from live.sim_terminal.sim_controls import SimControls
from live.sim_terminal.trade_calls import TradeCalls
from live.sim_terminal.trade_queries import TradeQueries

logger = logging.getLogger(__name__)

CLOCK_SAVE_EVERY_S = 1.0  # a running clock reaches on_change at most once a wall second


class SimTerminal(InfoCalls, PriceCalls, TradeQueries, TradeCalls, PackageHelpers, SimControls):
    """The simulated MetaTrader 5 terminal. Constants and structure types are attributes."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._lock = threading.RLock()
        self._error: tuple[int, str] = (1, "Success")
        self._initialized = False
        self._selected: set[str] = set()
        self._rng = random.Random(self.config.faults.seed)
        self.faults = self.config.faults
        self._calls = 0
        self._drop_calls_left = 0
        self._drop_until_wall = 0.0
        self._saved_at_wall = self.config.wall()
        self._request_id = 0
        self._lagging: dict[int, int] = {}  # deal ticket -> API call from which it shows
        self.trade_allowed = self.config.trade_allowed
        self.tradeapi_disabled = self.config.tradeapi_disabled
        self.server_connected = True
        self.on_change: Callable[[], None] | None = None
        calendar = self.config.market_calendar()
        feeds = build_feeds(self.config, calendar)
        # inside: UTC; at the API edge: the server's clock (server_clock.py)
        self.server_clock = ServerClock(calendar.zone)
        self._selected = {name for name, feed in feeds.items() if feed.symbol.visible}
        start = self.config.start
        if start is None:
            first = feeds[self.config.data_symbol or self.config.symbols[0]]
            start = float(first.times[min(self.config.history_bars, len(first.times) - 1)])
        self.clock = SimClock(start, self.config.speed, self.config.wall)
        account = Account(
            login=self.config.login,
            server=self.config.server,
            balance=self.config.balance,
            leverage=self.config.leverage,
            margin_mode=K.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
            if self.config.netting
            else K.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
            trade_mode=K.ACCOUNT_TRADE_MODE_REAL
            if self.config.real_account
            else K.ACCOUNT_TRADE_MODE_DEMO,
        )
        self.server = TradeServer(
            account,
            feeds,
            processed_until=start,
            stop_slippage_points=self.config.stop_slippage_points,
            request_rate=RequestRate(self.config.max_requests_per_second),
            zone=calendar.zone,
        )

    # ------------------------------------------------------------ plumbing

    def _before_call(self, name: str) -> None:
        if self.faults.latency_s:
            self.config.sleep(self.faults.latency_s)
        self._calls += 1
        if self._connection_dropped():
            self._initialized = False
            raise CallFailed(*IPC_TIMEOUT) if name == "initialize" else CallFailed(*NO_IPC)
        if not self._initialized and name != "initialize":
            raise CallFailed(*NO_IPC)
        # the price moves on its own (SL/TP, pending fills, expiries) and a running clock
        # moves by itself: both are state a state file must see, not only order_send's
        if self.server.process(self.clock.now()) or self._clock_unsaved():
            self._changed()

    def _clock_unsaved(self) -> bool:
        """A running clock not saved for CLOCK_SAVE_EVERY_S wall seconds (a save per call
        would cost two fsyncs each; a stepped clock is saved by sim_set_time)."""
        return (
            self.clock.speed is not None
            and self.config.wall() - self._saved_at_wall >= CLOCK_SAVE_EVERY_S
        )

    def _connection_dropped(self) -> bool:
        f = self.faults
        if f.drop_every_calls and f.drop_for_calls and self._calls % f.drop_every_calls == 0:
            self._drop_calls_left = max(self._drop_calls_left, f.drop_for_calls)
        if self._drop_calls_left > 0:
            self._drop_calls_left -= 1
            return True
        wall = self.config.wall()
        if wall >= self._drop_until_wall and self._roll(f.drop_rate):
            self._drop_until_wall = wall + f.drop_seconds
        return wall < self._drop_until_wall

    def _changed(self) -> None:
        self._saved_at_wall = self.config.wall()
        if self.on_change is not None:
            self.on_change()

    def _feed(self, symbol: object, *, selected: bool = True) -> SymbolFeed:
        if not isinstance(symbol, str):
            raise CallFailed(-2, "Invalid arguments")
        feed = self.server.feeds.get(symbol)
        if feed is None:
            raise CallFailed(-4, "Terminal: Not found")
        if selected and symbol not in self._selected:
            raise CallFailed(-1, "Terminal: Call failed")  # not in Market Watch: no quotes
        return feed

    def _dates(self, date_from: Any, date_to: Any) -> tuple[float, float]:
        """A client's date range (server time) in UTC."""
        return self.server_clock.date_argument(date_from), self.server_clock.date_argument(date_to)

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    # ------------------------------------------------------------ session

    @api_call
    def initialize(
        self,
        *args: Any,
        path: str | None = None,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
        portable: bool = False,
    ) -> bool:
        if len(args) > 1 or (args and path is not None):
            raise CallFailed(-2, WRONG_COUNT)
        path = args[0] if args else path
        arguments.check_types(
            (path, str),
            (login, int),
            (password, str),
            (server, str),
            (timeout, int),
            (portable, int),
        )
        if login is not None:
            self._authorize(login, password, server)
        self._initialized = True
        return True

    @api_call
    def login(self, *args: Any, **kwargs: Any) -> bool:
        """login positional or keyword; up to 3 positional (login, password, server)."""
        values = dict(zip(("login", "password", "server"), args, strict=False))
        if len(args) > 3 or set(values) & set(kwargs):
            raise CallFailed(-2, WRONG_COUNT)
        if set(kwargs) - {"login", "password", "server", "timeout"}:
            raise CallFailed(-2, INVALID)
        values.update(kwargs)
        if "login" not in values:
            raise CallFailed(-2, WRONG_COUNT)
        arguments.check_types(
            (values["login"], int),
            (values.get("password"), str),
            (values.get("server"), str),
            (values.get("timeout"), int),
        )
        self._authorize(values["login"], values.get("password"), values.get("server"))
        return True

    def _authorize(self, login: object, password: object, server: object) -> None:
        account = self.server.account
        if (
            login != account.login
            or (self.config.password is not None and password != self.config.password)
            or (server not in (None, "", account.server))
        ):
            raise CallFailed(-6, "Terminal: Authorization failed")

    @api_call
    def shutdown(self) -> bool:
        self._initialized = False
        return True

    def last_error(self, *args: Any, **kwargs: Any) -> tuple[int, str] | None:
        with self._lock:
            if args or kwargs:  # like any call, a malformed one overwrites the slot
                self._error = (-2, WRONG_COUNT)
                return None
            return self._error


for _name, _value in CONSTANTS.items():
    setattr(SimTerminal, _name, _value)
for _name, _type in structs.STRUCT_TYPES.items():
    setattr(SimTerminal, _name, _type)
