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
from backtest.results import TRADE_SUMMARY_COLUMNS

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
LIBRARY = STATIC / "vendor" / "lightweight-charts.standalone.production.js"
TEMPLATE = STATIC / "report.html"
STYLE = STATIC / "report.css"
CHARTS_JS = STATIC / "charts.js"
MAX_CANDLES = 20_000
MAX_EQUITY_POINTS = 20_000
MAX_MARKERS = 5_000
MAX_TRADES = 1_000


TRADE_HEADINGS = {
    "entry_time": "entry (UTC)",
    "exit_time": "exit (UTC)",
    "direction": "side",
    "volume": "lots",
    "entry_price": "entry price",
    "exit_price": "exit price",
    "pnl": "P/L",
    "exit_reason": "closed by",
}


def write_report(
    result: BacktestResult,
    bars: pd.DataFrame,
    path: str | Path,
    *,
    config: BacktestConfig | None = None,
    title: str | None = None,
    overlays: dict[str, Any] | None = None,
) -> None:
    """Write the report for `result` (run on `bars`) to `path`, atomically. `overlays`: the
    strategy's own series to draw over the price (`strategy_overlays`)."""
    page = render_report(result, bars, config=config, title=title, overlays=overlays)
    write_atomic(Path(path), page)


def strategy_overlays(strategy: Any, bars: pd.DataFrame) -> dict[str, Any]:
    """The series a strategy shows on the price chart: its `plots(bars)` method, a mapping
    of name to values per bar (a moving average, a channel's bounds); none without one.
    Values that are not one per bar are left out with a warning."""
    from backtest.strategy import user_code

    method = getattr(strategy, "plots", None)
    if method is None:
        return {}
    with user_code(type(strategy), "plots()"):
        asked = dict(method(bars) or {})
    shown = {}
    for name, values in asked.items():
        array = np.asarray(values, dtype=float)
        if array.shape != (len(bars),):
            logger.warning("plot %r: %s values for %d bars, left out", name, array.shape, len(bars))
            continue
        shown[str(name)] = array
    return shown


def render_report(
    result: BacktestResult,
    bars: pd.DataFrame,
    *,
    config: BacktestConfig | None = None,
    title: str | None = None,
    overlays: dict[str, Any] | None = None,
) -> str:
    """The report as one HTML string."""
    display, timeframe = _display_bars(bars)
    candle_times = epochs(display["time"])
    digits = _digits(bars)
    curves = equity_and_drawdown(result.equity)
    data = {
        "stats": [[label, stat_value(result.stats.get(key))] for key, label in STAT_LABELS.items()],
        "candles": _candles(display, candle_times),
        "volume": _volume(display, candle_times),
        "overlays": _overlays(overlays or {}, bars, display, candle_times),
        "markers": _markers(result.trades, candle_times),
        "stop_paths": _stop_paths(result.stops, candle_times),
        **curves,
        **_buy_and_hold(bars, result.equity, curves["equity"]),
        "trade_pnl": _trade_pnl(result.trades),
        "trade_columns": [TRADE_HEADINGS[c] for c in TRADE_SUMMARY_COLUMNS],
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


def plain_or_none(value: Any) -> Any:
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


def stat_value(value: Any) -> Any:
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


def epochs(times: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(times).as_unit("s").asi8


def _volume(bars: pd.DataFrame, times: np.ndarray) -> list[dict[str, Any]]:
    """Tick volume per candle, coloured by the candle's direction."""
    if "tick_volume" not in bars or not bars["tick_volume"].any():
        return []
    up = (bars["close"] >= bars["open"]).to_numpy()
    volume = bars["tick_volume"].to_numpy(dtype=float)
    return [
        {"time": int(t), "value": float(v), "color": "#1a9e5c55" if u else "#d2453d55"}
        for t, v, u in zip(times, volume, up, strict=True)
    ]


def _overlays(
    overlays: dict[str, Any], bars: pd.DataFrame, display: pd.DataFrame, times: np.ndarray
) -> list[dict[str, Any]]:
    """Each overlay at the displayed candles (its last value in each, when the candles are
    coarser than the bars), NaN left out."""
    at = np.searchsorted(epochs(bars["time"]), times, side="right") - 1
    ends = np.append(at[1:], len(bars) - 1) if len(at) else at
    shown = []
    for name, values in overlays.items():
        picked = np.asarray(values, dtype=float)[ends]
        points = [{"time": int(t), "value": round(float(v), 8)}
                  for t, v in zip(times, picked, strict=True) if np.isfinite(v)]  # fmt: skip
        shown.append({"name": name, "points": points})
    return shown


def _buy_and_hold(bars: pd.DataFrame, equity: pd.Series, kept: list[dict]) -> dict[str, Any]:
    """The account had it bought the symbol at the first close and held it: cash times the
    price's move, at the equity's points; and that return in %."""
    close = bars["close"].to_numpy(dtype=float)
    if not len(close) or not kept:
        return {"buy_hold": [], "buy_hold_note": ""}
    cash = float(equity.iloc[0])
    times = epochs(bars["time"])
    at = np.searchsorted(times, [point["time"] for point in kept], side="right") - 1
    values = cash * close[np.maximum(at, 0)] / close[0]
    moved = 100.0 * (close[-1] / close[0] - 1.0)
    return {
        "buy_hold": [
            {"time": p["time"], "value": round(float(v), 2)}
            for p, v in zip(kept, values, strict=True)
        ],
        "buy_hold_note": f"Buy and hold (the price's move from the first close): {moved:+.2f}%.",
    }


def _trade_pnl(trades: pd.DataFrame) -> list[dict[str, Any]]:
    """Each position's P/L (its partial exits summed) at its last exit, green or red; the
    positions closed at the same moment as one bar."""
    if trades.empty:
        return []
    by_position = trades.groupby("position", sort=False)
    closed = pd.Series(
        by_position["pnl"].sum().to_numpy(), index=epochs(by_position["exit_time"].max())
    )
    per_moment = closed.groupby(level=0).sum()
    return [
        {"time": int(t), "value": round(float(v), 2), "color": "#1a9e5c" if v >= 0 else "#d2453d"}
        for t, v in per_moment.items()
    ]


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
    bar_times = epochs(pd.Series(stops.index))
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


def equity_and_drawdown(equity: pd.Series) -> dict[str, Any]:
    """Both series, thinned to about MAX_EQUITY_POINTS keeping each bucket's low and high."""
    times = epochs(equity.index.to_series())
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
