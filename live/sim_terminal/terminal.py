"""SimTerminal: a module-like object with the MetaTrader5 API, backed by the simulated market.

Faithful to the package's behaviour (see shared reference MT5_NOTES.md): every call resets the
error slot to (1, 'Success'); failures return None (or False) and leave (code, text) for
last_error(); before initialize() everything fails with (-10004, 'No IPC connection');
positional/keyword conventions and request field types are checked as the compiled module does.
Non-MT5 controls are methods named sim_* (clock, faults, state), usable over RPyC too.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from backtest.data import TIMEFRAMES, load_csv
from backtest.synthetic import START_PRICES, generate_bars
from live.sim_terminal import structs
from live.sim_terminal.broker import Account, TradeRefused, TradeServer
from live.sim_terminal.config import FaultConfig, SimConfig
from live.sim_terminal.constants import CONSTANTS, K
from live.sim_terminal.market import CATALOG, TICKS_DTYPE, SimClock, SimSymbol, SymbolFeed

logger = logging.getLogger(__name__)

VERSION = (500, 4410, "15 Nov 2024")
TIMEFRAME_NAMES = {CONSTANTS[f"TIMEFRAME_{name}"]: name for name in TIMEFRAMES}
NO_IPC = (-10004, "No IPC connection")
IPC_TIMEOUT = (-10005, "IPC timeout")
FLOAT_FIELDS = ("volume", "price", "stoplimit", "sl", "tp")
INT_FIELDS = ("action", "magic", "order", "deviation", "type", "type_filling", "type_time",
              "expiration", "position", "position_by")
TEXT_FIELDS = ("symbol", "comment")
_BOOL_FUNCTIONS = {"initialize", "login", "symbol_select", "market_book_add",
                   "market_book_release"}


class _Fail(Exception):
    """Internal: end the call with this last_error() code and text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def _api(function: Callable[..., Any]) -> Callable[..., Any]:
    """Serialise the call, reset the error slot, apply faults, turn _Fail into None/False."""
    failed = False if function.__name__ in _BOOL_FUNCTIONS else None

    @functools.wraps(function)
    def call(self: SimTerminal, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._error = (1, "Success")
            try:
                self._before_call(function.__name__)
                return function(self, *args, **kwargs)
            except _Fail as fail:
                self._error = (fail.code, fail.text)
                return failed

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
        self._request_id = 0
        self.trade_allowed = self.config.trade_allowed
        self.tradeapi_disabled = self.config.tradeapi_disabled
        self.server_connected = True
        self.on_change: Callable[[], None] | None = None
        feeds = _build_feeds(self.config)
        self._selected = {name for name, feed in feeds.items() if feed.symbol.visible}
        start = self.config.start
        if start is None:
            first = feeds[self.config.data_symbol or self.config.symbols[0]]
            start = float(first.times[min(self.config.history_bars, len(first.times) - 1)])
        self.clock = SimClock(start, self.config.speed, self.config.wall)
        account = Account(
            login=self.config.login, server=self.config.server, balance=self.config.balance,
            leverage=self.config.leverage,
            margin_mode=K.ACCOUNT_MARGIN_MODE_RETAIL_NETTING if self.config.netting
            else K.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
            trade_mode=K.ACCOUNT_TRADE_MODE_REAL if self.config.real_account
            else K.ACCOUNT_TRADE_MODE_DEMO)
        self.server = TradeServer(account, feeds, processed_until=start)

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
        self.server.process(self.clock.now())

    def _connection_dropped(self) -> bool:
        f = self.faults
        if f.drop_every_calls and f.drop_for_calls and self._calls % f.drop_every_calls == 0:
            self._drop_calls_left = max(self._drop_calls_left, f.drop_for_calls)
        if self._drop_calls_left > 0:
            self._drop_calls_left -= 1
            return True
        return self.config.wall() < self._drop_until_wall

    def _changed(self) -> None:
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
    def initialize(self, *args: Any, path: str | None = None, login: int | None = None,
                   password: str | None = None, server: str | None = None,
                   timeout: int | None = None, portable: bool = False) -> bool:
        if len(args) > 1 or (args and not isinstance(args[0], str)):
            raise _Fail(-2, "Invalid arguments")
        if login is not None:
            self._authorize(login, password, server)
        self._initialized = True
        return True

    @_api
    def login(self, *args: Any, **kwargs: Any) -> bool:
        names = ("login", "password", "server")
        if len(args) > 3:
            raise _Fail(-2, "Invalid number of arguments")
        values = dict(zip(names, args, strict=False))
        values.update({k: v for k, v in kwargs.items() if k in names})
        if "login" not in values:
            raise _Fail(-2, "Invalid arguments")
        self._authorize(values["login"], values.get("password"), values.get("server"))
        return True

    def _authorize(self, login: object, password: object, server: object) -> None:
        account = self.server.account
        if not isinstance(login, int) or login != account.login or (
                self.config.password is not None and password != self.config.password) or (
                server not in (None, "", account.server)):
            raise _Fail(-6, "Terminal: Authorization failed")

    @_api
    def shutdown(self) -> bool:
        self._initialized = False
        return True

    @_api
    def version(self) -> tuple[int, int, str]:
        return VERSION

    def last_error(self) -> tuple[int, str]:
        with self._lock:
            return self._error

    @_api
    def terminal_info(self) -> Any:
        values = dict.fromkeys(structs.STRUCT_FIELDS["TerminalInfo"], 0)
        values.update(
            community_account=False, community_connection=False,
            connected=self.server_connected, dlls_allowed=False,
            trade_allowed=self.trade_allowed, tradeapi_disabled=self.tradeapi_disabled,
            email_enabled=False, ftp_enabled=False, notifications_enabled=False, mqid=False,
            build=VERSION[1], maxbars=100_000, codepage=0, ping_last=31_250,
            community_balance=0.0, retransmission=0.0, company="Simulated Broker Ltd",
            name="MetaTrader 5 (simulated)", language="English", path="/sim/terminal",
            data_path="/sim/terminal", commondata_path="/sim/common")
        return structs.TerminalInfo(**values)

    @_api
    def account_info(self) -> Any:
        account = self.server.account
        totals = self.server.totals(self.clock.now())
        values = dict.fromkeys(structs.STRUCT_FIELDS["AccountInfo"], 0)
        values.update(
            login=account.login, trade_mode=account.trade_mode, leverage=account.leverage,
            limit_orders=200, margin_so_mode=0, trade_allowed=True, trade_expert=True,
            margin_mode=account.margin_mode, currency_digits=2, fifo_close=False,
            credit=0.0, margin_so_call=50.0, margin_so_so=30.0, margin_initial=0.0,
            margin_maintenance=0.0, assets=0.0, liabilities=0.0, commission_blocked=0.0,
            name=account.name, server=account.server, currency=account.currency,
            company=account.company, **totals)
        return structs.AccountInfo(**values)

    # ------------------------------------------------------------ symbols

    @_api
    def symbols_total(self) -> int:
        return len(self.server.feeds)

    @_api
    def symbols_get(self, *args: Any, group: str | None = None) -> tuple[Any, ...]:
        if args:
            if len(args) > 1 or group is not None:
                raise _Fail(-2, "Invalid arguments")
            group = args[0]
        names = [n for n in self.server.feeds if group is None or _group_match(n, group)]
        return tuple(self._symbol_info(n) for n in names)

    @_api
    def symbol_info(self, symbol: str) -> Any:
        self._feed(symbol, selected=False)
        return self._symbol_info(symbol)

    def _symbol_info(self, name: str) -> Any:
        feed = self.server.feeds[name]
        spec = feed.symbol
        moment = self.clock.now()
        quote = feed.quote(moment) if name in self._selected else None
        when, bid, ask = quote if quote else (0, 0.0, 0.0)
        return structs.SymbolInfo(**_symbol_fields(spec, name in self._selected, when, bid, ask))

    @_api
    def symbol_info_tick(self, symbol: str) -> Any:
        quote = self._feed(symbol).quote(self.clock.now())
        if quote is None:
            raise _Fail(-1, "Terminal: Call failed")
        when, bid, ask = quote
        return structs.Tick(when, bid, ask, 0.0, 0, when * 1000, 6, 0.0)

    @_api
    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        self._feed(symbol, selected=False)
        if enable:
            self._selected.add(symbol)
        elif any(p.symbol == symbol for p in self.server.positions.values()):
            raise _Fail(-1, "Terminal: Call failed")  # open positions keep it in Market Watch
        else:
            self._selected.discard(symbol)
        return True

    @_api
    def market_book_add(self, symbol: str) -> bool:
        raise _Fail(-7, "Terminal: Unsupported function")

    @_api
    def market_book_release(self, symbol: str) -> bool:
        raise _Fail(-7, "Terminal: Unsupported function")

    @_api
    def market_book_get(self, symbol: str) -> Any:
        raise _Fail(-7, "Terminal: Unsupported function")

    # ------------------------------------------------------------ prices

    def _timeframe(self, code: object) -> str:
        name = TIMEFRAME_NAMES.get(code) if isinstance(code, int) else None
        if name is None or TIMEFRAMES[name] < TIMEFRAMES[self.config.timeframe]:
            raise _Fail(-2, "Invalid arguments")
        return name

    @_api
    def copy_rates_from(self, symbol: str, timeframe: int, date_from: Any,
                        count: int) -> np.ndarray:
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        until = min(_seconds(date_from), self.clock.now())
        rates = feed.rates_until(self.clock.now(), name)
        return rates[rates["time"] <= until][-_count(count):]

    @_api
    def copy_rates_from_pos(self, symbol: str, timeframe: int, start_pos: int,
                            count: int) -> np.ndarray:
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        if not isinstance(start_pos, int) or start_pos < 0:
            raise _Fail(-2, "Invalid arguments")
        rates = feed.rates_until(self.clock.now(), name, tail=start_pos + _count(count))
        return rates[: len(rates) - start_pos] if start_pos else rates

    @_api
    def copy_rates_range(self, symbol: str, timeframe: int, date_from: Any,
                         date_to: Any) -> np.ndarray:
        feed, name = self._feed(symbol), self._timeframe(timeframe)
        first, last = _seconds(date_from), _seconds(date_to)
        rates = feed.rates_until(self.clock.now(), name)
        return rates[(rates["time"] >= first) & (rates["time"] <= last)]

    @_api
    def copy_ticks_from(self, symbol: str, date_from: Any, count: int,
                        flags: int) -> np.ndarray:
        feed = self._feed(symbol)
        return feed.ticks_between(_seconds(date_from), self.clock.now())[: _count(count)]

    @_api
    def copy_ticks_range(self, symbol: str, date_from: Any, date_to: Any,
                         flags: int) -> np.ndarray:
        feed = self._feed(symbol)
        last = min(_seconds(date_to), self.clock.now())
        ticks = feed.ticks_between(_seconds(date_from), last)
        return ticks if len(ticks) else np.empty(0, dtype=TICKS_DTYPE)

    # ------------------------------------------------------------ positions and orders

    @_api
    def positions_total(self) -> int:
        return len(self.server.positions)

    @_api
    def positions_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        chosen = _filtered(self.server.positions.values(), args, kwargs)
        moment = self.clock.now()
        return tuple(self._position_struct(p, moment) for p in chosen)

    @_api
    def orders_total(self) -> int:
        return len(self.server.orders)

    @_api
    def orders_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        chosen = _filtered(self.server.orders.values(), args, kwargs)
        return tuple(self._order_struct(o) for o in chosen)

    @_api
    def history_orders_total(self, date_from: Any, date_to: Any) -> int:
        return len(self._history(self.server.history_orders, (date_from, date_to), {},
                                 "time_setup_msc"))

    @_api
    def history_orders_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        found = self._history(self.server.history_orders, args, kwargs, "time_setup_msc")
        return tuple(self._order_struct(o) for o in found)

    @_api
    def history_deals_total(self, date_from: Any, date_to: Any) -> int:
        return len(self._history(self.server.deals, (date_from, date_to), {}, "time_msc"))

    @_api
    def history_deals_get(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        found = self._history(self.server.deals, args, kwargs, "time_msc")
        return tuple(_deal_struct(d) for d in found)

    def _history(self, items: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 time_field: str) -> list[Any]:
        if "ticket" in kwargs:
            return [i for i in items if i.ticket == kwargs["ticket"]]
        if "position" in kwargs:
            return [i for i in items if i.position_id == kwargs["position"]]
        if len(args) != 2:
            raise _Fail(-2, "Invalid arguments")
        first, last = _seconds(args[0]) * 1000, _seconds(args[1]) * 1000
        group = kwargs.get("group")
        return [i for i in items if first <= getattr(i, time_field) <= last
                and (group is None or _group_match(i.symbol, group))]

    def _position_struct(self, p: Any, moment: float) -> Any:
        return structs.TradePosition(
            p.ticket, p.time_msc // 1000, p.time_msc, p.time_update_msc // 1000,
            p.time_update_msc, p.type, p.magic, p.identifier or p.ticket, p.reason, p.volume,
            p.price_open, p.sl, p.tp, self.server.closing_price(p, moment), 0.0,
            self.server.floating(p, moment), p.symbol, p.comment, "")

    def _order_struct(self, o: Any) -> Any:
        return structs.TradeOrder(
            o.ticket, o.time_setup_msc // 1000, o.time_setup_msc, o.time_done_msc // 1000,
            o.time_done_msc, o.time_expiration, o.type, o.type_time, o.type_filling, o.state,
            o.magic, o.position_id, 0, o.reason, o.volume_initial, o.volume_current,
            o.price_open, o.sl, o.tp, o.price_current or o.price_open, 0.0, o.symbol,
            o.comment, "")

    # ------------------------------------------------------------ calculations

    @_api
    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float) -> float:
        spec = self._feed(symbol, selected=False).symbol
        if action not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL) or volume <= 0:
            raise _Fail(-2, "Invalid arguments")
        return round(self.server.margin_for(spec, float(volume), float(price)), 2)

    @_api
    def order_calc_profit(self, action: int, symbol: str, volume: float, price_open: float,
                          price_close: float) -> float:
        spec = self._feed(symbol, selected=False).symbol
        if action not in (K.ORDER_TYPE_BUY, K.ORDER_TYPE_SELL):
            raise _Fail(-2, "Invalid arguments")
        return round(self.server.profit_of(spec, action, float(volume), float(price_open),
                                           float(price_close)), 2)

    # ------------------------------------------------------------ trading

    @_api
    def order_check(self, *args: Any, **kwargs: Any) -> Any:
        request = _request(args, kwargs)
        moment = self.clock.now()
        trade_request = structs.TradeRequest(**request)
        before = self.server.totals(moment)
        try:
            self._check_selected(request)
            self.server.validate(request, moment, trade_allowed=self.trade_allowed)
        except TradeRefused as refused:
            return structs.OrderCheckResult(refused.retcode, *_check_numbers(before, 0.0),
                                            refused.comment, trade_request)
        extra = self._margin_of(request, moment)
        return structs.OrderCheckResult(0, *_check_numbers(before, extra), "Done",
                                        trade_request)

    def _margin_of(self, request: dict[str, Any], moment: float) -> float:
        if request["action"] not in (K.TRADE_ACTION_DEAL, K.TRADE_ACTION_PENDING) or \
                request.get("position"):
            return 0.0
        feed = self.server.feeds[request["symbol"]]
        _, bid, ask = feed.quote(moment)
        price = request["price"] or (ask if request["type"] == K.ORDER_TYPE_BUY else bid)
        return self.server.margin_for(feed.symbol, request["volume"], price)

    @_api
    def order_send(self, *args: Any, **kwargs: Any) -> Any:
        request = _request(args, kwargs)
        if self.tradeapi_disabled:
            raise _Fail(-8, "Auto-Trading using Python API disabled in Terminal")
        self._request_id += 1
        moment = self.clock.now()
        if self._roll(self.faults.timeout_rate):
            raise _Fail(*IPC_TIMEOUT)
        code, comment, fill = self._send(request, moment)
        _, bid, ask = self._quote_or_zero(request.get("symbol"), moment)
        result = structs.OrderSendResult(
            code, fill.deal if fill else 0, fill.order if fill else 0,
            fill.volume if fill else 0.0, fill.price if fill else 0.0, bid, ask, comment,
            self._request_id, 0, structs.TradeRequest(**request))
        if fill is not None:
            self._changed()
            if self._roll(self.faults.reply_lost_rate):
                raise _Fail(*IPC_TIMEOUT)  # executed, but the reply never arrives
        return result

    def _send(self, request: dict[str, Any], moment: float) -> tuple[int, str, Any]:
        if not self.server_connected:
            return K.TRADE_RETCODE_CONNECTION, "No connection", None
        try:
            self._check_selected(request)
            self.server.validate(request, moment, trade_allowed=self.trade_allowed)
        except TradeRefused as refused:
            return refused.retcode, refused.comment, None
        if request["action"] == K.TRADE_ACTION_DEAL:
            if self._roll(self.faults.requote_rate):
                return K.TRADE_RETCODE_REQUOTE, "Requote", None
            if self._roll(self.faults.reject_rate):
                return K.TRADE_RETCODE_REJECT, "Request rejected", None
        ratio = 1.0
        partial_allowed = request.get("type_filling") in (K.ORDER_FILLING_IOC,
                                                          K.ORDER_FILLING_RETURN)
        if partial_allowed and self._roll(self.faults.partial_fill_rate):
            ratio = self.faults.partial_fill_ratio
        fill = self.server.execute(request, moment, fill_ratio=ratio)
        done = {K.TRADE_RETCODE_PLACED: "Request placed",
                K.TRADE_RETCODE_DONE_PARTIAL: "Request executed partially"}
        return fill.retcode, done.get(fill.retcode, "Request executed"), fill

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

    def Buy(self, symbol: str, volume: float, price: float | None = None, *,
            comment: str | None = None, ticket: int | None = None) -> Any:
        """The package's helper: a market buy, retried on requote/off quotes up to 10 times."""
        return self._helper_deal(symbol, volume, K.ORDER_TYPE_BUY, price, comment, ticket)

    def Sell(self, symbol: str, volume: float, price: float | None = None, *,
             comment: str | None = None, ticket: int | None = None) -> Any:
        return self._helper_deal(symbol, volume, K.ORDER_TYPE_SELL, price, comment, ticket)

    def Close(self, symbol: str, *, comment: str | None = None,
              ticket: int | None = None) -> bool | str | None:
        """The package's helper: close the symbol's positions (or one ticket) at bid/ask.

        True when all closed, "Partially" when some did, False when none, None on failure.
        """
        positions = self.positions_get(ticket=ticket) if ticket is not None else \
            self.positions_get(symbol=symbol)
        if not positions:
            return None if positions is None else False
        done = 0
        for position in positions:
            side = K.ORDER_TYPE_SELL if position.type == K.POSITION_TYPE_BUY \
                else K.ORDER_TYPE_BUY
            result = self._helper_deal(position.symbol, position.volume, side, None, comment,
                                       position.ticket)
            done += result is not None and result.retcode == K.TRADE_RETCODE_DONE
        return True if done == len(positions) else ("Partially" if done else False)

    def _helper_deal(self, symbol: str, volume: float, side: int, price: float | None,
                     comment: str | None, ticket: int | None) -> Any:
        result = None
        for _ in range(10):
            tick = self.symbol_info_tick(symbol)
            if tick is None:
                return None
            request = {"action": K.TRADE_ACTION_DEAL, "symbol": symbol, "volume": float(volume),
                       "type": side, "deviation": 10, "magic": 0,
                       "price": float(price or (tick.ask if side == K.ORDER_TYPE_BUY
                                                else tick.bid))}
            if comment is not None:
                request["comment"] = comment
            if ticket is not None:
                request["position"] = ticket
            result = self.order_send(request)
            if result is None or result.retcode not in (K.TRADE_RETCODE_REQUOTE,
                                                        K.TRADE_RETCODE_PRICE_OFF):
                return result
        return result

    # ------------------------------------------------------------ simulator controls

    def sim_time(self) -> float:
        """The simulated clock, in epoch seconds (UTC)."""
        return self.clock.now()

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
            upcoming = [int(f.times[i]) for f in self.server.feeds.values()
                        if (i := f.index_at(now) + 1) < len(f.times)]
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

    def sim_set_terminal(self, *, trade_allowed: bool | None = None,
                         tradeapi_disabled: bool | None = None,
                         connected: bool | None = None) -> None:
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
            state = self.server.to_state(history_orders_from=history_orders_from,
                                         deals_from=deals_from)
            state["clock"] = self.clock.now()
            state["selected"] = sorted(self._selected)
            return state

    def sim_load_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.server.load_state(state)
            self.clock.set(float(state["clock"]))
            self._selected |= set(state.get("selected", ()))


