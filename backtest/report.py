"""The HTML report of a backtest: one self-contained file (chart library, data and styles inline)
that opens offline, with the price and trade markers (partial exits their own), the path of
the stop-loss and take-profit in force, equity, drawdown, statistics and trades.

Large backtests stay light: candles are resampled to a coarser timeframe beyond MAX_CANDLES,
the equity and drawdown keep each bucket's low and high, and markers and trades are capped.
Everything that came from the user (strategy label, symbol, parameters) is escaped.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.atomic import write_atomic
from backtest.data import TIMEFRAMES, infer_timeframe, resample_bars
from backtest.engine import BacktestConfig, BacktestResult
from backtest.metrics import STAT_LABELS, drawdown_series

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
LIBRARY = STATIC / "vendor" / "lightweight-charts.standalone.production.js"
TEMPLATE = STATIC / "report.html"
WALKFORWARD_TEMPLATE = STATIC / "walkforward.html"
PORTFOLIO_TEMPLATE = STATIC / "portfolio.html"
STYLE = STATIC / "report.css"
CHARTS_JS = STATIC / "charts.js"
MAX_CANDLES = 20_000
MAX_EQUITY_POINTS = 20_000
MAX_MARKERS = 5_000
MAX_TRADES = 1_000
TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "direction",
    "volume",
    "entry_price",
    "exit_price",
    "pnl",
    "exit_reason",
)


def write_report(
    result: BacktestResult,
    bars: pd.DataFrame,
    path: str | Path,
    *,
    config: BacktestConfig | None = None,
    title: str | None = None,
) -> None:
    """Write the report for `result` (run on `bars`) to `path`, atomically."""
    write_atomic(Path(path), render_report(result, bars, config=config, title=title))


def render_report(
    result: BacktestResult,
    bars: pd.DataFrame,
    *,
    config: BacktestConfig | None = None,
    title: str | None = None,
) -> str:
    """The report as one HTML string."""
    display, timeframe = _display_bars(bars)
    candle_times = _epoch(display["time"])
    digits = _digits(bars)
    data = {
        "stats": [[label, _stat(result.stats.get(key))] for key, label in STAT_LABELS.items()],
        "candles": _candles(display, candle_times),
        "markers": _markers(result.trades, candle_times),
        "stop_paths": _stop_paths(result.stops, candle_times),
        **_equity_and_drawdown(result.equity),
        "trade_columns": list(TRADE_COLUMNS),
        "trades": _trade_rows(result.trades),
        "digits": digits,
        "min_move": 10.0**-digits,
        "price_note": _price_note(len(bars), len(display), timeframe, len(result.trades)),
        "trades_note": _trades_note(len(result.trades)),
    }
    heading = title or f"{result.strategy} on {result.symbol}"
    return fill_template(TEMPLATE, heading, _subtitle(result, bars, config), data)


def fill_template(template: Path, title: str, subtitle: str, data: dict[str, Any]) -> str:
    """The page: template placeholders replaced in one pass, so text from the user (a title
    holding "{{DATA}}", say) is never expanded again."""
    values = {
        "TITLE": html.escape(title),
        "SUBTITLE": html.escape(subtitle),
        "DATA": embed_json(data),
        "STYLE": STYLE.read_text(encoding="utf-8"),
        "CHARTS_JS": CHARTS_JS.read_text(encoding="utf-8"),
        "LIBRARY": LIBRARY.read_text(encoding="utf-8"),
    }
    page = template.read_text(encoding="utf-8")
    return re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values[m.group(1)], page)


def write_walkforward_report(
    result: Any, path: str | Path, *, title: str, subtitle: str = ""
) -> None:
    """Write the walk-forward report (a WalkForwardResult) to `path`, atomically."""
    write_atomic(Path(path), render_walkforward_report(result, title=title, subtitle=subtitle))


def render_walkforward_report(result: Any, *, title: str, subtitle: str = "") -> str:
    """Stitched out-of-sample equity and drawdown, in-sample vs out-of-sample stats, windows."""
    from backtest.walkforward import SUMMARY_STATS

    curves = _equity_and_drawdown(result.oos_equity)
    data = {
        "stats": [
            [STAT_LABELS[key], _stat(result.is_stats.get(key)), _stat(result.oos_stats.get(key))]
            for key in SUMMARY_STATS
        ],
        "stats_note": "In-sample: the average over the windows of each winner's training "
        "result. Out-of-sample: the stitched test windows traded as one account.",
        **curves,
        "markers": _window_markers(result.windows, curves["equity"]),
        **_window_table(result.windows),
    }
    return fill_template(WALKFORWARD_TEMPLATE, title, subtitle, data)


def render_portfolio_report(result: Any, *, title: str, subtitle: str = "") -> str:
    """A portfolio run (backtest.portfolio.PortfolioResult): the account's equity, each
    symbol's P/L in the account currency on the same axis, drawdown, statistics, the
    per-symbol breakdown and the correlation of daily P/L."""
    curves = _equity_and_drawdown(result.equity)
    times = _epoch(result.equity.index.to_series())
    kept = {point["time"] for point in curves["equity"]}
    keep = np.flatnonzero(np.isin(times, list(kept)))
    symbols = [str(s) for s in result.contributions.columns]
    contributions = [
        [{"time": int(times[i]), "value": round(float(values[i]), 2)} for i in keep]
        for values in (result.contributions[s].to_numpy(dtype=float) for s in symbols)
    ]
    breakdown = result.breakdown
    correlation = result.correlation.reindex(index=symbols, columns=symbols)
    refused = len(result.refused)
    data = {
        "stats": [[label, _stat(result.stats.get(key))] for key, label in STAT_LABELS.items()],
        **curves,
        "symbols": symbols,
        "contributions": contributions,
        "breakdown_columns": [BREAKDOWN_HEADINGS.get(str(c), str(c)) for c in breakdown.columns],
        "breakdown": [
            [_plain_or_none(v) for v in row] for row in breakdown.itertuples(index=False)
        ],
        "correlation": [
            [symbol, *(_plain_or_none(round(float(v), 2)) for v in correlation.loc[symbol])]
            for symbol in symbols
        ],
        "refused_note": f"{refused:,} entries refused by the account's limits." if refused else "",
    }
    return fill_template(PORTFOLIO_TEMPLATE, title, subtitle, data)


BREAKDOWN_HEADINGS = {
    "symbol": "symbol",
    "trades": "trades",
    "pnl": "P/L",
    "win_rate_pct": "win rate [%]",
    "exposure_pct": "exposure [%]",
    "refused": "entries refused",
}


def _window_markers(windows: pd.DataFrame, equity: list[dict[str, Any]]) -> list[dict]:
    """A square on the equity line where each test window starts, labelled W1, W2, ..."""
    if not equity:
        return []
    times = np.array([point["time"] for point in equity])
    markers = []
    for number, start in enumerate(_epoch(windows["test_start"]), start=1):
        index = min(int(np.searchsorted(times, start)), len(times) - 1)
        markers.append(
            {
                "time": int(times[index]),
                "position": "aboveBar",
                "color": "#6b7785",
                "shape": "square",
                "size": 0.6,
                "text": f"W{number}",
            }
        )
    return markers


def _window_table(windows: pd.DataFrame) -> dict[str, Any]:
    shown = windows.copy()
    for column in ("train_start", "train_end", "test_start", "test_end"):
        shown[column] = pd.to_datetime(shown[column]).dt.strftime("%Y-%m-%d %H:%M")
    rows = [[_plain_or_none(v) for v in row] for row in shown.itertuples(index=False)]
    return {
        "window_columns": [WINDOW_HEADINGS.get(str(c), str(c)) for c in shown.columns],
        "windows": rows,
    }


WINDOW_HEADINGS = {
    "train_start": "train from",
    "train_end": "train to",
    "test_start": "test from",
    "test_end": "test to",
}


def _plain_or_none(value: Any) -> Any:
    """JSON-ready: numpy scalars as Python values, NaN/inf as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def embed_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '</script>', no HTML-significant characters."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_plain)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _stat(value: Any) -> Any:
    """Dates as 'YYYY-MM-DD HH:MM UTC'; everything else as it is."""
    if isinstance(value, str) and len(value) >= 16 and value[10] == "T":
        return f"{value[:10]} {value[11:16]} UTC"
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in the report")


