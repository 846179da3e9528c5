"""MT5Connector: the connector, the only code that calls an MT5 API (official package,
mt5linux or simulator). It owns the link (connect, log in, reconnect with backoff) and every
call; its siblings are part of it, and only it calls them: live.mt5_backends (which API, and
the simulator's extras), live.mt5_symbols (Market Watch, symbol specs, filling modes, through
the connector's calls), live.mt5_results (results copied into records) and live.mt5_errors
(what a failure means). Other modules import their names (constants, conversions) through
this module.

Every call is serialised (the API keeps one pipe and one global error slot), every failure
becomes a typed error from live.errors carrying the `last_error()` code or the trade return
code, and results come back as plain records (live.broker_types), never as a bare None.
Exceptions the API raises (a dying link, or any exception a remote terminal sends back over
RPyC) become typed errors too: nothing from the API escapes untyped.

Time is UTC on this side: the server stamps every epoch in its own clock (MT5_NOTES §2), so
`_call` converts both ways with the connector's BrokerClock (live.broker_time): the moments it
sends (history ranges, copy_* dates, an order's expiration) to server time, every epoch field
and column it gets back to UTC.
"""

from __future__ import annotations

if not __package__ and __name__ != "__main__":
    # imported from inside live/, as the design's quick start does (`cd live && python -c
    # "from mt5_connector import MT5Connector"`): be the package's module, one class per name
    import importlib as _importlib
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
    _sys.modules[__name__] = _importlib.import_module(f"live.{__name__}")

import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

import numpy as np
import pandas as pd

from backtest.symbols import SymbolSpec
from live.broker_time import BrokerClock, moment_to_server, request_to_server, results_to_utc
from live.broker_types import (
    IPC_ERROR_CODES,
    TIMEFRAME_CODES,
    TradeRequestFields,
    retcode_text,
    trade_request,
)
from live.config import LiveConfig
from live.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigError,
    OrderRejected,
    OutcomeUnknown,
    RetryableOrderError,
)
from live.mt5_backends import call_sim_extra, load_api, serves_simulator
from live.mt5_errors import (
    API_ERRORS,
    TRANSPORT_ERRORS,
    described,
    error_for_last_error,
    error_for_retcode,
)
from live.mt5_results import to_local
from live.mt5_symbols import FILLING_NAMES, MarketWatch, decode_filling

logger = logging.getLogger(__name__)

# Importable from here as before the split (their owners are the mt5_* siblings).
__all__ = [
    "FILLING_NAMES",
    "ConnectionState",
    "MT5Connector",
    "decode_filling",
    "error_for_last_error",
    "error_for_retcode",
    "to_local",
]

_FAR_FUTURE = timedelta(days=3)
# The positional arguments each function reads as a moment (server time on the server's side).
MOMENT_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "copy_rates_from": (2,),
    "copy_rates_range": (2, 3),
    "copy_ticks_from": (1,),
    "copy_ticks_range": (1, 2),
    "history_orders_total": (0, 1),
    "history_orders_get": (0, 1),
    "history_deals_total": (0, 1),
    "history_deals_get": (0, 1),
}
# The functions taking a trade request (its `expiration` is a moment too).
REQUEST_FUNCTIONS = frozenset({"order_check", "order_send"})


class ConnectionState(enum.Enum):
    CONNECTED = "connected"
    RECONNECTED = "reconnected"
    DOWN = "down"