for _name, _value in CONSTANTS.items():
    setattr(SimTerminal, _name, _value)
for _name, _type in structs.STRUCT_TYPES.items():
    setattr(SimTerminal, _name, _type)


# ---------------------------------------------------------------- argument handling


def _count(count: object) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        raise _Fail(-2, "Invalid arguments")
    return count


def _seconds(moment: object) -> int:
    """A datetime (naive = local time, as the package reads it) or epoch seconds."""
    if isinstance(moment, datetime):
        return int(moment.timestamp())
    if isinstance(moment, (int, float)) and not isinstance(moment, bool):
        return int(moment)
    raise _Fail(-2, "Invalid arguments")


def _request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request dict with defaults and the compiled module's type rules."""
    if args:
        if len(args) != 1 or kwargs or not isinstance(args[0], dict):
            raise _Fail(-2, "Invalid arguments")
        given = args[0]
    else:
        given = kwargs
    request: dict[str, Any] = {}
    for name in structs.STRUCT_FIELDS["TradeRequest"]:
        value = given.get(name)
        if name in FLOAT_FIELDS:
            value = 0.0 if value is None else value
            if not isinstance(value, float):
                raise _Fail(-2, f'Invalid "{name}" argument')
        elif name in INT_FIELDS:
            value = 0 if value is None else value
            if not isinstance(value, int):
                raise _Fail(-2, f'Invalid "{name}" argument')
        else:
            value = "" if value is None else value
            if not isinstance(value, str) or len(value.encode("utf-16-le")) // 2 > 29:
                raise _Fail(-2, f'Invalid "{name}" argument')
        request[name] = value
    return request


