"""Live versus backtest: the trades the trader recorded beside the trades the backtest makes on
the same bars and parameters, matched one to one, with slippage per fill, missed and extra
trades and the P/L difference; printed as a table and written as a self-contained HTML page.

    python -m live.compare --db data/audit.db --data FILE.csv [--symbol EURUSD]
        [--from 2024-01-01] [--to 2024-02-01] [--html compare.html]

The strategy and its parameters are read from the trader's startup event unless --strategy
and --param say otherwise. The backtest acts on the bars the trader decided on (its first to
its last signal), and leaves a position still open at the end open, as the trader does. MT5
bars are bid prices, so backtest buys fill at the bar price plus its spread.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from backtest.data import DataError, infer_timeframe, load_csv, timeframe_seconds
from backtest.engine import BacktestConfig, run_backtest
from backtest.strategy import Strategy, StrategyError
from backtest.symbols import SymbolSpec, get_symbol_spec
from live.audit_logger import AuditReader
from live.backtesting_bridge import get_strategy_from_file

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
    backtest_pnl: float = 0.0  # scaled to the live volumes of matched trades

    @property
    def pnl_difference(self) -> float:
        return round(self.live_pnl - self.backtest_pnl, 2)


def compare(live: pd.DataFrame, backtest: pd.DataFrame, *, spec: SymbolSpec, bar_seconds: int,
            symbol: str, strategy: str) -> Comparison:
    """Match trades one to one: same direction, entries at most one bar apart, in time order.

    Slippage is in points, positive when the live fill was worse than the backtest's.
    """
    result = Comparison(symbol=symbol, strategy=strategy)
    pending = backtest.to_dict("records")
    tolerance = pd.Timedelta(seconds=bar_seconds)
    for trade in live.to_dict("records"):
        partner = next((b for b in pending if b["direction"] == trade["direction"]
                        and abs(b["entry_time"] - trade["entry_time"]) <= tolerance), None)
        if partner is None:
            result.extra.append(trade)
            continue
        pending.remove(partner)
        result.matched.append(_pair(trade, partner, spec))
    result.missed = pending
    result.live_pnl = round(float(live["pnl"].sum()) if len(live) else 0.0, 2)
    result.backtest_pnl = round(sum(p["backtest_pnl"] for p in result.matched)
                                + sum(float(b["pnl"]) for b in pending), 2)
    return result


def _pair(trade: dict, partner: dict, spec: SymbolSpec) -> dict[str, object]:
    sign = 1 if trade["direction"] == "long" else -1
    scale = float(trade["volume"]) / float(partner["volume"]) if partner["volume"] else 0.0
    return {
        "direction": trade["direction"], "volume": trade["volume"],
        "live_entry_time": trade["entry_time"], "backtest_entry_time": partner["entry_time"],
        "live_entry": trade["entry_price"], "backtest_entry": partner["entry_price"],
        "entry_slippage_points": _points(sign * (trade["entry_price"] - partner["entry_price"]),
                                         spec),
        "live_exit_time": trade["exit_time"], "backtest_exit_time": partner["exit_time"],
        "live_exit": trade["exit_price"], "backtest_exit": partner["exit_price"],
        "exit_slippage_points": _points(-sign * (trade["exit_price"] - partner["exit_price"]),
                                        spec),
        "live_pnl": round(float(trade["pnl"]), 2),
        "backtest_pnl": round(float(partner["pnl"]) * scale, 2),
    }


def _points(price_difference: float, spec: SymbolSpec) -> float:
    return round(price_difference / spec.point, 1) + 0.0  # + 0.0: no "-0.0" in the table


# ---------------------------------------------------------------- inputs


def live_trades(reader: AuditReader, symbol: str, since: str | None,
                until: str | None) -> pd.DataFrame:
    rows = [r for r in reader.trades() if r["symbol"] == symbol]
    frame = pd.DataFrame(rows, columns=["entry_time", "exit_time", "entry_price", "exit_price",
                                        "direction", "volume", "pnl", "exit_reason"])
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return _window(frame.sort_values("entry_time", ignore_index=True), since, until)


def _window(frame: pd.DataFrame, since: str | None, until: str | None) -> pd.DataFrame:
    if since:
        frame = frame[frame["entry_time"] >= pd.Timestamp(since, tz="UTC")]
    if until:
        frame = frame[frame["entry_time"] <= pd.Timestamp(until, tz="UTC")]
    return frame.reset_index(drop=True)


def strategy_from_db(reader: AuditReader, path: str | None,
                     params: list[str]) -> Strategy:
    """The strategy the trader ran (its startup event), or the one named on the command line."""
    startup = reader.last_event("startup")
    recorded = json.loads(startup["data"] or "{}") if startup else {}
    source = path or recorded.get("strategy_source")
    if not source:
        raise StrategyError("the audit log does not say which strategy ran: pass --strategy")
    if path is None and not params:
        return get_strategy_from_file(source, recorded.get("strategy_params") or {})
    return get_strategy_from_file(source, params)


def decision_span(reader: AuditReader, bars: pd.DataFrame, symbol: str) -> tuple[int, int]:
    """Indexes of the first and last bars the trader decided on for `symbol` (all if none)."""
    rows = reader.query("SELECT min(bar_time) AS first, max(bar_time) AS last FROM signals "
                        "WHERE symbol = ?", (symbol,))
    if not rows or not rows[0]["first"]:
        return 0, len(bars) - 1
    times = bars["time"]
    return (int(times.searchsorted(pd.Timestamp(rows[0]["first"]))),
            int(times.searchsorted(pd.Timestamp(rows[0]["last"]))))


# ---------------------------------------------------------------- output


COLUMNS = ["direction", "volume", "live_entry_time", "live_entry", "backtest_entry",
           "entry_slippage_points", "live_exit_time", "live_exit", "backtest_exit",
           "exit_slippage_points", "live_pnl", "backtest_pnl"]


def summary_lines(result: Comparison) -> list[str]:
    slips = [p["entry_slippage_points"] for p in result.matched] + \
            [p["exit_slippage_points"] for p in result.matched]
    mean = sum(slips) / len(slips) if slips else 0.0
    return [f"{result.symbol} {result.strategy}",
            f"matched {len(result.matched)}, missed (backtest only) {len(result.missed)}, "
            f"extra (live only) {len(result.extra)}",
            f"mean slippage per fill {mean:+.1f} points (positive = worse than the backtest)",
            f"P/L live {result.live_pnl:,.2f}, backtest {result.backtest_pnl:,.2f} (scaled to "
            f"the live volume), difference {result.pnl_difference:+,.2f}"]


def table_text(result: Comparison) -> str:
    frame = pd.DataFrame(result.matched, columns=COLUMNS)
    return frame.to_string(index=False) if len(frame) else "(no matched trades)"


def html_report(result: Comparison) -> str:
    """A self-contained page (inline CSS, no scripts); every value is escaped."""
    def table(rows: list[dict], columns: list[str]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>"
                                        for c in columns) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>" if rows else "<p>none</p>"

    other = ["direction", "entry_time", "entry_price", "exit_time", "exit_price", "pnl"]
    summary = "".join(f"<p>{html.escape(line)}</p>" for line in summary_lines(result))
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>Live vs backtest "
            f"{html.escape(result.symbol)}</title><style>body{{font:14px system-ui,sans-serif;"
            f"margin:16px}}table{{border-collapse:collapse}}td,th{{padding:3px 8px;"
            f"border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}}</style>"
            f"<h1>Live vs backtest</h1>{summary}<h2>Matched</h2>"
            f"{table(result.matched, COLUMNS)}<h2>Missed (backtest only)</h2>"
            f"{table(result.missed, other)}<h2>Extra (live only)</h2>"
            f"{table(result.extra, other)}</html>")


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m live.compare", description=__doc__
                                     .splitlines()[0])
    parser.add_argument("--db", default="data/audit.db", help="audit database")
    parser.add_argument("--data", required=True, help="bars CSV the trader traded")
    parser.add_argument("--symbol", help="symbol (default: the only one traded)")
    parser.add_argument("--from", dest="since", help="first entry time (UTC)")
    parser.add_argument("--to", dest="until", help="last entry time (UTC)")
    parser.add_argument("--strategy", help="strategy file (default: the one the trader ran)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--spread", type=float, help="backtest spread in points (default: "
                        "the CSV's)")
    parser.add_argument("--html", help="write the HTML report here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except (DataError, StrategyError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(summary_lines(result)))
    print(table_text(result))
    if args.html:
        Path(args.html).write_text(html_report(result), encoding="utf-8")
        print(f"report written to {args.html}")
    return 0


def run(args: argparse.Namespace) -> Comparison:
    reader = AuditReader(args.db)
    symbols = sorted({r["symbol"] for r in reader.query("SELECT DISTINCT symbol FROM trades")})
    symbol = args.symbol or (symbols[0] if len(symbols) == 1 else None)
    if symbol is None:
        raise ValueError(f"the audit log has trades in {', '.join(symbols) or 'no symbol'}; "
                         "choose one with --symbol")
    strategy = strategy_from_db(reader, args.strategy, args.param)
    bars = load_csv(args.data)
    first, last = decision_span(reader, bars, symbol)
    bars = bars.iloc[: last + 2].reset_index(drop=True)  # + the bar whose open fills the last
    spec = get_symbol_spec(symbol)
    # MT5 bars are bid prices: buys fill at bid + spread, as on the terminal
    backtest = run_backtest(bars, strategy, spec=spec, config=BacktestConfig(
        close_at_end=False, spread_points=args.spread, spread_mode="bid"),
        trade_from=first).trades
    seconds = timeframe_seconds(infer_timeframe(bars))
    return compare(live_trades(reader, symbol, args.since, args.until),
                   _window(backtest, args.since, args.until), spec=spec, bar_seconds=seconds,
                   symbol=symbol, strategy=strategy.label())


if __name__ == "__main__":
    sys.exit(main())
