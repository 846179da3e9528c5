"""SimTerminal: a module-like object with the MetaTrader5 API, backed by the simulated market.

Faithful to the package's behaviour (see shared reference MT5_NOTES.md): every call resets the
error slot to (1, 'Success'); failures return None (or False) and leave (code, text) for
last_error(); before initialize() everything fails with (-10004, 'No IPC connection');
positional/keyword conventions and request field types are checked as the compiled module does
(the rules live in arguments.py).
Non-MT5 controls are methods named sim_* (clock, faults, state), usable over RPyC too.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from live.sim_terminal import arguments, replies, structs
from live.sim_terminal.arguments import INVALID, WRONG_COUNT
from live.sim_terminal.arguments import CallFailed as _Fail
from live.sim_terminal.broker import Account, RequestRate, TradeRefused, TradeServer
from live.sim_terminal.config import FaultConfig, SimConfig
from live.sim_terminal.constants import CONSTANTS, K
from live.sim_terminal.feeds import build_feeds
from live.sim_terminal.market import TIMEFRAME_NAMES as _TIMEFRAMES
from live.sim_terminal.market import SimClock, SymbolFeed, finer_than
from live.sim_terminal.server_clock import ServerClock

logger = logging.getLogger(__name__)

VERSION = (500, 4410, "15 Nov 2024")
TIMEFRAME_NAMES = {CONSTANTS[f"TIMEFRAME_{name}"]: name for name in _TIMEFRAMES}
NO_IPC = (-10004, "No IPC connection")
IPC_TIMEOUT = (-10005, "IPC timeout")
COPY_TICKS = (K.COPY_TICKS_ALL, K.COPY_TICKS_INFO, K.COPY_TICKS_TRADE)
CLOCK_SAVE_EVERY_S = 1.0  # a running clock reaches on_change at most once a wall second
_BOOL_FUNCTIONS = {"initialize", "login", "symbol_select", "market_book_add", "market_book_release"}
# malformed arguments give None here, not False (MT5_NOTES §2)
_NONE_WHEN_MALFORMED = {"market_book_add", "market_book_release"}


def _api(function: Callable[..., Any]) -> Callable[..., Any]:
    """Serialise the call, reset the error slot, apply faults, turn _Fail into None/False."""
    name = function.__name__
    failed = False if name in _BOOL_FUNCTIONS else None

    @functools.wraps(function)
    def call(self: SimTerminal, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._error = (1, "Success")
            try:
                self._before_call(name)
                return arguments.invoke(function, self, args, kwargs)
            except _Fail as fail:
                self._error = (fail.code, fail.text)
                return None if fail.code == -2 and name in _NONE_WHEN_MALFORMED else failed

    return call


class SimTerminal:
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
            raise _Fail(*IPC_TIMEOUT) if name == "initialize" else _Fail(*NO_IPC)
        if not self._initialized and name != "initialize":
            raise _Fail(*NO_IPC)
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
            raise _Fail(-2, "Invalid arguments")
        feed = self.server.feeds.get(symbol)
        if feed is None:
            raise _Fail(-4, "Terminal: Not found")
        if selected and symbol not in self._selected:
            raise _Fail(-1, "Terminal: Call failed")  # not in Market Watch: no quotes
        return feed

    # ------------------------------------------------------------ session

    @_api
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
            raise _Fail(-2, WRONG_COUNT)
        path = args[0] if args else path
        _check_types(
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

    @_api
    def login(self, *args: Any, **kwargs: Any) -> bool:
        """login positional or keyword; up to 3 positional (login, password, server)."""
        values = dict(zip(("login", "password", "server"), args, strict=False))
        if len(args) > 3 or set(values) & set(kwargs):
            raise _Fail(-2, WRONG_COUNT)
        if set(kwargs) - {"login", "password", "server", "timeout"}:
            raise _Fail(-2, INVALID)
        values.update(kwargs)
        if "login" not in values:
            raise _Fail(-2, WRONG_COUNT)
        _check_types(
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
            raise _Fail(-6, "Terminal: Authorization failed")

    @_api
    def shutdown(self) -> bool:
        self._initialized = False
        return True

    @_api
    def version(self) -> tuple[int, int, str]:
        return VERSION

    def last_error(self, *args: Any, **kwargs: Any) -> tuple[int, str] | None:
        with self._lock:
            if args or kwargs:  # like any call, a malformed one overwrites the slot
                self._error = (-2, WRONG_COUNT)
                return None
            return self._error

    @_api
    def terminal_info(self) -> Any:
        values = dict.fromkeys(structs.STRUCT_FIELDS["TerminalInfo"], 0)
        values.update(
            community_account=False,
            community_connection=False,
            connected=self.server_connected,
            dlls_allowed=False,
            trade_allowed=self.trade_allowed,
            tradeapi_disabled=self.tradeapi_disabled,
            email_enabled=False,
            ftp_enabled=False,
            notifications_enabled=False,
            mqid=False,
            build=VERSION[1],
            maxbars=100_000,
            codepage=0,
            ping_last=31_250,
            community_balance=0.0,
            retransmission=0.0,
            company="Simulated Broker Ltd",
            name="MetaTrader 5 (simulated)",
            language="English",
            path="/sim/terminal",
            data_path="/sim/terminal",
            commondata_path="/sim/common",
        )
        return structs.TerminalInfo(**values)

    @_api
    def account_info(self) -> Any:
        account = self.server.account
        totals = self.server.totals(self.clock.now())
        values = dict.fromkeys(structs.STRUCT_FIELDS["AccountInfo"], 0)
        values.update(
            login=account.login,
            trade_mode=account.trade_mode,
            leverage=account.leverage,
            limit_orders=200,
            margin_so_mode=0,
            trade_allowed=True,
            trade_expert=True,
            margin_mode=account.margin_mode,
            currency_digits=2,
            fifo_close=False,
            credit=0.0,
            margin_so_call=50.0,
            margin_so_so=30.0,
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name=account.name,
            server=account.server,
            currency=account.currency,
            company=account.company,
            **totals,
        )
        return structs.AccountInfo(**values)

    # ------------------------------------------------------------ symbols

    @_api
    def symbols_total(self) -> int:
        return len(self.server.feeds)

    @_api
    def symbols_get(self, *args: Any, group: str | None = None) -> tuple[Any, ...]:
        if args:
            if len(args) > 1 or group is not None:
                raise _Fail(-2, WRONG_COUNT)
            group = args[0]
        if group is not None:
            group = arguments.group_mask(group)
        names = [n for n in self.server.feeds if group is None or arguments.group_match(n, group)]
        return tuple(self._symbol_info(n) for n in names)

    @_api
    def symbol_info(self, symbol: str, /) -> Any:
        self._feed(symbol, selected=False)
        return self._symbol_info(symbol)

    def _symbol_info(self, name: str) -> Any:
        feed = self.server.feeds[name]
        spec = feed.symbol
        moment = self.clock.now()
        quote = feed.quote(moment) if name in self._selected else None
        when, bid, ask = quote if quote else (0, 0.0, 0.0)
        values = replies.symbol_fields(
            self.server_clock, spec, name in self._selected, when, bid, ask
        )
        tick_value = self.server.tick_value(spec, moment)
        values.update(
            trade_tick_value=tick_value,
            trade_tick_value_profit=tick_value,
            trade_tick_value_loss=tick_value,
        )
        return structs.SymbolInfo(**values)

    @_api
    def symbol_info_tick(self, symbol: str, /) -> Any:
        quote = self._feed(symbol).quote(self.clock.now())
        if quote is None:
            raise _Fail(-1, "Terminal: Call failed")
        when, bid, ask = quote
        return replies.tick(self.server_clock, when, bid, ask)

    @_api
    def symbol_select(self, symbol: str, enable: bool = True, /) -> bool:
        self._feed(symbol, selected=False)
        _check_types((enable, int))
        before = set(self._selected)
        if enable:
            self._selected.add(symbol)
        elif any(p.symbol == symbol for p in self.server.positions.values()):
            raise _Fail(-1, "Terminal: Call failed")  # open positions keep it in Market Watch
        else:
            self._selected.discard(symbol)
        if self._selected != before:  # Market Watch is part of the saved state
            self._changed()
        return True

    @_api
    def market_book_add(self, symbol: str, /) -> bool:
        self._feed(symbol, selected=False)
        raise _Fail(-7, "Terminal: Unsupported function")

    @_api
    def market_book_release(self, symbol: str, /) -> bool:
        self._feed(symbol, selected=False)
        raise _Fail(-7, "Terminal: Unsupported function")

    @_api
    def market_book_get(self, symbol: str, /) -> Any:
        self._feed(symbol, selected=False)
        raise _Fail(-7, "Terminal: Unsupported function")

    # ------------------------------------------------------------ prices

    def _timeframe(self, code: object) -> str:
        """The timeframe's name; finer than the base bars is refused (they cannot be made)."""
        name = TIMEFRAME_NAMES.get(code) if arguments.is_int(code) else None
        if name is None or finer_than(name, self.config.timeframe):
            raise _Fail(-2, INVALID)
        return name

    @_api
    def copy_rates_from(
        self, symbol: str, timeframe: int, date_from: Any, count: int, /
    ) -> np.ndarray:
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        until = min(self.server_clock.date_argument(date_from), self.clock.now())
        wanted = arguments.count(count)
        rates = feed.rates_until(self.clock.now(), name)
        return self.server_clock.rates(rates[rates["time"] <= until][-wanted:])

    @_api
    def copy_rates_from_pos(
        self, symbol: str, timeframe: int, start_pos: int, count: int, /
    ) -> np.ndarray:
        """`count` bars back from `start_pos` (0 = the forming bar); fewer where history
        ends; a start beyond history fails like the terminal's copy (-1, no data)."""
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        if not arguments.is_int(start_pos) or start_pos < 0:
            raise _Fail(-2, INVALID)
        rates = feed.rates_until(self.clock.now(), name, tail=start_pos + arguments.count(count))
        if start_pos >= len(rates):
            raise _Fail(-1, "Terminal: Call failed")
        return self.server_clock.rates(rates[: len(rates) - start_pos])

    @_api
    def copy_rates_range(
        self, symbol: str, timeframe: int, date_from: Any, date_to: Any, /
    ) -> np.ndarray:
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        first, last = self._dates(date_from, date_to)
        rates = feed.rates_until(self.clock.now(), name)
        return self.server_clock.rates(rates[(rates["time"] >= first) & (rates["time"] <= last)])

    @_api
    def copy_ticks_from(self, symbol: str, date_from: Any, count: int, flags: int, /) -> np.ndarray:
        feed, first = self._feed(symbol), self.server_clock.date_argument(date_from)
        wanted = arguments.count(count)
        ticks = _ticks_of_kind(feed.ticks_between(first, self.clock.now()), flags)[:wanted]
        return self.server_clock.ticks(ticks)

    @_api
    def copy_ticks_range(
        self, symbol: str, date_from: Any, date_to: Any, flags: int, /
    ) -> np.ndarray:
        feed = self._feed(symbol)
        first, last = self._dates(date_from, date_to)
        ticks = _ticks_of_kind(feed.ticks_between(first, min(last, self.clock.now())), flags)
        return self.server_clock.ticks(ticks)

    def _dates(self, date_from: Any, date_to: Any) -> tuple[float, float]:
        """A client's date range (server time) in UTC."""
        return self.server_clock.date_argument(date_from), self.server_clock.date_argument(date_to)

    # ------------------------------------------------------------ positions and orders

    @_api
    def positions_total(self) -> int:
        return len(self.server.positions)

    @_api
    def positions_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        chosen = arguments.filtered(self.server.positions.values(), args, kwargs)
        moment = self.clock.now()
        return tuple(self._position_struct(p, moment) for p in chosen)

    @_api
    def orders_total(self) -> int:
        return len(self.server.orders)

    @_api
    def orders_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        chosen = arguments.filtered(self.server.orders.values(), args, kwargs)
        return tuple(replies.order(self.server_clock, o) for o in chosen)

    @_api
    def history_orders_total(self, date_from: Any, date_to: Any, /) -> int:
        orders = self.server.history_orders
        return len(self._history(orders, (date_from, date_to), {}, "time_setup_msc", "ticket"))

    @_api
    def history_orders_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        found = self._history(self.server.history_orders, args, kwargs, "time_setup_msc", "ticket")
        return tuple(replies.order(self.server_clock, o) for o in found)

    @_api
    def history_deals_total(self, date_from: Any, date_to: Any, /) -> int:
        deals = self._visible_deals()
        return len(self._history(deals, (date_from, date_to), {}, "time_msc", "order"))

    @_api
    def history_deals_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """ticket= is the ORDER's ticket (DEAL_ORDER): the deals that order made (docs)."""
        found = self._history(self._visible_deals(), args, kwargs, "time_msc", "order")
        return tuple(replies.deal(self.server_clock, d) for d in found)

    def _history(
        self,
        items: list[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        time_field: str,
        ticket_field: str,
    ) -> list[Any]:
        """history_*_get's three forms: ticket= (an order's ticket), position=, or the dates
        (server time) with an optional group=; the first present wins, as the binary does."""
        for key, field in (("ticket", ticket_field), ("position", "position_id")):
            if key in kwargs:
                wanted = kwargs[key]
                if not arguments.is_int(wanted):
                    raise _Fail(-2, INVALID)
                return [i for i in items if getattr(i, field) == wanted]
        if len(args) != 2:
            raise _Fail(-2, INVALID)
        first, last = (round(moment * 1000) for moment in self._dates(*args))
        group = kwargs.get("group")
        if group is not None:
            group = arguments.group_mask(group)
        return [
            i
            for i in items
            if first <= getattr(i, time_field) <= last
            and (group is None or arguments.group_match(i.symbol, group))
        ]

    def _position_struct(self, p: Any, moment: float) -> Any:
        price = self.server.closing_price(p, moment)
        return replies.position(self.server_clock, p, price, self.server.floating(p, moment))

    # ------------------------------------------------------------ calculations

    @_api
    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float, /) -> float:
        spec = self._feed(symbol, selected=False).symbol
        volume, price = arguments.number(volume), arguments.number(price)
        if action not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL) or volume <= 0:
            raise _Fail(-2, INVALID)
        return round(self.server.margin_for(spec, volume, price, self.clock.now()), 2)

    @_api
    def order_calc_profit(
        self, action: int, symbol: str, volume: float, price_open: float, price_close: float, /
    ) -> float:
        spec = self._feed(symbol, selected=False).symbol
        volume = arguments.number(volume)
        opened, closed = arguments.number(price_open), arguments.number(price_close)
        if action not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL):
            raise _Fail(-2, INVALID)
        return round(
            self.server.profit_of(spec, action, volume, opened, closed, self.clock.now()), 2
        )

    # ------------------------------------------------------------ trading

    @_api
    def order_check(self, *args: Any, **kwargs: Any) -> Any:
        request = arguments.request(args, kwargs)
        moment = self.clock.now()
        trade_request = structs.TradeRequest(**request)  # as sent: server time
        request = self.server_clock.request(request)
        before = self.server.totals(moment)
        try:
            self._check_selected(request)
            self.server.validate(request, moment, trade_allowed=self.trade_allowed)
        except TradeRefused as refused:
            return structs.OrderCheckResult(
                refused.retcode, *_check_numbers(before, 0.0), refused.comment, trade_request
            )
        extra = self._margin_of(request, moment)
        return structs.OrderCheckResult(0, *_check_numbers(before, extra), "Done", trade_request)

    def _margin_of(self, request: dict[str, Any], moment: float) -> float:
        if request["action"] not in (K.TRADE_ACTION_DEAL, K.TRADE_ACTION_PENDING) or request.get(
            "position"
        ):
            return 0.0
        feed = self.server.feeds[request["symbol"]]
        _, bid, ask = feed.quote(moment)
        price = request["price"] or (ask if request["type"] == K.ORDER_TYPE_BUY else bid)
        return self.server.margin_change(request, price, moment)

    @_api
    def order_send(self, *args: Any, **kwargs: Any) -> Any:
        request = arguments.request(args, kwargs)
        if self.tradeapi_disabled:
            raise _Fail(-8, "Auto-Trading using Python API disabled in Terminal")
        self._request_id += 1
        moment = self.clock.now()
        if self._roll(self.faults.timeout_rate):
            raise _Fail(*IPC_TIMEOUT)
        code, comment, fill = self._send(self.server_clock.request(request), moment)
        _, bid, ask = self._quote_or_zero(request.get("symbol"), moment)
        result = structs.OrderSendResult(
            code,
            fill.deal if fill else 0,
            fill.order if fill else 0,
            fill.volume if fill else 0.0,
            fill.price if fill else 0.0,
            bid,
            ask,
            comment,
            self._request_id,
            0,
            structs.TradeRequest(**request),
        )
        if fill is not None:
            self._changed()
            if self._roll(self.faults.reply_lost_rate):
                raise _Fail(*IPC_TIMEOUT)  # executed, but the reply never arrives
        return result

    def _send(self, request: dict[str, Any], moment: float) -> tuple[int, str, Any]:
        if not self.server_connected:
            return K.TRADE_RETCODE_CONNECTION, "No connection", None
        try:
            self.server.request_rate.admit(moment)  # what is sent to execute counts
            self._check_selected(request)
            self.server.validate(request, moment, trade_allowed=self.trade_allowed)
        except TradeRefused as refused:
            return refused.retcode, refused.comment, None
        if request["action"] == K.TRADE_ACTION_DEAL:
            if self._roll(self.faults.requote_rate):
                return K.TRADE_RETCODE_REQUOTE, "Requote", None
            if self._roll(self.faults.reject_rate):
                return K.TRADE_RETCODE_REJECT, "Request rejected", None
            request = self._as_the_server_keeps(request)
        ratio = 1.0
        partial_allowed = request.get("type_filling") in (
            K.ORDER_FILLING_IOC,
            K.ORDER_FILLING_RETURN,
        )
        if partial_allowed and self._roll(self.faults.partial_fill_rate):
            ratio = self.faults.partial_fill_ratio
        fill = self.server.execute(request, moment, fill_ratio=ratio)
        if fill.deal and self._roll(self.faults.history_lag_rate):
            self._lagging[fill.deal] = self._calls + self.faults.history_lag_calls
            fill = type(fill)(fill.retcode, 0, fill.order, fill.volume, fill.price)
        done = {
            K.TRADE_RETCODE_PLACED: "Request placed",
            K.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
        }
        return fill.retcode, done.get(fill.retcode, "Request executed"), fill

    def _as_the_server_keeps(self, request: dict[str, Any]) -> dict[str, Any]:
        """What some servers do to a market order: cut or replace its comment (the client
        order id in it), fill it without its SL/TP."""
        faults, kept = self.faults, dict(request)
        comment = str(request.get("comment") or "")
        if comment and self._roll(faults.comment_rewrite_rate):
            kept["comment"] = f"#{self._request_id}"
        elif comment and self._roll(faults.comment_truncate_rate):
            kept["comment"] = comment[: faults.comment_keep]
        stops = request.get("sl") or request.get("tp")
        if stops and not request.get("position") and self._roll(faults.stops_ignored_rate):
            kept["sl"] = kept["tp"] = 0.0
        return kept

    def _visible_deals(self) -> list[Any]:
        """The history's deals, without those it has not caught up with yet."""
        if not self._lagging:
            return self.server.deals
        self._lagging = {t: until for t, until in self._lagging.items() if until > self._calls}
        return [d for d in self.server.deals if d.ticket not in self._lagging]

    def _check_selected(self, request: dict[str, Any]) -> None:
        """A known symbol outside Market Watch has no quotes in the terminal: 10021."""
        symbol = request.get("symbol")
        if symbol in self.server.feeds and symbol not in self._selected:
            raise TradeRefused(K.TRADE_RETCODE_PRICE_OFF, "No prices")

    def _quote_or_zero(self, symbol: object, moment: float) -> tuple[int, float, float]:
        feed = self.server.feeds.get(symbol) if isinstance(symbol, str) else None
        quote = feed.quote(moment) if feed is not None else None
        return quote or (0, 0.0, 0.0)

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    # ------------------------------------------------------------ helpers of the package

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

    # ------------------------------------------------------------ simulator controls

    def sim_time(self) -> float:
        """The simulated clock, in epoch seconds (UTC)."""
        return self.clock.now()

    def sim_server_offset(self) -> int:
        """Seconds the server's clock (API times) runs ahead of UTC now: for tests; a trader
        on a real terminal has no such call and reads the offset from tick times."""
        return self.server_clock.offset(self.clock.now())

    def sim_set_time(self, moment: float) -> float:
        with self._lock:
            self.clock.set(float(moment))
            self.server.process(self.clock.now())
            self._changed()
            return self.clock.now()

    def sim_advance(self, seconds: float) -> float:
        with self._lock:
            return self.sim_set_time(self.clock.now() + float(seconds))

    def sim_step_bar(self) -> bool:
        """Move the clock to the next base bar's open: the bar before it has just closed and
        the new one shows only its open. False (and the clock at the end) when data runs out.
        """
        with self._lock:
            now = self.clock.now()
            upcoming = [
                int(f.times[i])
                for f in self.server.feeds.values()
                if (i := f.index_at(now) + 1) < len(f.times)
            ]
            if not upcoming:
                self.sim_set_time(max(f.end for f in self.server.feeds.values()))
                return False
            self.sim_set_time(min(upcoming))
            return True

    def sim_finished(self) -> bool:
        return self.clock.now() >= max(f.end for f in self.server.feeds.values())

    def sim_set_faults(self, **knobs: float) -> dict[str, float]:
        """Change fault knobs (names as in FaultConfig); returns them all."""
        with self._lock:
            current = {k: getattr(self.faults, k) for k in FaultConfig.__dataclass_fields__}
            current.update(knobs)
            self.faults = FaultConfig(**current)
            if "seed" in knobs:
                self._rng = random.Random(self.faults.seed)
            return dict(current)

    def sim_drop_connection(self, seconds: float = 0.0, calls: int = 0) -> None:
        """Disconnect now, for `seconds` of wall time and/or the next `calls` calls."""
        with self._lock:
            self._initialized = False
            self._drop_until_wall = self.config.wall() + float(seconds)
            self._drop_calls_left = max(self._drop_calls_left, int(calls))

    def sim_set_terminal(
        self,
        *,
        trade_allowed: bool | None = None,
        tradeapi_disabled: bool | None = None,
        connected: bool | None = None,
    ) -> None:
        """Flip the terminal's Algo Trading button, API switch or server link."""
        with self._lock:
            if trade_allowed is not None:
                self.trade_allowed = trade_allowed
            if tradeapi_disabled is not None:
                self.tradeapi_disabled = tradeapi_disabled
            if connected is not None:
                self.server_connected = connected

    @property
    def state_lock(self) -> threading.RLock:
        """Held by every call; a state file holds it too, so it saves one moment, in order."""
        return self._lock

    def sim_state(self, history_orders_from: int = 0, deals_from: int = 0) -> dict[str, Any]:
        """Everything that must survive a restart: account, positions, orders, deals, clock
        (with `*_from`, only the history orders and deals after those counts)."""
        with self._lock:
            state = self.server.to_state(
                history_orders_from=history_orders_from, deals_from=deals_from
            )
            state["clock"] = self.clock.now()
            state["selected"] = sorted(self._selected)
            return state

    def sim_load_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.server.load_state(state)
            self.clock.set(float(state["clock"]))
            if "selected" in state:  # Market Watch as saved (deselections too)
                self._selected = set(state["selected"])


