"""The backtest CLI's options for the broker's clock, sessions, trade hours and news windows:
the same rules as the live trader's settings (see `backtest.trading_windows`)."""

from __future__ import annotations

import argparse

from backtest.broker_clock import BrokerZoneError, parse_zone
from backtest.sessions import SessionError, parse_hours, parse_sessions
from backtest.trading_windows import TradingRules

IMPACTS = ("low", "medium", "high", "holiday")


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
    group.add_argument("--no-entry-after-open", type=float, default=0.0, metavar="MIN")
    group.add_argument("--no-entry-before-close", type=float, default=0.0, metavar="MIN")
    group.add_argument(
        "--flat-before-weekend",
        type=float,
        default=None,
        metavar="MIN",
        help="be flat this many minutes before the weekly close",
    )
    group.add_argument("--calendar", metavar="CSV", help="economic calendar for news blackouts")
    group.add_argument(
        "--calendar-tz", default="UTC", help="zone of a ForexFactory export's times (default UTC)"
    )
    group.add_argument("--news-before", type=float, default=0.0, metavar="MIN")
    group.add_argument("--news-after", type=float, default=0.0, metavar="MIN")
    group.add_argument(
        "--news-impact",
        default="high",
        help="impacts that black out, comma-separated (default high)",
    )
    group.add_argument(
        "--news-flatten", action="store_true", help="also close positions in a blackout"
    )


def rules_from_args(args: argparse.Namespace) -> TradingRules:
    """The rules the command line asks for; ValueError (exit 2) naming the option."""
    try:
        zone = parse_zone(args.broker_tz or args.tz or "UTC", "--broker-tz")
        sessions = parse_sessions(args.sessions, zone, "--sessions")
        hours = parse_hours(args.trade_hours, "--trade-hours")
    except (BrokerZoneError, SessionError) as exc:
        raise ValueError(str(exc)) from None
    for option in ("no_entry_after_open", "no_entry_before_close", "news_before", "news_after"):
        if getattr(args, option) < 0:
            raise ValueError(f"--{option.replace('_', '-')} must be >= 0 minutes")
    if args.flat_before_weekend is not None and args.flat_before_weekend < 0:
        raise ValueError("--flat-before-weekend must be >= 0 minutes")
    return TradingRules(
        zone=zone,
        sessions=sessions,
        trade_hours=hours,
        no_entry_after_open_min=args.no_entry_after_open,
        no_entry_before_close_min=args.no_entry_before_close,
        flat_before_weekend_min=args.flat_before_weekend,
        calendar=_calendar(args),
        news_before_min=args.news_before,
        news_after_min=args.news_after,
        news_impacts=parse_impacts(args.news_impact, "--news-impact"),
        news_flatten=args.news_flatten,
    )


def parse_impacts(text: str, key: str) -> tuple[str, ...]:
    impacts = tuple(part.strip().lower() for part in str(text).split(",") if part.strip())
    unknown = [impact for impact in impacts if impact not in IMPACTS]
    if unknown or not impacts:
        raise ValueError(
            f"{key}: {', '.join(unknown) or 'nothing'} is not one of {', '.join(IMPACTS)}"
        )
    return impacts


def _calendar(args: argparse.Namespace) -> object:
    if not args.calendar:
        return None
    from backtest.econ_calendar import CalendarError, load_calendar

    try:
        return load_calendar(args.calendar, tz=args.calendar_tz)
    except CalendarError as exc:
        raise ValueError(str(exc)) from None