def _display_bars(bars: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """The bars, or a coarser resampling of them when there are too many to draw."""
    timeframe = infer_timeframe(bars)
    if len(bars) <= MAX_CANDLES or timeframe is None:
        return bars, timeframe
    base = TIMEFRAMES[timeframe]
    for name, seconds in TIMEFRAMES.items():
        # only whole multiples: a bin must hold whole bars (resample_bars refuses others)
        if seconds > base and seconds % base == 0 and len(bars) * base / seconds <= MAX_CANDLES:
            return resample_bars(bars, name), name
    return resample_bars(bars, "W1"), "W1"


def _epoch(times: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(times).as_unit("s").asi8


def _candles(bars: pd.DataFrame, times: np.ndarray) -> list[dict[str, float]]:
    columns = [bars[c].to_numpy() for c in ("open", "high", "low", "close")]
    return [
        {"time": int(t), "open": o, "high": h, "low": lo, "close": c}
        for t, o, h, lo, c in zip(times, *columns, strict=True)
    ]


def _markers(trades: pd.DataFrame, candle_times: np.ndarray) -> list[dict[str, Any]]:
    """Entry arrows (one per position) and exit dots on the display candle holding each fill
    (latest MAX_MARKERS); a partial exit is a square labelled with the volume it closed."""
    if trades.empty:
        return []
    shown = trades.tail(MAX_MARKERS // 2)
    positions = shown["position"] if "position" in shown else pd.Series(range(len(shown)))
    first_row = ~positions.duplicated().to_numpy()
    markers = []  # every marker carries its label; the page shows labels only when zoomed in
    for trade, first in zip(shown.itertuples(index=False), first_row, strict=True):
        long = trade.direction == "long"
        if first:
            markers.append(
                {
                    "time": _candle_at(trade.entry_time, candle_times),
                    "position": "belowBar" if long else "aboveBar",
                    "color": "#2962ff" if long else "#ff6d00",
                    "shape": "arrowUp" if long else "arrowDown",
                    "text": "L" if long else "S",
                }
            )
        partial = str(trade.exit_reason) == "partial"
        markers.append(
            {
                "time": _candle_at(trade.exit_time, candle_times),
                "position": "aboveBar" if long else "belowBar",
                "color": "#1a9e5c" if trade.pnl > 0 else "#d2453d",
                "shape": "square" if partial else "circle",
                "text": (f"partial {trade.volume:g} " if partial else "") + f"{trade.pnl:+.2f}",
            }
        )
    return sorted(markers, key=lambda m: m["time"])


def _stop_paths(stops: pd.DataFrame | None, candle_times: np.ndarray) -> dict[str, list]:
    """The stop-loss and take-profit in force at the end of each display candle, as line
    points; a candle with none is a gap in the line (a point without a value)."""
    if stops is None or stops.empty:
        return {"sl": [], "tp": []}
    bar_times = _epoch(pd.Series(stops.index))
    last_bar = np.searchsorted(bar_times, np.append(candle_times[1:], np.iinfo(np.int64).max)) - 1
    paths = {}
    for name in ("sl", "tp"):
        values = stops[name].to_numpy()[np.clip(last_bar, 0, len(bar_times) - 1)]
        if not np.isfinite(values).any():
            paths[name] = []
            continue
        paths[name] = [
            {"time": int(t), "value": float(v)} if math.isfinite(v) else {"time": int(t)}
            for t, v in zip(candle_times, values, strict=True)
        ]
    return paths


def _candle_at(moment: pd.Timestamp, candle_times: np.ndarray) -> int:
    index = int(np.searchsorted(candle_times, int(moment.timestamp()), side="right")) - 1
    return int(candle_times[max(index, 0)])


def _equity_and_drawdown(equity: pd.Series) -> dict[str, Any]:
    """Both series, thinned to about MAX_EQUITY_POINTS keeping each bucket's low and high."""
    times = _epoch(equity.index.to_series())
    values = equity.to_numpy(dtype=float)
    drawdown = drawdown_series(values)
    keep = _extremes(values, drawdown, MAX_EQUITY_POINTS)
    note = (
        ""
        if len(keep) == len(values)
        else (
            f"Equity and drawdown thinned from {len(values):,} to {len(keep):,} points "
            "(the lowest and highest value of each stretch are kept, so no drawdown is hidden)."
        )
    )
    return {
        "equity": [{"time": int(times[i]), "value": round(float(values[i]), 2)} for i in keep],
        "drawdown": [{"time": int(times[i]), "value": round(float(drawdown[i]), 3)} for i in keep],
        "equity_note": note,
    }


def _extremes(values: np.ndarray, drawdown: np.ndarray, limit: int) -> np.ndarray:
    n = len(values)
    if n <= limit:
        return np.arange(n)
    size = math.ceil(n / (limit / 3))
    starts = np.arange(0, n, size)
    picks = [starts, np.minimum(starts + size - 1, n - 1)]
    for series in (values, drawdown):
        padded = np.pad(series, (0, (-n) % size), mode="edge").reshape(-1, size)
        picks.append(starts + padded.argmin(axis=1))
        picks.append(starts + padded.argmax(axis=1))
    return np.unique(np.clip(np.concatenate(picks), 0, n - 1))


def _trade_rows(trades: pd.DataFrame) -> list[list[Any]]:
    rows = []
    for trade in trades.tail(MAX_TRADES).iloc[::-1].itertuples(index=False):
        rows.append(
            [
                trade.entry_time.strftime("%Y-%m-%d %H:%M"),
                trade.exit_time.strftime("%Y-%m-%d %H:%M"),
                str(trade.direction),
                round(float(trade.volume), 2),
                float(trade.entry_price),
                float(trade.exit_price),
                round(float(trade.pnl), 2),
                str(trade.exit_reason),
            ]
        )
    return rows


def _digits(bars: pd.DataFrame) -> int:
    sample = bars["close"].to_numpy()[-200:]
    for digits in range(0, 7):
        if np.allclose(sample, np.round(sample, digits), rtol=0, atol=1e-9):
            return digits
    return 6


def _subtitle(result: BacktestResult, bars: pd.DataFrame, config: BacktestConfig | None) -> str:
    first, last = bars["time"].iloc[0], bars["time"].iloc[-1]
    parts = [f"{first:%Y-%m-%d} to {last:%Y-%m-%d}", f"{len(bars):,} bars"]
    if config is not None:
        spread = (
            "data spread"
            if config.spread_points is None
            else f"spread {config.spread_points:g} pts"
        )
        parts += [
            f"cash {config.cash:,.0f}",
            config.sizing.describe(),
            spread,
            f"commission {config.commission_per_lot:g}/lot/side",
        ]
    return " · ".join(parts)


def _price_note(n_bars: int, n_candles: int, timeframe: str | None, n_trades: int) -> str:
    notes = []
    if n_candles < n_bars:
        notes.append(
            f"{n_bars:,} bars shown as {n_candles:,} {timeframe} candles; markers sit "
            "on the candle holding each fill."
        )
    if n_trades > MAX_MARKERS // 2:
        notes.append(f"Markers for the latest {MAX_MARKERS // 2:,} of {n_trades:,} trades.")
    return " ".join(notes)


def _trades_note(n_trades: int) -> str:
    if n_trades > MAX_TRADES:
        return f"The latest {MAX_TRADES:,} of {n_trades:,} trades, newest first."
    return f"{n_trades:,} trades, newest first."