for _name, _value in CONSTANTS.items():
    setattr(SimTerminal, _name, _value)
for _name, _type in structs.STRUCT_TYPES.items():
    setattr(SimTerminal, _name, _type)


# ---------------------------------------------------------------- argument handling


def _check_types(*pairs: tuple[object, type]) -> None:
    """Optional arguments: each None or of its type (bool counts as int, as the module's)."""
    for value, kind in pairs:
        if value is not None and not isinstance(value, kind):
            raise _Fail(-2, INVALID)


def _ticks_of_kind(ticks: np.ndarray, flags: object) -> np.ndarray:
    """COPY_TICKS_ALL / INFO (bid or ask changed) / TRADE (last or volume changed).

    The simulated ticks are all bid/ask ticks, so TRADE finds none, as for forex quotes.
    """
    if not arguments.is_int(flags) or flags not in COPY_TICKS:
        raise _Fail(-2, INVALID)
    if flags == K.COPY_TICKS_TRADE:
        wanted = K.TICK_FLAG_LAST | K.TICK_FLAG_VOLUME
    elif flags == K.COPY_TICKS_INFO:
        wanted = K.TICK_FLAG_BID | K.TICK_FLAG_ASK
    else:
        return ticks
    return ticks[(ticks["flags"] & wanted) != 0]


def _check_numbers(before: dict[str, float], extra_margin: float) -> tuple[float, ...]:
    margin = before["margin"] + extra_margin
    equity = before["equity"]
    level = 100.0 * equity / margin if margin else 0.0
    return (
        before["balance"],
        equity,
        before["profit"],
        round(margin, 2),
        round(equity - margin, 2),
        round(level, 2),
    )
