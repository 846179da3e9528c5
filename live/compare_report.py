"""The report of a live-versus-backtest comparison: its summary lines, its tables as text, and
a self-contained HTML page."""

from __future__ import annotations

import html

import pandas as pd

from live.compare_match import Comparison

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


EXTRA_COLUMNS = [
    "direction",
    "volume",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
]
MISSED_COLUMNS = [*EXTRA_COLUMNS, "backtest_volume", "backtest_pnl"]


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
