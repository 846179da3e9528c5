"""The backtest CLI's options for the broker's clock, sessions, trade hours and news windows:
the same rules as the live trader's settings (see `backtest.trading_windows`)."""

from __future__ import annotations

import argparse

from backtest.broker_clock import BrokerZoneError, parse_zone
from backtest.errors import UsageError
from backtest.sessions import SessionError
from backtest.trading_windows import TradingRules, rules_from_settings


def add_window_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "broker time and trading windows (as the live trader's settings of the same names)"
    )
    group.add_argument(
        "--broker-tz",
        metavar="ZONE",
        help="the broker's server time zone (Europe/Athens, UTC+2, NY+7...): D1/W1 bars are "
        "cut at its midnight, strategies get a broker_time column (default: --tz)",
    )
    group.add_argument(
        "--sessions",
        default="",
        metavar="TABLE",
        help="session table in broker time, e.g. 'EURUSD=Mon 00:00-Fri 23:55 break "
        "23:57-00:02' (default: forex, Sun 17:00-Fri 17:00 New York)",
    )
    group.add_argument(
        "--trade-hours",
        default="",
        metavar="HH:MM-HH:MM[,...]",
        help="enter only between these broker hours",
    )
    minutes = {
        "--no-entry-after-open": "no entries in a session's first MIN minutes",
        "--no-entry-before-close": "no entries in a session's last MIN minutes",
        "--news-before": "no entries from MIN minutes before a calendar event...",
        "--news-after": "...until MIN minutes after it",
    }
    for option, text in minutes.items():
        dest = option.removeprefix("--").replace("-", "_") + "_min"
        group.add_argument(option, dest=dest, type=float, default=0.0, metavar="MIN", help=text)
    group.add_argument(
        "--flat-before-weekend",
        dest="flat_before_weekend_min",
        type=float,
        default=None,
        metavar="MIN",
        help="be flat this many minutes before the weekly close",
    )
    group.add_argument(
        "--min-trade-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep a position at least this long: a strategy exit sooner waits for the first "
        "bar open that late (stops and flat windows do not)",
    )
    group.add_argument("--calendar", metavar="CSV", help="economic calendar for news blackouts")
    group.add_argument(
        "--calendar-tz", default="UTC", help="zone of a ForexFactory export's times (default UTC)"
    )
    group.add_argument(
        "--news-impact",
        default="high",
        help="impacts that black out, comma-separated (default high)",
    )
    group.add_argument(
        "--news-flatten",
        dest="news_flatten",
        action="store_true",
        help="also close positions in a blackout",
    )


def rules_from_args(args: argparse.Namespace) -> TradingRules:
    """The rules the command line asks for; ValueError (exit 2) naming the option."""
    for name in ("no_entry_after_open_min", "no_entry_before_close_min", "news_before_min",
                 "news_after_min"):  # fmt: skip
        if getattr(args, name) < 0:
            raise UsageError(f"{_option(name)} must be >= 0 minutes")
    if args.flat_before_weekend_min is not None and args.flat_before_weekend_min < 0:
        raise UsageError("--flat-before-weekend must be >= 0 minutes")
    if args.min_trade_seconds < 0:
        raise UsageError(f"--min-trade-seconds must be >= 0, got {args.min_trade_seconds:g}")
    try:
        zone = parse_zone(args.broker_tz or args.tz or "UTC", "--broker-tz")
        keys = {name: _option(name) for name in ("sessions", "trade_hours", "news_impact")}
        return rules_from_settings(args, zone, _calendar(args), keys)
    except (BrokerZoneError, SessionError) as exc:
        raise UsageError(str(exc)) from None


def _option(name: str) -> str:
    return "--" + name.removesuffix("_min").replace("_", "-")


def _calendar(args: argparse.Namespace) -> object:
    if not args.calendar:
        return None
    from backtest.econ_calendar import CalendarError, load_calendar

    try:
        return load_calendar(args.calendar, tz=args.calendar_tz)
    except CalendarError as exc:
        raise UsageError(str(exc)) from None
