"""Download bar history from the terminal into a CSV the backtest reads, window by window
with progress, through the on-disk cache of `backtest.terminal_history.load_from_terminal`.

    python -m live.history --symbol EURUSD --timeframe H1 --from 2023-01-01 --to 2024-01-01 \
        --out data/EURUSD_H1.csv [--backend mt5|mt5linux|sim] [--config .env]

Bars already in the cache (data/history by default) are not asked for again.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from backtest.data import DataError, save_csv, timeframe_seconds
from backtest.terminal_history import load_from_terminal
from live.config import LiveConfig, resolve_path
from live.errors import BrokerError, BrokerUnavailable, ConfigError
from live.mt5_connector import MT5Connector

DEFAULT_CACHE = "data/history"
WINDOW_BARS = 20_000  # bars asked per request: one progress line each


def download(
    connector: MT5Connector,
    symbol: str,
    timeframe: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    cache_dir: Path,
    now: pd.Timestamp,
    progress: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Closed bars of `symbol` in [start, end], fetched in windows of WINDOW_BARS bars."""
    width = pd.Timedelta(seconds=timeframe_seconds(timeframe))
    end = min(end, now - width)
    edges = [*pd.date_range(start, end, freq=width * WINDOW_BARS), end]
    windows = [(a, b) for a, b in itertools.pairwise(edges) if b > a] or [(start, end)]
    parts = []
    for number, (first, last) in enumerate(windows, start=1):
        part = load_from_terminal(
            connector, symbol, timeframe, first, last, cache_dir=cache_dir, now=now
        )
        parts.append(part)
        progress(
            f"{symbol} {timeframe}: window {number}/{len(windows)} up to "
            f"{last:%Y-%m-%d %H:%M}, {len(part):,} bars"
        )
    bars = pd.concat(parts, ignore_index=True).drop_duplicates("time", keep="last")
    return bars.sort_values("time", ignore_index=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m live.history", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--symbol", required=True)
    parser.add_argument("--timeframe", default="H1")
    parser.add_argument("--from", dest="start", required=True, help="first bar (UTC date)")
    parser.add_argument("--to", dest="end", help="last bar (UTC date; default: now)")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--cache-dir", default=DEFAULT_CACHE)
    parser.add_argument("--backend", choices=("auto", "mt5", "mt5linux", "sim"))
    parser.add_argument("--config", help="settings file (default .env)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        config = LiveConfig.load(
            args.config,
            overrides={
                "backend": args.backend,
                "symbols": (args.symbol,),
                "timeframe": args.timeframe,
            },
        )
        start, end = _stamp(args.start, "--from"), _stamp(args.end, "--to") if args.end else None
        connector = MT5Connector(config)
        connector.connect()
        now = _now(connector)
        bars = download(
            connector,
            args.symbol,
            config.timeframe,
            start,
            end or now,
            cache_dir=resolve_path(args.cache_dir),
            now=now,
        )
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokerUnavailable as exc:
        print(f"error: MT5 terminal unreachable: {exc}", file=sys.stderr)
        return 1
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if bars.empty:
        print(
            f"error: the terminal has no {args.symbol} {config.timeframe} bars in that range",
            file=sys.stderr,
        )
        return 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_csv(bars, out)
    print(
        f"wrote {len(bars):,} bars ({bars['time'].iloc[0]:%Y-%m-%d} to "
        f"{bars['time'].iloc[-1]:%Y-%m-%d %H:%M}) to {out}"
    )
    return 0


def _stamp(text: str, flag: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a date (use YYYY-MM-DD)") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _now(connector: MT5Connector) -> pd.Timestamp:
    """The terminal's present: the simulated clock on a simulator, else UTC now."""
    if connector.is_simulator:
        seconds = float(connector.sim_call("sim_time"))
        return pd.Timestamp(datetime.fromtimestamp(seconds, tz=UTC))
    return pd.Timestamp.now(tz="UTC")


if __name__ == "__main__":
    sys.exit(main())