def _filtered(items: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    """ticket, then symbol, then group: the first key present wins, as the binary does."""
    if args:
        raise _Fail(-2, "Unnamed arguments not allowed")
    items = list(items)
    if "ticket" in kwargs:
        return [i for i in items if i.ticket == kwargs["ticket"]]
    if "symbol" in kwargs:
        symbol = kwargs["symbol"]
        if not isinstance(symbol, str) or len(symbol) > 29:
            raise _Fail(-2, "Invalid arguments")
        return [i for i in items if i.symbol == symbol]
    if "group" in kwargs:
        return [i for i in items if _group_match(i.symbol, kwargs["group"])]
    return items


def _group_match(name: str, group: str) -> bool:
    """MT5 group masks: comma-separated patterns with *, a leading ! excludes; in order."""
    import fnmatch

    matched = False
    for pattern in (p.strip() for p in group.split(",")):
        if not pattern:
            continue
        if pattern.startswith("!"):
            if fnmatch.fnmatchcase(name, pattern[1:]):
                matched = False
        elif fnmatch.fnmatchcase(name, pattern):
            matched = True
    return matched


def _check_numbers(before: dict[str, float], extra_margin: float) -> tuple[float, ...]:
    margin = before["margin"] + extra_margin
    equity = before["equity"]
    level = 100.0 * equity / margin if margin else 0.0
    return (before["balance"], equity, before["profit"], round(margin, 2),
            round(equity - margin, 2), round(level, 2))


def _deal_struct(d: Any) -> Any:
    return structs.TradeDeal(
        d.ticket, d.order, d.time_msc // 1000, d.time_msc, d.type, d.entry, d.magic,
        d.position_id, d.reason, d.volume, d.price, d.commission, d.swap, d.profit, d.fee,
        d.symbol, d.comment, "")


def _symbol_fields(spec: SimSymbol, selected: bool, when: int, bid: float,
                   ask: float) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(structs.STRUCT_FIELDS["SymbolInfo"], 0)
    for text in ("basis", "category", "currency_base", "currency_profit", "currency_margin",
                 "bank", "description", "exchange", "formula", "isin", "name", "page", "path"):
        values[text] = ""
    point = spec.point
    values.update(
        custom=False, select=selected, visible=selected, time=when, digits=spec.digits,
        spread=round((ask - bid) / point) if bid else 0, spread_float=True,
        trade_calc_mode=spec.calc_mode, trade_mode=spec.trade_mode,
        trade_stops_level=spec.stops_level, trade_freeze_level=spec.freeze_level,
        trade_exemode=spec.exemode, filling_mode=spec.filling_flags,
        expiration_mode=15, order_mode=127, order_gtc_mode=0, bid=bid, bidhigh=bid,
        bidlow=bid, ask=ask, askhigh=ask, asklow=ask, point=point, trade_tick_size=point,
        trade_tick_value=spec.contract_size * point, trade_tick_value_profit=spec.contract_size
        * point, trade_tick_value_loss=spec.contract_size * point,
        trade_contract_size=spec.contract_size, volume_min=spec.volume_min,
        volume_max=spec.volume_max, volume_step=spec.volume_step, volume_limit=0.0,
        currency_base=spec.currency_base, currency_profit=spec.currency_profit,
        currency_margin=spec.currency_margin, description=spec.description, name=spec.name,
        path=f"Forex\\{spec.name}" if spec.calc_mode == 0 else f"Metals\\{spec.name}",
        swap_mode=1, swap_rollover3days=3, margin_hedged=spec.contract_size / 2,
        margin_hedged_use_leg=False, margin_initial=0.0, margin_maintenance=0.0,
    )
    return values


# ---------------------------------------------------------------- market construction


def _build_feeds(config: SimConfig) -> dict[str, SymbolFeed]:
    """A feed for every catalog symbol and every configured one, on one calendar."""
    width = TIMEFRAMES[config.timeframe]
    replayed = config.data_symbol or config.symbols[0]
    names = list(dict.fromkeys([*config.symbols, *CATALOG]))
    feeds: dict[str, SymbolFeed] = {}
    start, n_bars = "2020-01-06", config.n_bars
    if config.data:
        bars = load_csv(config.data, tz=config.data_tz)
        feeds[replayed] = SymbolFeed(_spec(replayed), bars, width)
        start, n_bars = str(bars["time"].iloc[0]), len(bars)
    for name in names:
        if name not in feeds:
            spec = _spec(name)
            bars = generate_bars(name, config.timeframe, n_bars, start=start, seed=config.seed,
                                 spec=spec.as_symbol_spec(), start_price=spec.start_price)
            feeds[name] = SymbolFeed(spec, bars, width)
    return feeds


def _spec(name: str) -> SimSymbol:
    known = CATALOG.get(name)
    if known is not None:
        return known
    base, quote = (name[:3], name[3:6]) if len(name) >= 6 else (name, "USD")
    return SimSymbol(name, f"{base} vs {quote}", 5, 100_000, base, quote or "USD",
                     start_price=START_PRICES.get(name[:6], 1.0))
