"""Performance statistics of an equity curve and its trades, as a pure function.

Conventions: money in the account currency; percentages as numbers (12.5 means 12.5 %);
drawdowns negative; Sharpe and Sortino from daily (UTC) equity returns with a zero risk-free
rate, annualised by the number of trading days per year observed in the data (about 260 for
FX, 365 for markets that trade every day). Ratios that are undefined (no losing trade for the
profit factor, a flat equity curve for Sharpe) are None.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365.25

STAT_LABELS: dict[str, str] = {
    "start": "Start",
    "end": "End",
    "duration_days": "Duration [days]",
    "exposure_pct": "Exposure time [%]",
    "equity_final": "Equity final",
    "equity_peak": "Equity peak",
    "total_return_pct": "Return [%]",
    "cagr_pct": "CAGR [%]",
    "sharpe": "Sharpe ratio (ann.)",
    "sortino": "Sortino ratio (ann.)",
    "calmar": "Calmar ratio",
    "max_drawdown_pct": "Max. drawdown [%]",
    "avg_drawdown_pct": "Avg. drawdown [%]",
    "max_drawdown_days": "Max. drawdown duration [days]",
    "n_trades": "Trades",
    "win_rate_pct": "Win rate [%]",
    "profit_factor": "Profit factor",
    "expectancy": "Expectancy [per trade]",
    "avg_trade": "Avg. trade P/L",
    "avg_win": "Avg. win",
    "avg_loss": "Avg. loss",
    "best_trade": "Best trade",
    "worst_trade": "Worst trade",
    "avg_trade_hours": "Avg. trade duration [h]",
    "net_profit": "Net P/L",
    "sqn": "SQN",
    "kelly_pct": "Kelly criterion [%]",
}
# Statistics an optimiser can rank by. All are "higher is better" (drawdowns are negative, so
# the shallowest is the highest) except these, where less is better.
NUMERIC_STATS = tuple(key for key in STAT_LABELS if key not in ("start", "end"))
LOWER_IS_BETTER = frozenset({"max_drawdown_days"})
MONEY_STATS = frozenset(
    {
        "equity_final",
        "equity_peak",
        "expectancy",
        "avg_trade",
        "avg_win",
        "avg_loss",
        "best_trade",
        "worst_trade",
        "net_profit",
    }
)


def stats_for_output(stats: dict[str, object]) -> dict[str, object]:
    """Stats for a file: money to cents, other numbers to 6 decimals (no float noise)."""
    out = {}
    for key, value in stats.items():
        if isinstance(value, float):
            value = round(value, 2 if key in MONEY_STATS else 6)
        out[key] = value
    return out


def stats_table(title: str, stats: dict[str, object]) -> str:
    """The statistics as an aligned two-column table under `title`."""
    width = max(len(label) for label in STAT_LABELS.values())
    lines = [title]
    for key, label in STAT_LABELS.items():
        value = stats.get(key)
        shown = (
            "-"
            if value is None
            else (format_number(value) if isinstance(value, float) else str(value))
        )
        lines.append(f"  {label:<{width}}  {shown}")
    return "\n".join(lines)


def format_number(value: float) -> str:
    """4 decimals under 1, 2 above, thousands separated."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.4f}" if 0 < abs(value) < 1 else f"{value:,.2f}"


def compute_stats(
    *,
    equity: np.ndarray,
    times: pd.Series | pd.DatetimeIndex,
    trade_pnl: np.ndarray,
    cash: float,
    exposure_bars: int = 0,
    trade_durations: pd.Series | None = None,
) -> dict[str, float | int | str | None]:
    """Statistics for one backtest or live session; see the module docstring for units."""
    equity = np.asarray(equity, dtype=float)
    seconds = _epoch_seconds(times)
    duration_days = (seconds[-1] - seconds[0]) / SECONDS_PER_DAY if len(seconds) else 0.0
    stats: dict[str, float | int | str | None] = {
        "start": _iso(seconds[0]) if len(seconds) else None,
        "end": _iso(seconds[-1]) if len(seconds) else None,
        "duration_days": round(duration_days, 2),
        "exposure_pct": 100.0 * exposure_bars / len(equity) if len(equity) else 0.0,
        "equity_final": float(equity[-1]) if len(equity) else cash,
        "equity_peak": float(equity.max()) if len(equity) else cash,
        "total_return_pct": 100.0 * (equity[-1] / cash - 1.0) if len(equity) else 0.0,
        "cagr_pct": _cagr_pct(equity, cash, duration_days),
    }
    stats.update(_risk_ratios(equity, seconds))
    stats.update(drawdown_stats(equity, seconds))
    deepest = stats["max_drawdown_pct"]
    cagr = stats["cagr_pct"]
    stats["calmar"] = cagr / -deepest if cagr is not None and deepest < 0 else None
    stats.update(trade_stats(np.asarray(trade_pnl, dtype=float), trade_durations))
    return {key: _finite_or_none(value) for key, value in stats.items()}


def drawdown_stats(equity: np.ndarray, seconds: np.ndarray) -> dict[str, float]:
    """Deepest drawdown in % (negative) and longest time under water in days.

    Time under water runs from a peak to the first bar back at that level (or the last bar).
    """
    if len(equity) == 0:
        return {"max_drawdown_pct": 0.0, "max_drawdown_days": 0.0}
    peak = np.maximum.accumulate(equity)
    depth = np.divide(equity, peak)
    depth -= 1.0  # in place: a 10M-bar curve makes each temporary 80 MB
    deepest = float(depth.min())
    at_peak = np.flatnonzero(equity >= peak)  # never empty: bar 0 is its own peak
    gaps = np.diff(np.append(at_peak, len(equity) - 1))
    longest = 0.0
    if gaps.max(initial=0) > 1 or at_peak[-1] != len(equity) - 1:
        ends = np.append(at_peak[1:], len(equity) - 1)
        longest = float((seconds[ends] - seconds[at_peak]).max()) / SECONDS_PER_DAY
    return {
        "max_drawdown_pct": 100.0 * deepest,
        "avg_drawdown_pct": _average_drawdown(depth),
        "max_drawdown_days": round(longest, 2),
    }


