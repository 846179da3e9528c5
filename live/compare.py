"""Live versus backtest: the trades the trader recorded beside the trades the backtest makes on
the same bars and parameters, matched one to one, with slippage per fill, missed and extra
trades and the P/L difference; printed as a table and written as a self-contained HTML page.

    python -m live.compare [--db data/audit.db] (--data FILE.csv | --sim) [--symbol EURUSD]
        [--from 2024-01-01] [--to 2024-02-01] [--html compare.html] [--config .env]

--db defaults to AUDIT_DB of the settings (.env), as the trader reads them; the database is
only read. --sim regenerates the bars of a run on the built-in simulator (from the simulator
settings in the trader's start-up record, else the SIM_* settings). The strategy and its
parameters are read from the trader's startup event unless --strategy and --param say
otherwise. The backtest acts on the bars the trader decided on (its first to its last signal),
and leaves a position still open at the end open, as the trader does. MT5 bars are bid prices,
so backtest buys fill at the bar price plus its spread. Matched backtest trades are scaled to
their live partner's volume, missed ones to the volume the trader would have used.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.broker_clock import parse_zone
from backtest.data import (
    DataError,
    infer_timeframe,
    load_csv,
    rates_to_frame,
    timeframe_seconds,
)
from backtest.engine import BacktestConfig, run_backtest
from backtest.strategy import Strategy, StrategyError
from backtest.symbols import SymbolSpec, get_symbol_spec
from backtest.trading_windows import TradingRules
from live.audit_reader import AuditReader
from live.backtesting_bridge import get_strategy_from_file
from live.config import LiveConfig
from live.errors import ConfigError

EXIT_USAGE = 2


@dataclass
class Comparison:
    """Matched pairs (live row, backtest row), and the unmatched on each side."""

    symbol: str
    strategy: str
    matched: list[dict[str, object]] = field(default_factory=list)
    missed: list[dict[str, object]] = field(default_factory=list)  # backtest only
    extra: list[dict[str, object]] = field(default_factory=list)  # live only
    live_pnl: float = 0.0
    backtest_pnl: float = 0.0  # matched trades at their live volume, missed at missed_volume
    missed_volume: float | None = None  # what missed trades were scaled to (None: unscaled)
    volume_note: str = "the backtest's own volume"  # where missed_volume came from
    bars_note: str = ""  # where the bars came from

    @property
    def pnl_difference(self) -> float:
        return round(self.live_pnl - self.backtest_pnl, 2)


def compare(
    live: pd.DataFrame,
    backtest: pd.DataFrame,
    *,
    spec: SymbolSpec,
    bar_seconds: int,
    symbol: str,
    strategy: str,
    volume: float | None = None,
    volume_note: str = "",
) -> Comparison:
    """Match trades one to one: same direction, entries at most one bar apart, in time order.

    Slippage is in points, positive when the live fill was worse than the backtest's. Missed
    trades (backtest only) count at `volume`, the volume the trader would have used (None:
    at the backtest's volume), so their P/L compares with live P/L at the same size.
    """
    result = Comparison(
        symbol=symbol,
        strategy=strategy,
        missed_volume=volume,
        volume_note=volume_note or Comparison.volume_note,
    )
    pending = backtest.to_dict("records")
    tolerance = pd.Timedelta(seconds=bar_seconds)
    for trade in live.to_dict("records"):
        partner = next(
            (
                b
                for b in pending
                if b["direction"] == trade["direction"]
                and abs(b["entry_time"] - trade["entry_time"]) <= tolerance
            ),
            None,
        )
        if partner is None:
            result.extra.append(trade)
            continue
        pending.remove(partner)
        result.matched.append(_pair(trade, partner, spec))
    result.missed = [_missed(trade, volume) for trade in pending]
    result.live_pnl = round(float(live["pnl"].sum()) if len(live) else 0.0, 2)
    result.backtest_pnl = round(
        sum(p["backtest_pnl"] for p in result.matched)
        + sum(float(m["pnl"]) for m in result.missed),
        2,
    )
    return result


def _missed(trade: dict, volume: float | None) -> dict[str, object]:
    """A backtest-only trade at the trader's volume; its own volume and P/L kept beside."""
    own = float(trade["volume"])
    scale = volume / own if volume and own else 1.0
    return {
        **trade,
        "volume": volume if volume and own else own,
        "pnl": round(float(trade["pnl"]) * scale, 2),
        "backtest_volume": own,
        "backtest_pnl": round(float(trade["pnl"]), 2),
    }


def _pair(trade: dict, partner: dict, spec: SymbolSpec) -> dict[str, object]:
    sign = 1 if trade["direction"] == "long" else -1
    scale = float(trade["volume"]) / float(partner["volume"]) if partner["volume"] else 0.0
    return {
        "direction": trade["direction"],
        "volume": trade["volume"],
        "live_entry_time": trade["entry_time"],
        "backtest_entry_time": partner["entry_time"],
        "live_entry": trade["entry_price"],
        "backtest_entry": partner["entry_price"],
        "entry_slippage_points": _points(
            sign * (trade["entry_price"] - partner["entry_price"]), spec
        ),
        "live_exit_time": trade["exit_time"],
        "backtest_exit_time": partner["exit_time"],
        "live_exit": trade["exit_price"],
        "backtest_exit": partner["exit_price"],
        "exit_slippage_points": _points(
            -sign * (trade["exit_price"] - partner["exit_price"]), spec
        ),
        "live_pnl": round(float(trade["pnl"]), 2),
        "backtest_pnl": round(float(partner["pnl"]) * scale, 2),
    }


def _points(price_difference: float, spec: SymbolSpec) -> float:
    return round(price_difference / spec.point, 1) + 0.0  # + 0.0: no "-0.0" in the table


# ---------------------------------------------------------------- inputs


def live_trades(
    reader: AuditReader, symbol: str, since: pd.Timestamp | None, until: pd.Timestamp | None
) -> pd.DataFrame:
    rows = [r for r in reader.trades() if r["symbol"] == symbol]
    frame = pd.DataFrame(
        rows,
        columns=[
            "entry_time",
            "exit_time",
            "entry_price",
            "exit_price",
            "direction",
            "volume",
            "pnl",
            "exit_reason",
        ],
    )
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    ordered = frame.sort_values("entry_time", ignore_index=True, kind="stable")  # exits in order
    return _window(ordered, since, until)


def _window(
    frame: pd.DataFrame, since: pd.Timestamp | None, until: pd.Timestamp | None
) -> pd.DataFrame:
    if since is not None:
        frame = frame[frame["entry_time"] >= since]
    if until is not None:
        frame = frame[frame["entry_time"] <= until]
    return frame.reset_index(drop=True)


def utc_time(text: str) -> pd.Timestamp:
    """A --from/--to value: a date or date and time, UTC unless it names its offset."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise argparse.ArgumentTypeError(
            f"not a date or time: {text!r} (e.g. 2024-01-31 or 2024-01-31T12:00)"
        )
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def trader_volume(reader: AuditReader, symbol: str, live: pd.DataFrame) -> tuple[float | None, str]:
    """The volume the trader would have given a trade it missed: its fixed size when all its
    entry orders had one, else the median of its trades (or orders), with what it was."""
    volumes = reader.entry_volumes(symbol)
    if len(volumes) == 1:
        return volumes[0], f"the trader's fixed volume, {volumes[0]:g} lots (from its orders)"
    if len(live):
        median = float(live["volume"].median())
        return median, f"the median live volume, {median:g} lots"
    if volumes:
        median = float(pd.Series(volumes).median())
        return median, f"the median volume of the trader's orders, {median:g} lots"
    return None, "the backtest's own volume (the trader recorded no volume to scale to)"


def startup_record(reader: AuditReader) -> dict[str, object]:
    startup = reader.last_event("startup")
    return json.loads(startup["data"] or "{}") if startup else {}


def strategy_from_db(reader: AuditReader, path: str | None, params: list[str]) -> Strategy:
    """The strategy the trader ran (its startup event), or the one named on the command line."""
    recorded = startup_record(reader)
    source = path or recorded.get("strategy_source")
    if not source:
        raise StrategyError("the audit log does not say which strategy ran: pass --strategy")
    if path is None and not params:
        return get_strategy_from_file(source, recorded.get("strategy_params") or {})
    return get_strategy_from_file(source, params)


def simulator_bars(
    reader: AuditReader, symbol: str, config: LiveConfig, seed: int | None = None
) -> tuple[pd.DataFrame, str]:
    """The bars the built-in simulator served the trader, made again the way it made them
    (same symbols, timeframe, seed, bar count and replayed CSV), and where the settings came
    from: the trader's start-up record when it has them, else the SIM_* settings."""
    from live.sim_terminal import SimConfig, SimTerminal

    recorded = startup_record(reader)
    if recorded.get("backend") not in (None, "sim"):
        raise ValueError(
            f"the trader ran via {recorded['backend']}, not the built-in "
            "simulator: pass the bars it traded with --data"
        )
    settings, origin = _sim_settings(recorded, config)
    if seed is not None:
        settings["seed"], origin = seed, "--sim-seed and " + origin
    terminal = SimTerminal(SimConfig(speed=None, **settings))
    if not terminal.initialize():
        raise ValueError(f"the simulator did not start: {terminal.last_error()}")
    terminal.sim_set_time(4_102_444_800.0)  # 2100: every bar has closed
    rates = terminal.copy_rates_range(
        symbol,
        getattr(terminal, f"TIMEFRAME_{settings['timeframe']}"),
        datetime(1970, 1, 2, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
    )
    if rates is None or not len(rates):
        raise ValueError(f"the simulator has no {symbol} bars: {terminal.last_error()}")
    # the simulator stamps bars in its server's time, as a broker does; the record is UTC
    zone = parse_zone(str(settings.get("server_tz") or "UTC"), "SIM_SERVER_TZ")
    rates["time"] = zone.to_utc(rates["time"].astype(np.int64))
    what = (
        f"replay of {settings['data']}"
        if settings.get("data")
        else f"generated bars, seed {settings['seed']}"
    )
    return rates_to_frame(rates), f"the built-in simulator's {what} ({origin})"


def _trader_rules(config: LiveConfig, *, sim: bool) -> TradingRules:
    """The trader's window settings on its broker's clock: BROKER_TZ when named, else the
    simulator's zone for a simulator run (`auto` reads it), else UTC."""
    from live.market_hours import load_calendar_setting, rules_from_config

    if config.broker_tz.lower() != "auto":
        zone = parse_zone(config.broker_tz)
    else:
        zone = parse_zone(config.sim_server_tz if sim else "UTC")
    return rules_from_config(config, zone, load_calendar_setting(config))


def _sim_settings(recorded: dict, config: LiveConfig) -> tuple[dict[str, object], str]:
    sim = recorded.get("sim")
    if isinstance(sim, dict):
        keys = ("symbols", "timeframe", "seed", "n_bars", "data", "data_symbol", "data_tz")
        keys += ("server_tz", "sessions")
        settings = {k: sim[k] for k in keys if sim.get(k) is not None}
        settings["symbols"] = tuple(
            settings.get("symbols") or recorded.get("symbols") or config.symbols
        )
        settings.setdefault("timeframe", recorded.get("timeframe") or config.timeframe)
        return settings, "settings recorded by the trader at start-up"
    settings = {
        "symbols": tuple(recorded.get("symbols") or config.symbols),
        "timeframe": recorded.get("timeframe") or config.timeframe,
        "seed": config.sim_seed,
        "data": config.sim_data or None,
        "server_tz": config.sim_server_tz,
        "sessions": config.sessions,
    }
    return settings, (
        "SIM_SEED and SIM_DATA of the settings: the start-up record has no "
        "simulator settings, so they must be the ones the trader ran with"
    )


def decision_span(reader: AuditReader, bars: pd.DataFrame, symbol: str) -> tuple[int, int]:
    """Indexes of the first and last bars the trader decided on for `symbol` (all if none)."""
    span = reader.signal_span(symbol)
    if span is None:
        return 0, len(bars) - 1
    times = bars["time"]
    return (
        int(times.searchsorted(pd.Timestamp(span[0]))),
        int(times.searchsorted(pd.Timestamp(span[1]))),
    )


# ---------------------------------------------------------------- output


COLUMNS = [
    "direction",
    "volume",
    "live_entry_time",
    "live_entry",
    "backtest_entry",
    "entry_slippage_points",
    "live_exit_time",
    "live_exit",
    "backtest_exit",
    "exit_slippage_points",
    "live_pnl",
    "backtest_pnl",
]


MISSED_COLUMNS = [
    "direction",
    "volume",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "backtest_volume",
    "backtest_pnl",
]
EXTRA_COLUMNS = [
    "direction",
    "volume",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
]


def summary_lines(result: Comparison) -> list[str]:
    slips = [p["entry_slippage_points"] for p in result.matched] + [
        p["exit_slippage_points"] for p in result.matched
    ]
    mean = sum(slips) / len(slips) if slips else 0.0
    lines = [f"{result.symbol} {result.strategy}"]
    if result.bars_note:
        lines.append(f"bars: {result.bars_note}")
    return [
        *lines,
        f"matched {len(result.matched)}, missed (backtest only) {len(result.missed)}, "
        f"extra (live only) {len(result.extra)}",
        f"mean slippage per fill {mean:+.1f} points (positive = worse than the backtest)",
        f"P/L live {result.live_pnl:,.2f}, backtest {result.backtest_pnl:,.2f} (matched "
        f"trades at their live volume, missed ones at {result.volume_note}), difference "
        f"{result.pnl_difference:+,.2f}",
    ]


def table_text(result: Comparison) -> str:
    parts = [_text(result.matched, COLUMNS, "(no matched trades)")]
    if result.missed:
        parts += ["missed (backtest only):", _text(result.missed, MISSED_COLUMNS, "")]
    if result.extra:
        parts += ["extra (live only):", _text(result.extra, EXTRA_COLUMNS, "")]
    return "\n".join(parts)


def _text(rows: list[dict], columns: list[str], empty: str) -> str:
    frame = pd.DataFrame(rows, columns=columns)
    return frame.to_string(index=False) if len(frame) else empty


def html_report(result: Comparison) -> str:
    """A self-contained page (inline CSS, no scripts); every value is escaped."""

    def table(rows: list[dict], columns: list[str]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns)
            + "</tr>"
            for r in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>" if rows else "<p>none</p>"

    summary = "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(result))
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>Live vs backtest "
        f"{html.escape(result.symbol)}</title><style>body{{font:14px system-ui,sans-serif;"
        f"margin:16px}}table{{border-collapse:collapse}}td,th{{padding:3px 8px;"
        f"border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}}</style>"
        f"<h1>Live vs backtest</h1>{summary}<h2>Matched</h2>"
        f"{table(result.matched, COLUMNS)}<h2>Missed (backtest only)</h2>"
        f"{table(result.missed, MISSED_COLUMNS)}<h2>Extra (live only)</h2>"
        f"{table(result.extra, EXTRA_COLUMNS)}</html>"
    )


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m live.compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--db", help="audit database (default: AUDIT_DB of the settings)")
    parser.add_argument("--config", help="settings file (default .env, as the trader)")
    bars = parser.add_mutually_exclusive_group()
    bars.add_argument("--data", help="bars CSV the trader traded")
    bars.add_argument(
        "--sim",
        action="store_true",
        help="the run was on the built-in simulator: make its bars again",
    )
    parser.add_argument(
        "--sim-seed",
        type=int,
        help="with --sim: the simulator's seed, when "
        "neither the start-up record nor SIM_SEED has it",
    )
    parser.add_argument("--symbol", help="symbol (default: the only one traded)")
    parser.add_argument(
        "--from",
        dest="since",
        type=utc_time,
        metavar="TIME",
        help="first entry time (UTC), e.g. 2024-01-31",
    )
    parser.add_argument(
        "--to", dest="until", type=utc_time, metavar="TIME", help="last entry time (UTC)"
    )
    parser.add_argument("--strategy", help="strategy file (default: the one the trader ran)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--spread", type=float, help="backtest spread in points (default: the CSV's)"
    )
    parser.add_argument("--html", help="write the HTML report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.data and not args.sim:
        parser.error(
            "give the bars the trader traded: --data FILE.csv, or --sim for a run "
            "on the built-in simulator"
        )
    try:
        result = run(args)
    except (ConfigError, DataError, StrategyError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(summary_lines(result)))
    print(table_text(result))
    if args.html:
        Path(args.html).write_text(html_report(result), encoding="utf-8")
        print(f"report written to {args.html}")
    return 0


def run(args: argparse.Namespace) -> Comparison:
    config = LiveConfig.load(args.config)  # read for AUDIT_DB and SIM_*, as the trader would
    reader = AuditReader(args.db or config.audit_db)
    symbol = traded_symbol(reader, args.symbol)
    strategy = strategy_from_db(reader, args.strategy, args.param)
    if args.sim:
        bars, bars_note = simulator_bars(reader, symbol, config, args.sim_seed)
    else:
        bars, bars_note = load_csv(args.data), str(args.data)
    first, last = decision_span(reader, bars, symbol)
    bars = bars.iloc[: last + 2].reset_index(drop=True)  # + the bar whose open fills the last
    spec = get_symbol_spec(symbol)
    # MT5 bars are bid prices: buys fill at bid + spread, as on the terminal
    backtest = run_backtest(
        bars,
        strategy,
        spec=spec,
        config=BacktestConfig(
            close_at_end=False,
            spread_points=args.spread,
            spread_mode="bid",
            rules=_trader_rules(config, sim=args.sim),
        ),
        trade_from=first,
    ).trades
    seconds = timeframe_seconds(infer_timeframe(bars))
    live = live_trades(reader, symbol, args.since, args.until)
    volume, volume_note = trader_volume(reader, symbol, live)
    result = compare(
        live,
        _window(backtest, args.since, args.until),
        spec=spec,
        bar_seconds=seconds,
        symbol=symbol,
        strategy=strategy.label(),
        volume=volume,
        volume_note=volume_note,
    )
    result.bars_note = bars_note
    return result


def traded_symbol(reader: AuditReader, chosen: str | None) -> str:
    symbols = reader.traded_symbols()
    symbol = chosen or (symbols[0] if len(symbols) == 1 else None)
    if symbol is None:
        raise ValueError(
            f"the audit log has trades in {', '.join(symbols) or 'no symbol'}; "
            "choose one with --symbol"
        )
    return symbol


if __name__ == "__main__":
    sys.exit(main())
