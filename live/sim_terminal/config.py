"""Settings of the simulated terminal: market data, account, terminal switches and fault knobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from backtest.data import TIMEFRAMES
from live.sim_terminal.trading_hours import MarketCalendar


@dataclass(frozen=True)
class FaultConfig:
    """Failures to inject, each with its own rate; the same seed gives the same failures.

    requote_rate       order_send answers 10004 (requote) with fresh bid/ask; nothing executed
    reject_rate        order_send answers 10006 (rejected); nothing executed
    timeout_rate       order_send returns None with (-10005, 'IPC timeout'); nothing executed
    reply_lost_rate    the deal IS executed, but the caller sees None with (-10005, 'IPC timeout')
    partial_fill_rate  IOC/RETURN market orders fill partial_fill_ratio of the volume (10010)
    latency_s          seconds every API call takes (through the injected sleep)
    drop_every_calls   after every N API calls the terminal disconnects...
    drop_for_calls     ...for the next M calls; afterwards initialize() must be called again
    drop_rate          with this probability per call the connection drops...
    drop_seconds       ...for this many seconds of (injected) wall time; then initialize()
    history_lag_rate   a fill answers deal=0 and its deal shows in the history only after
                       history_lag_calls more API calls (real servers' history lags)
    comment_truncate_rate  the server keeps only comment_keep characters of a comment
    comment_rewrite_rate   the server replaces a comment with its own reference
    stops_ignored_rate     a market order fills without its SL/TP (set them afterwards)
    """

    seed: int = 0
    requote_rate: float = 0.0
    reject_rate: float = 0.0
    timeout_rate: float = 0.0
    reply_lost_rate: float = 0.0
    partial_fill_rate: float = 0.0
    partial_fill_ratio: float = 0.5
    latency_s: float = 0.0
    drop_every_calls: int = 0
    drop_for_calls: int = 0
    drop_rate: float = 0.0
    drop_seconds: float = 0.0
    history_lag_rate: float = 0.0
    history_lag_calls: int = 3
    comment_truncate_rate: float = 0.0
    comment_keep: int = 12
    comment_rewrite_rate: float = 0.0
    stops_ignored_rate: float = 0.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {spec.name} must be in [0, 1], got {value!r}")
            if spec.name != "seed" and value < 0:
                raise ValueError(f"fault {spec.name} must be >= 0, got {value!r}")
        if self.drop_rate and not self.drop_seconds:
            raise ValueError("drop_rate needs drop_seconds > 0 (how long a drop lasts)")
        if not 0.0 < self.partial_fill_ratio < 1.0:
            raise ValueError(
                f"partial_fill_ratio must be in (0, 1), got {self.partial_fill_ratio!r}"
            )

    @classmethod
    def parse(cls, text: str) -> FaultConfig:
        """From `requote_rate=0.1,reply_lost_rate=0.05` (the server's --faults option)."""
        names = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, raw = part.partition("=")
            if key not in names:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(names)}")
            try:
                values[key] = int(raw) if names[key] == "int" else float(raw)
            except ValueError:
                raise ValueError(f"fault {key} needs a number, got {raw!r}") from None
        return cls(**values)


@dataclass(frozen=True)
class SimConfig:
    """What the simulated terminal replays and how.

    data: a bars CSV replayed for `data_symbol` (default the first symbol); the other symbols
    get seeded synthetic bars on the same calendar. speed: simulated seconds per wall second;
    None means the clock moves only when driven (sim_step_bar, sim_advance).

    Trade-server rules that are off by default (for parity with the backtest):
    stop_slippage_points     stop-losses and buy/sell stop orders fill this many points worse
                             than their level (take-profits and limits never slip)
    max_requests_per_second  order_send requests beyond this many within one second of
                             simulated time answer 10024 (too many requests); 0 = no limit

    The server's clock and market hours (trading_hours.py, server_clock.py):
    server_tz                the zone the server stamps API times in (a broker_clock zone:
                             UTC, UTC+2, Europe/Athens, NY+7); the clock, the sim_* controls
                             and everything inside stay UTC
    sessions                 a sessions table on the server's clock ('EURUSD=Mon 00:00-Fri
                             23:55 break 23:57-00:02; *=...'); empty: the forex week with its
                             daily break not enforced; 'forex': that break enforced
    holidays                 ISO dates on the server's clock, closed all day
    rollover_spread_factor   spreads this many times wider within rollover_minutes of a
                             closure (the daily break, the weekend); 1 = off
    """

    symbols: tuple[str, ...] = ("EURUSD",)
    timeframe: str = "H1"
    data: str | None = None
    data_symbol: str | None = None
    data_tz: str = "UTC"
    n_bars: int = 20_000
    history_bars: int = 500
    seed: int = 7
    start: float | None = None
    speed: float | None = None
    balance: float = 10_000.0
    leverage: int = 100
    netting: bool = False
    real_account: bool = False
    login: int = 10_000_001
    password: str | None = None
    server: str = "Sim-Demo"
    trade_allowed: bool = True
    tradeapi_disabled: bool = False
    stop_slippage_points: int = 0
    max_requests_per_second: int = 0
    server_tz: str = "UTC"
    sessions: str = ""
    holidays: tuple[str, ...] = ()
    rollover_spread_factor: float = 1.0
    rollover_minutes: int = 0
    faults: FaultConfig = field(default_factory=FaultConfig)
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.timeframe not in TIMEFRAMES:
            raise ValueError(
                f"timeframe must be one of {', '.join(TIMEFRAMES)}, got {self.timeframe!r}"
            )
        if not self.symbols:
            raise ValueError("symbols: give at least one symbol")
        self._check_symbols_known()
        if self.n_bars < 10 or self.history_bars < 1 or self.history_bars >= self.n_bars:
            raise ValueError(
                f"need 1 <= history_bars ({self.history_bars}) < n_bars "
                f"({self.n_bars}) and n_bars >= 10"
            )
        if self.speed is not None and not self.speed > 0:
            raise ValueError(f"speed must be > 0 or None (stepped), got {self.speed!r}")
        if self.balance <= 0 or self.leverage < 1:
            raise ValueError("balance must be > 0 and leverage >= 1")
        for name in ("stop_slippage_points", "max_requests_per_second"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0 (0 = off), got {value!r}")
        self.market_calendar()  # refuses a bad zone, table, holiday or rollover setting

    def market_calendar(self) -> MarketCalendar:
        """The server's zone, sessions, holidays and rollover spread, parsed."""
        return MarketCalendar.parse(
            server_tz=self.server_tz,
            sessions=self.sessions,
            holidays=self.holidays,
            rollover_spread_factor=self.rollover_spread_factor,
            rollover_minutes=self.rollover_minutes,
        )

    def _check_symbols_known(self) -> None:
        """A symbol the simulator has no spec for is only allowed as the replayed CSV's."""
        from live.sim_terminal.market import CATALOG  # market imports this module

        replayed = (self.data_symbol or self.symbols[0]) if self.data else None
        unknown = [s for s in self.symbols if s not in CATALOG and s != replayed]
        if unknown:
            raise ValueError(
                f"unknown symbol {', '.join(unknown)} for the simulator; it knows "
                f"{', '.join(CATALOG)} (replay your own bars for another symbol with a CSV)"
            )
