"""The HTML pages of runs beyond one backtest: a walk-forward (stitched out-of-sample equity,
in-sample vs out-of-sample statistics, the windows) and a portfolio (the account's equity,
each symbol's contribution, the breakdown and the correlation). Self-contained like the
single-run report (`backtest.report`), whose page machinery they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.atomic import write_atomic
from backtest.metrics import STAT_LABELS
from backtest.report import (
    STATIC,
    epochs,
    equity_and_drawdown,
    fill_template,
    plain_or_none,
    stat_value,
)

WALKFORWARD_TEMPLATE = STATIC / "walkforward.html"
PORTFOLIO_TEMPLATE = STATIC / "portfolio.html"


def write_walkforward_report(
    result: Any, path: str | Path, *, title: str, subtitle: str = ""
) -> None:
    """Write the walk-forward report (a WalkForwardResult) to `path`, atomically."""
    write_atomic(Path(path), render_walkforward_report(result, title=title, subtitle=subtitle))


def render_walkforward_report(result: Any, *, title: str, subtitle: str = "") -> str:
    """Stitched out-of-sample equity and drawdown, in-sample vs out-of-sample stats, windows."""
    from backtest.walkforward import SUMMARY_STATS

    curves = equity_and_drawdown(result.oos_equity)
    data = {
        "stats": [
            [
                STAT_LABELS[key],
                stat_value(result.is_stats.get(key)),
                stat_value(result.oos_stats.get(key)),
            ]
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
    curves = equity_and_drawdown(result.equity)
    times = epochs(result.equity.index.to_series())
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
        "stats": [[label, stat_value(result.stats.get(key))] for key, label in STAT_LABELS.items()],
        **curves,
        "symbols": symbols,
        "contributions": contributions,
        "breakdown_columns": [BREAKDOWN_HEADINGS.get(str(c), str(c)) for c in breakdown.columns],
        "breakdown": [[plain_or_none(v) for v in row] for row in breakdown.itertuples(index=False)],
        "correlation": [
            [symbol, *(plain_or_none(round(float(v), 2)) for v in correlation.loc[symbol])]
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
    for number, start in enumerate(epochs(windows["test_start"]), start=1):
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
    rows = [[plain_or_none(v) for v in row] for row in shown.itertuples(index=False)]
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
