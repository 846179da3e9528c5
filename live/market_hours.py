"""Market hours for the trader: sessions, trade hours and news windows on the broker's clock.

Builds the backtest's `TradingRules` from the settings (SESSIONS, TRADE_HOURS,
NO_ENTRY_*, FLAT_BEFORE_WEEKEND, CALENDAR_FILE, NEWS_*) and the broker's zone as the
connector knows it, and applies them to each decision exactly as the backtest does
(`backtest.trading_windows`). Also answers whether a symbol's session is open now and
when its next news blackout is, for the loop, `--check` and the status heartbeat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd

from backtest.broker_clock import BrokerZone
from backtest.sessions import SessionError
from backtest.signals import Signals
from backtest.trading_windows import (
    SymbolWindows,
    TradingRules,
    bar_seconds,
    restrict_to_windows,
    rules_from_settings,
    with_broker_time,
)
from live.config import LiveConfig
from live.errors import ConfigError

logger = logging.getLogger(__name__)


def load_calendar_setting(config: LiveConfig) -> pd.DataFrame | None:
    """The CALENDAR_FILE's events; ConfigError (exit 2) naming the key and the row."""
    if config.calendar_file is None:
        return None
    from backtest.econ_calendar import CalendarError, load_calendar

    try:
        return load_calendar(config.calendar_file, tz=config.calendar_tz)
    except CalendarError as exc:
        raise ConfigError(f"CALENDAR_FILE: {exc}") from None