class MT5Connector:
    """The live broker: a terminal reached through the backend chosen by the config.

    `api` may be given (a module-like object with the MetaTrader5 functions), which is how
    tests pass a simulator they drive; otherwise it is created from `config.backend`. `clock`
    is the server's zone (default: BROKER_TZ, with UTC now read from the simulator's clock on a
    simulator, else from `wall_clock`).
    """

    dry_run = False

    def __init__(
        self,
        config: LiveConfig,
        *,
        api: Any = None,
        backend: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: BrokerClock | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.backend = backend or (config.backend if api is None else "injected")
        self._api = api
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._connected = False
        self._retry_delay = 1.0
        self._next_attempt = 0.0
        self._attempts = 0
        self.market_watch = MarketWatch(self._call, self._call_raw)
        self._served_sim = False
        self._wall = wall_clock
        self.initialize_error = ""  # why the last initialize() answered False
        self.clock = clock or BrokerClock(config.broker_tz, utc_now=self.market_now)

    # ------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        """True after a successful connect, until shutdown or a lost link is noticed."""
        return self._connected

    @property
    def is_simulator(self) -> bool:
        return hasattr(self._api, "sim_step_bar") or self.backend == "sim" or self._served_sim

    def connect(self) -> None:
        """Create the API if needed, initialize and log in. Raises ConfigError/BrokerError."""
        with self._lock:
            if self._api is None:
                self._api, self.backend = load_api(self.config)
            self._initialize()

    def initialize(self) -> bool:
        """connect() with MetaTrader5.initialize()'s answer: True once the terminal is reached
        (and logged in when MT5_LOGIN is set), False when not, the reason logged and kept in
        `initialize_error` (connect() raises it instead)."""
        try:
            self.connect()
        except (BrokerError, ConfigError) as exc:
            self.initialize_error = str(exc)
            logger.error("initialize failed: %s", exc)
            return False
        self.initialize_error = ""
        return True

    def login(self) -> None:
        """Log in to MT5_LOGIN on MT5_SERVER explicitly (initialize() already does when
        MT5_LOGIN is set). Raises ConfigError without MT5_LOGIN, ConfigError on refused
        credentials, BrokerError otherwise."""
        cfg = self.config
        if not cfg.mt5_login:
            raise ConfigError("login: MT5_LOGIN is not set (0 = the terminal's own account)")
        try:
            self._call(
                "login",
                cfg.mt5_login,
                password=cfg.mt5_password,
                server=cfg.mt5_server,
                timeout=cfg.mt5_timeout_ms,
            )
        except BrokerError as exc:
            if exc.code == -6:
                raise ConfigError(
                    f"MT5 authorization failed ({exc}): check MT5_LOGIN, "
                    "MT5_PASSWORD and MT5_SERVER"
                ) from None
            raise
        self.market_watch.forget_specs()

    def shutdown(self) -> None:
        with self._lock:
            if self._api is not None:
                with contextlib.suppress(*API_ERRORS):
                    self._api.shutdown()
            self._connected = False

    def ensure_connected(self) -> ConnectionState:
        """Check the link; when it is down, try one reconnection if the backoff allows.

        Never blocks for long: the trading loop calls this every iteration and keeps
        checking the kill switch while the terminal is away. Backoff doubles from 1 s up to
        RECONNECT_MAX_SECONDS. While connected, the broker clock looks at the ticks when due.
        """
        with self._lock:
            if self._connected and self._probe():
                if self._clock_due():
                    self.look_at_clock()
                return ConnectionState.CONNECTED
            if self._connected:
                logger.warning("connection to the MT5 terminal lost")
            self._connected = False
            now = self._monotonic()
            if now < self._next_attempt:
                return ConnectionState.DOWN
            self._attempts += 1
            try:
                if self._api is None or self.backend == "mt5linux":
                    self._api, self.backend = load_api(self.config)
                self._initialize()
            except (BrokerError, ConfigError) as exc:
                self._next_attempt = now + self._retry_delay
                logger.warning(
                    "reconnect attempt %d failed: %s; next try in %.0f s",
                    self._attempts,
                    exc,
                    self._retry_delay,
                )
                self._retry_delay = min(self._retry_delay * 2, self.config.reconnect_max_seconds)
                return ConnectionState.DOWN
            logger.info("reconnected to the MT5 terminal after %d attempt(s)", self._attempts)
            self._retry_delay, self._attempts = 1.0, 0
            return ConnectionState.RECONNECTED

    def _initialize(self) -> None:
        cfg = self.config
        args = (cfg.mt5_path,) if cfg.mt5_path else ()
        kwargs: dict[str, Any] = {"timeout": cfg.mt5_timeout_ms}
        if cfg.mt5_login:
            kwargs.update(login=cfg.mt5_login, password=cfg.mt5_password, server=cfg.mt5_server)
        try:
            ok = self._api.initialize(*args, **kwargs)
        except API_ERRORS as exc:
            raise BrokerUnavailable(f"initialize: terminal unreachable: {described(exc)}") from exc
        if not ok:
            code, text = self._last_error()
            if code == -6:
                raise ConfigError(
                    f"MT5 authorization failed ({code} {text}): check MT5_LOGIN, MT5_PASSWORD "
                    "and MT5_SERVER"
                )
            raise BrokerUnavailable(f"initialize failed: {code} {text}", code=code, text=text)
        self._connected = True
        self.market_watch.forget_specs()
        self._served_sim = self.backend == "mt5linux" and serves_simulator(self._api)
        self.look_at_clock()

    def _probe(self) -> bool:
        try:
            info = self._api.terminal_info()
            return info is not None and bool(info.connected)
        except API_ERRORS:  # a terminal that raises is as good as gone: reconnect
            return False

    # ------------------------------------------------------------ the server's clock

    def market_now(self) -> float:
        """UTC now as the market knows it (epoch seconds): the simulator's clock on a
        simulator, else the wall clock."""
        if self.is_simulator and self._api is not None:
            try:
                return float(self.sim_call("sim_time"))
            except BrokerError:
                logger.debug("simulator clock unreadable; using the wall clock")
        return float(self._wall())

    def look_at_clock(self) -> None:
        """Show the broker clock the traded symbols' last tick times, as the server stamps
        them (see live.broker_time). A symbol without a quote is left out; never raises."""
        ticks: dict[str, float] = {}
        for symbol in self.config.symbols:
            try:
                tick = self.market_watch.selecting(symbol, "symbol_info_tick", symbol, raw=True)
            except BrokerUnavailable:
                return
            except BrokerError as exc:
                logger.debug("broker clock: no tick for %s: %s", symbol, exc)
                continue
            msc = int(tick.time_msc or 0)
            ticks[symbol] = msc / 1000 if msc else float(tick.time)
        try:
            self.clock.observe(ticks)
        except BrokerError as exc:  # UTC now is the simulator's clock, and it is away
            logger.debug("broker clock: look skipped: %s", exc)

    def _clock_due(self) -> bool:
        try:
            return self.clock.due()
        except BrokerError:
            return False

    # ------------------------------------------------------------ calls

    def _last_error(self) -> tuple[int, str]:
        try:
            code, text = self._api.last_error()
            return int(code), str(text)
        except TRANSPORT_ERRORS as exc:
            return -10004, f"No IPC connection ({exc})"
        except API_ERRORS as exc:
            return -1, f"last_error raised {described(exc)}"

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the API in UTC: the moments sent are converted to the server's clock, the
        epochs returned back to UTC (one zone for both ways). Errors as `_call_raw`."""
        zone = self.clock.zone
        positions = MOMENT_ARGUMENTS.get(name, ())
        sent = tuple(
            moment_to_server(arg, zone) if i in positions else arg for i, arg in enumerate(args)
        )
        if name in REQUEST_FUNCTIONS and sent and isinstance(sent[0], Mapping):
            sent = (request_to_server(sent[0], zone), *sent[1:])
        return results_to_utc(self._call_raw(name, *sent, **kwargs), zone)

    def _call_raw(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the API under the lock, times as the server has them; None/False becomes a
        BrokerError with last_error()."""
        with self._lock:
            if self._api is None:
                raise BrokerUnavailable(f"{name}: not connected (call connect() first)")
            try:
                result = getattr(self._api, name)(*args, **kwargs)
                if result is not None and result is not False:
                    return to_local(result)  # inside: copying a remote result is a call too
            except TRANSPORT_ERRORS as exc:
                self._connected = False
                raise BrokerUnavailable(f"{name}: terminal unreachable: {exc}") from exc
            except API_ERRORS as exc:
                # code None: for order_send the request may have gone out (OutcomeUnknown)
                raise BrokerError(f"{name} raised {described(exc)}", text=described(exc)) from exc
            code, text = self._last_error()
            if code in IPC_ERROR_CODES:
                self._connected = False
                raise BrokerUnavailable(f"{name} failed: {code} {text}", code=code, text=text)
            raise BrokerError(f"{name} failed: {code} {text}", code=code, text=text)

    # ------------------------------------------------------------ information

    def terminal(self) -> Any:
        return self._call("terminal_info")

    def account(self) -> Any:
        return self._call("account_info")

    def version(self) -> Any:
        return self._call("version")

    def symbol_info(self, symbol: str) -> Any:
        """Symbol facts; a symbol missing from Market Watch is selected first."""
        return self.market_watch.info(symbol)

    def symbol_spec(self, symbol: str) -> SymbolSpec:
        """The symbol's trading facts as the SymbolSpec the sizing code uses (cached)."""
        return self.market_watch.spec(symbol)

    def tick(self, symbol: str) -> Any:
        return self.market_watch.selecting(symbol, "symbol_info_tick", symbol)

    def rates(self, symbol: str, timeframe: str, count: int, *, start_pos: int = 1) -> pd.DataFrame:
        """The last `count` bars before position `start_pos` (1 = skip the forming bar)."""
        from backtest.data import rates_to_frame

        return rates_to_frame(self.rates_array(symbol, timeframe, count, start_pos=start_pos))

    def rates_array(
        self, symbol: str, timeframe: str, count: int, *, start_pos: int = 1
    ) -> np.ndarray:
        """As `rates`, the terminal's own structured array (time in epoch seconds): cheap to
        compare when only the last few bars are asked for, loop after loop."""
        code = TIMEFRAME_CODES.get(timeframe)
        if code is None:
            raise ConfigError(f"unknown timeframe {timeframe!r}")
        rates = self.market_watch.selecting(
            symbol, "copy_rates_from_pos", symbol, code, start_pos, count
        )
        return np.asarray(rates)

    def rates_range(
        self, symbol: str, timeframe: str, date_from: datetime, date_to: datetime
    ) -> pd.DataFrame:
        """Bars with open time in [date_from, date_to] (UTC), forming bar included."""
        from backtest.data import rates_to_frame

        code = TIMEFRAME_CODES.get(timeframe)
        if code is None:
            raise ConfigError(f"unknown timeframe {timeframe!r}")
        self.symbol_info(symbol)  # selects it into Market Watch if needed
        rates = self._call("copy_rates_range", symbol, code, _utc(date_from), _utc(date_to))
        return rates_to_frame(np.asarray(rates))

    def positions(self, symbol: str | None = None) -> tuple[Any, ...]:
        """Open positions carrying this trader's magic number."""
        found = (
            self._call("positions_get", symbol=symbol) if symbol else self._call("positions_get")
        )
        return tuple(p for p in found if p.magic == self.config.magic_number)

    def all_positions(self) -> tuple[Any, ...]:
        return tuple(self._call("positions_get"))

    def orders(self, symbol: str | None = None) -> tuple[Any, ...]:
        found = self._call("orders_get", symbol=symbol) if symbol else self._call("orders_get")
        return tuple(o for o in found if o.magic == self.config.magic_number)

    # The names of the original design, for scripts written against them.
    def get_account_info(self) -> Any:
        return self.account()

    def get_symbol_info(self, symbol: str) -> Any:
        return self.symbol_info(symbol)

    def get_positions(self, symbol: str | None = None) -> tuple[Any, ...]:
        return self.positions(symbol)

    def get_orders(self, symbol: str | None = None) -> tuple[Any, ...]:
        return self.orders(symbol)

    def reconnect(self) -> ConnectionState:
        return self.ensure_connected()

    def deals_since(self, since: datetime) -> tuple[Any, ...]:
        """Deals since `since` (UTC) of this trader: those of its orders (its magic number),
        and every deal of a position one of them opened (a close by hand carries magic 0: a
        deal's magic is its order's, not its position's). The range ends past the market's
        now (the simulator's clock on a simulator), which `_call` sends in server time."""
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        until = max(now, _utc(since)) + _FAR_FUTURE
        found = self._call("history_deals_get", _utc(since), until)
        magic = self.config.magic_number
        ours = {int(d.position_id) for d in found if d.magic == magic}
        return tuple(d for d in found if d.magic == magic or int(d.position_id) in ours)

    def deals_for_position(self, position_ticket: int) -> tuple[Any, ...]:
        """Every deal of one position (entry, exits by us or by SL/TP), oldest first."""
        return tuple(self._call("history_deals_get", position=int(position_ticket)))

    def deals_for_order(self, order_ticket: int) -> tuple[Any, ...]:
        """The deals one order made (ticket= names the order, as the official docs say);
        empty while the history has not caught up with it."""
        return tuple(self._call("history_deals_get", ticket=int(order_ticket)))

    # ------------------------------------------------------------ trading

    def filling_mode(self, symbol: str) -> int:
        """The ORDER_FILLING_* value for market orders, decoded from the symbol's flags."""
        return self.market_watch.filling_mode(symbol)

    def confirm_filling(self, request: Mapping[str, Any]) -> int:
        """Check the request with order_check, falling back to other filling modes on 10030;
        the first accepted mode is cached for the symbol (and used for closes too)."""
        return self.market_watch.confirm_filling(request)

    def forget_filling(self, symbol: str) -> None:
        self.market_watch.forget_filling(symbol)

    def calc_profit(
        self, order_type: int, symbol: str, volume: float, price_open: float, price_close: float
    ) -> float:
        """The profit (negative: a loss) of `volume` lots from one price to another, in the
        account's currency, as the terminal computes it (order_calc_profit)."""
        return float(
            self._call("order_calc_profit", order_type, symbol, volume, price_open, price_close)
        )

    def check_order(self, **request: Unpack[TradeRequestFields]) -> Any:
        """order_check; retcode 0 passes, anything else raises OrderRejected."""
        result = self._call("order_check", trade_request(request))
        if result.retcode != 0:
            raise OrderRejected(
                f"order_check refused {request.get('symbol')}: "
                f"{retcode_text(result.retcode, result.comment)}",
                code=result.retcode,
                text=result.comment,
                result=result,
            )
        return result

    def send_order(self, **request: Unpack[TradeRequestFields]) -> Any:
        """order_send. Returns the result when done; raises by what the caller must do."""
        with self._lock:
            try:
                result = self._call("order_send", trade_request(request))
            except (RetryableOrderError, OrderRejected, OutcomeUnknown):
                raise
            except BrokerError as exc:
                if exc.code is None:  # the link broke during the call: it may have gone out
                    raise OutcomeUnknown(f"order_send: {exc}; the order may exist") from exc
                error = error_for_last_error(exc.code, sending=True)
                suffix = "; the order may exist" if error is OutcomeUnknown else ""
                raise error(
                    f"order_send failed: {exc.code} {exc.text}{suffix}",
                    code=exc.code,
                    text=exc.text,
                ) from exc
            return self._result_of_send(request, result)

    def _result_of_send(self, request: Mapping[str, Any], result: Any) -> Any:
        code = int(result.retcode)
        error = error_for_retcode(code)
        if error is None:
            return result
        message = f"order_send {request.get('symbol')}: {retcode_text(code, result.comment)}"
        raise error(message, code=code, text=result.comment, result=result)

    # ------------------------------------------------------------ simulator clock

    def sim_call(self, name: str, *args: Any) -> Any:
        """Call a simulator extra (sim_step_bar, sim_time, ...) in-process or over RPyC."""
        if not name.startswith("sim_"):
            raise ValueError(f"not a simulator extra: {name}")
        with self._lock:
            return call_sim_extra(self._api, self.backend, name, *args)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime passed to the connector; use UTC-aware datetimes")
    return moment.astimezone(UTC)
