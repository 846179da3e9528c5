"""What the backtest commands share: the bars, the strategy and the engine's configuration
read from the parsed command line (`backtest.cli_options` declares the options), with the
broker's clock, sessions, trade hours and news windows as the live trader's settings of the
same names (`backtest.trading_windows`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from backtest.bar_cache import BarCache
from backtest.broker_clock import BrokerZone, BrokerZoneError, parse_zone
from backtest.engine import BacktestConfig
from backtest.errors import UsageError
from backtest.sessions import SessionError
from backtest.sizing import Sizing
from backtest.strategy import Strategy, get_strategy_from_file, parse_param_overrides
from backtest.symbols import DEFAULT_SYMBOLS, SymbolSpec, get_symbol_spec
from backtest.trading_windows import TradingRules, rules_from_settings, with_broker_time


def load_bars_from_args(args: argparse.Namespace) -> tuple[pd.DataFrame, SymbolSpec]:
    """Read or generate the bars the command line asks for, with the symbol's spec."""
    from backtest.data import DataError, load_csv, resample_bars

    symbol = args.symbol or symbol_from_path(args.data) or "EURUSD"
    spec = get_symbol_spec(symbol)
    try:
        if args.data is not None:
            bars = load_csv(args.data, tz=args.tz, cache=bar_cache_of(args))
            if len(bars) < 2:
                raise UsageError(f"{args.data}: {len(bars)} bar; a backtest needs at least 2")
            if args.timeframe:
                bars = resample_bars(bars, args.timeframe, broker_zone(args))
        else:
            from backtest.synthetic import generate_bars

            if args.synthetic < 2:
                raise UsageError(f"--synthetic needs at least 2 bars, got {args.synthetic}")
            bars = generate_bars(
                symbol, args.timeframe or "H1", args.synthetic, seed=args.seed, spec=spec
            )
    except DataError as exc:
        raise UsageError(str(exc)) from None
    bars = with_broker_time(slice_dates(bars, args.date_from, args.date_to), broker_zone(args))
    return bars, spec


def broker_zone(args: argparse.Namespace) -> BrokerZone:
    """The zone bars are cut on: --broker-tz, else the file's --tz (an MT5 export is
    stamped in its server's time)."""
    try:
        return parse_zone(getattr(args, "broker_tz", None) or args.tz or "UTC", "--broker-tz")
    except BrokerZoneError as exc:
        raise UsageError(str(exc)) from None


def load_strategy_from_args(args: argparse.Namespace) -> tuple[type[Strategy], dict[str, object]]:
    strategy_cls = get_strategy_from_file(args.strategy)
    return strategy_cls, parse_param_overrides(strategy_cls, args.param)


def config_from_args(args: argparse.Namespace) -> BacktestConfig:
    if args.risk is not None:
        sizing = Sizing.risk(args.risk)
    else:
        sizing = Sizing.fixed(args.lots if args.lots is not None else 0.1)
    return BacktestConfig(
        cash=args.cash,
        commission_per_lot=args.commission,
        spread_points=args.spread,
        spread_mode=args.spread_mode,
        sizing=sizing,
        rules=rules_from_args(args),
    )


def folder_of(args: argparse.Namespace) -> Path | None:
    """Where the other symbols a strategy reads are looked for: beside --data (None: they
    are generated, as --synthetic bars are)."""
    return Path(args.data).parent if args.data is not None else None


def data_name(args: argparse.Namespace, spec: SymbolSpec) -> str:
    """'EURUSD (data/EURUSD_H1.csv)': the symbol and where its bars came from, for messages."""
    return f"{spec.name} ({args.data if args.data is not None else 'generated bars'})"


def symbol_from_path(path: Path | None) -> str | None:
    if path is None:
        return None
    stem = path.stem.upper()
    return next((name for name in DEFAULT_SYMBOLS if name in stem), None)


def slice_dates(bars: pd.DataFrame, date_from: str | None, date_to: str | None) -> pd.DataFrame:
    sliced = bars  # no dates: no copy of a million bars for nothing
    if date_from or date_to:
        mask = pd.Series(True, index=bars.index)
        for text, keep in (
            (date_from, lambda t: bars["time"] >= t),
            (date_to, lambda t: bars["time"] <= t),
        ):
            if text:
                mask &= keep(parse_utc(text))
        sliced = bars.loc[mask].reset_index(drop=True)
    if len(sliced) < 2:
        between = " and ".join(f"{option} {value}" for option, value in
                               (("--from", date_from), ("--to", date_to)) if value)  # fmt: skip
        raise UsageError(f"{len(sliced)} bar(s) {'within ' + between if between else 'in all'}; "
                         "a backtest needs at least 2")  # fmt: skip
    return sliced


def parse_utc(text: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise UsageError(
            f"cannot read date {text!r}; use e.g. 2024-01-31 or 2024-01-31T12:00"
        ) from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


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


def bar_cache_of(args: argparse.Namespace) -> BarCache | None:
    """The cache of parsed CSVs, unless --no-cache (backtest.bar_cache)."""
    return None if getattr(args, "no_cache", False) else BarCache.from_environment()


def other_bars_from_args(strategy_cls: type[Strategy], args: argparse.Namespace) -> dict:
    """The bars of the other symbols the strategy reads (`informative`), by symbol; none
    (and the modules that load them not imported) for a strategy that reads none."""
    from backtest.informative import declared_symbols

    if not declared_symbols(strategy_cls):
        return {}
    from backtest.cli_portfolio import other_bars_of

    return other_bars_of(strategy_cls, args, broker_zone(args), folder=folder_of(args))