def rules_from_config(
    config: LiveConfig, zone: BrokerZone, calendar: pd.DataFrame | None
) -> TradingRules:
    """The window rules the settings ask for, on the broker's clock `zone`."""
    keys = {"sessions": "SESSIONS", "trade_hours": "TRADE_HOURS", "news_impact": "NEWS_IMPACT"}
    try:
        return rules_from_settings(config, zone, calendar, keys)
    except (SessionError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


class MarketHours:
    """The trader's windows: `zone` is asked each time (an `auto` zone may be re-resolved),
    `currencies` gives a symbol's base and profit currencies, `now` the market time."""

    def __init__(
        self,
        config: LiveConfig,
        zone: Callable[[], BrokerZone],
        currencies: Callable[[str], tuple[str, ...]],
        now: Callable[[], datetime],
        calendar: pd.DataFrame | None = None,
    ) -> None:
        self._config = config
        self._zone = zone
        self._now = now
        self._known_currencies: dict[str, tuple[str, ...]] = {}
        self._ask_currencies = currencies
        self._calendar = calendar if calendar is not None else load_calendar_setting(config)
        self._rules = rules_from_config(config, zone(), self._calendar)
        self._windows: dict[str, SymbolWindows] = {}
        self._closed: set[str] = set()  # symbols the table says are closed now
        self._mismatch_told: set[tuple[str, str]] = set()  # (symbol, day) said once

    @property
    def rules(self) -> TradingRules:
        """The rules on the broker's clock as it is now known."""
        zone = self._zone()
        if zone != self._rules.zone:
            logger.info("market hours now on %s", zone.name)
            self._rules = rules_from_config(self._config, zone, self._calendar)
            self._windows.clear()
        return self._rules

    @property
    def zone(self) -> BrokerZone:
        return self.rules.zone

    def prepare(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Bars as the strategy sees them: with their `broker_time` column."""
        return with_broker_time(bars, self.zone)

    def restrict(self, symbol: str, signals: Signals, bars: pd.DataFrame) -> Signals:
        """The decision's signals with the windows applied, as the backtest applies them."""
        rules = self.rules
        if not rules.active:
            return signals
        restricted, windows = restrict_to_windows(
            rules,
            signals,
            bars,
            symbol,
            self._currencies(symbol),
            self._windows.get(symbol),
            next_open=self._forming_bar_open(bars),
            held_at_start=True,  # the bars begin in the middle of the backtest's run
        )
        if windows is not None:
            self._windows[symbol] = windows
        return restricted

    def _forming_bar_open(self, bars: pd.DataFrame) -> float:
        """The open of the bar forming now, on the broker's grid: the moment the decision on
        the last closed bar acts (after a weekend, the week's first bar)."""
        width = bar_seconds(bars)
        _, opens = self.zone.bin_opens(np.array([self._now().timestamp()]), width)
        return float(opens[0])

    def is_open(self, symbol: str, now: datetime) -> bool:
        """Whether the symbol's session is open at `now` (by the table; the broker confirms
        with 10018). The default forex table's daily break is not a closure here: most
        brokers quote FX through the rollover (it still bounds NO_ENTRY_* windows); a
        written SESSIONS table is taken as written."""
        session = self.rules.sessions.for_symbol(symbol)
        if not self._config.sessions.strip():
            session = replace(session, breaks=())
        return bool(session.is_open(now.timestamp())[0])

    def _currencies(self, symbol: str) -> tuple[str, ...]:
        """The symbol's currencies, asked of the broker once (it may be away later)."""
        known = self._known_currencies.get(symbol)
        if known is None:
            known = self._known_currencies[symbol] = tuple(self._ask_currencies(symbol))
        return known

    @property
    def closed_symbols(self) -> list[str]:
        return sorted(self._closed)

    def gate(self, symbol: str, now: datetime, stamp: str = "") -> bool:
        """Whether orders may go out for the symbol now (its session is open); a closure
        is logged once."""
        open_now = self.is_open(symbol, now)
        if open_now:
            self._closed.discard(symbol)
        elif symbol not in self._closed:
            self._closed.add(symbol)
            logger.info("%s%s: market closed by the session table; waiting", stamp, symbol)
        return open_now

    def broker_said(self, symbol: str, now: datetime, outcome: str) -> str | None:
        """When the broker answers 10018 (market closed) while the table says open, what
        to tell (once per symbol and day): the table is likely wrong for this broker."""
        if "10018" not in outcome and "market closed" not in outcome.lower():
            return None
        key = (symbol, f"{now:%Y-%m-%d}")
        if key in self._mismatch_told:
            return None
        self._mismatch_told.add(key)
        return (
            f"{symbol}: the broker says the market is closed (10018) at {now:%Y-%m-%d %H:%M} "
            "UTC, while SESSIONS says it is open; check the session table for this broker"
        )

    def next_blackout(self, symbol: str, now: datetime) -> dict[str, str] | None:
        """The next news blackout of the symbol not over at `now`: its event and window
        (None without news rules or events to come)."""
        rules = self.rules
        if rules.calendar is None or not (rules.news_before_min or rules.news_after_min):
            return None
        from backtest.econ_calendar import next_event

        after = now.timestamp() - rules.news_after_min * 60
        event = next_event(
            rules.calendar, self._currencies(symbol), after=after, impacts=rules.news_impacts
        )
        if event is None:
            return None
        start = event.time - pd.Timedelta(minutes=rules.news_before_min)
        end = event.time + pd.Timedelta(minutes=rules.news_after_min)
        return {
            "symbol": symbol,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "event": f"{event.currency} {event.impact}: {event.title}",
        }

    def describe(self, now: datetime) -> dict[str, object]:
        """What --check and the heartbeat show: the zone, the rules, the next blackouts (a
        symbol whose currencies the broker cannot tell now is left out)."""
        blackouts = []
        for symbol in self._config.symbols:
            try:
                blackouts.append(self.next_blackout(symbol, now))
            except Exception as exc:  # the link is down: the heartbeat still goes out
                logger.debug("%s: next blackout unknown: %s", symbol, exc)
        return {
            **self.rules.describe(),
            "broker_offset": self.zone.describe(now.timestamp()),
            "next_blackouts": [b for b in blackouts if b is not None],
        }