def _average_drawdown(depth: np.ndarray) -> float:
    """The mean depth (%, negative) of the drawdowns, from each bar's depth under its peak
    (0 at a peak): each stretch under a peak counted by its deepest point; 0 without any."""
    under = depth < 0.0
    if not under.any():
        return 0.0
    starts = np.flatnonzero(under[1:] & ~under[:-1]) + 1
    if under[0]:  # never: bar 0 is its own peak; kept for a curve that starts below one
        starts = np.concatenate(([0], starts))
    lows = np.minimum.reduceat(depth, starts)
    return 100.0 * float(lows.mean())


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """Drawdown from the running peak at each point, in % (0 or negative)."""
    equity = np.asarray(equity, dtype=float)
    return 100.0 * (equity / np.maximum.accumulate(equity) - 1.0)


def trade_stats(pnl: np.ndarray, durations: pd.Series | None = None) -> dict[str, float | None]:
    """Win rate, profit factor, expectancy and averages of closed trades' net P/L."""
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    n = len(pnl)
    gross_loss = -losses.sum()
    hours = None
    if durations is not None and len(durations):
        hours = float(durations.dt.total_seconds().mean()) / 3600.0
    win_rate = len(wins) / n if n else None
    avg_win = float(wins.mean()) if len(wins) else 0.0
    avg_loss = float(losses.mean()) if len(losses) else 0.0
    return {
        "n_trades": n,
        "win_rate_pct": 100.0 * win_rate if win_rate is not None else None,
        "profit_factor": float(wins.sum() / gross_loss) if gross_loss > 0 else None,
        "expectancy": (win_rate * avg_win + (1 - win_rate) * avg_loss) if n else None,
        "avg_trade": float(pnl.mean()) if n else None,
        "avg_win": avg_win if len(wins) else None,
        "avg_loss": avg_loss if len(losses) else None,
        "best_trade": float(pnl.max()) if n else None,
        "worst_trade": float(pnl.min()) if n else None,
        "avg_trade_hours": hours,
        "net_profit": float(pnl.sum()),
        "sqn": _sqn(pnl),
        "kelly_pct": _kelly_pct(win_rate, avg_win, avg_loss) if len(wins) and len(losses) else None,
    }


def _sqn(pnl: np.ndarray) -> float | None:
    """System quality number: the square root of the trades' count times their mean P/L
    over its standard deviation."""
    if len(pnl) < 2 or not pnl.std(ddof=1) > 0:
        return None
    return float(math.sqrt(len(pnl)) * pnl.mean() / pnl.std(ddof=1))


def _kelly_pct(win_rate: float, avg_win: float, avg_loss: float) -> float:
    """The Kelly fraction in %: the win rate less the loss rate over the win/loss ratio."""
    return 100.0 * (win_rate - (1.0 - win_rate) / (avg_win / -avg_loss))


def _risk_ratios(equity: np.ndarray, seconds: np.ndarray) -> dict[str, float | None]:
    daily = _daily_last(equity, seconds)
    if len(daily) < 3:
        return {"sharpe": None, "sortino": None}
    returns = np.diff(daily) / daily[:-1]
    span_days = (seconds[-1] - seconds[0]) / SECONDS_PER_DAY
    per_year = len(returns) / span_days * DAYS_PER_YEAR if span_days > 0 else 252.0
    scale = math.sqrt(per_year)
    mean = returns.mean()
    std = returns.std(ddof=1)
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return {
        "sharpe": float(mean / std * scale) if std > 0 else None,
        "sortino": float(mean / downside * scale) if downside > 0 else None,
    }


def _daily_last(equity: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Equity at the last bar of each UTC day that has bars (bars are in time order)."""
    if not len(seconds):
        return equity
    first, last = seconds[0] // SECONDS_PER_DAY, seconds[-1] // SECONDS_PER_DAY
    next_midnights = np.arange(first + 1, last + 2) * SECONDS_PER_DAY
    last_of_day = np.searchsorted(seconds, next_midnights) - 1  # sorted; repeats on empty days
    keep = np.empty(len(last_of_day), dtype=bool)
    keep[0], keep[1:] = True, last_of_day[1:] != last_of_day[:-1]
    return equity[last_of_day[keep]]


def _cagr_pct(equity: np.ndarray, cash: float, duration_days: float) -> float | None:
    if not len(equity) or duration_days <= 0 or equity[-1] <= 0:
        return None
    return 100.0 * ((equity[-1] / cash) ** (DAYS_PER_YEAR / duration_days) - 1.0)


def _epoch_seconds(times: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    index = pd.DatetimeIndex(times)
    if index.tz is None:
        index = index.tz_localize("UTC")
    if index.unit == "ns":  # integer division is far cheaper than a checked unit conversion
        return index.asi8 // 1_000_000_000
    return index.as_unit("s").asi8


def _iso(seconds: int) -> str:
    return pd.Timestamp(int(seconds), unit="s", tz="UTC").isoformat()


def _finite_or_none(value: object) -> object:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
