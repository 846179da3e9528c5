"""Walk-forward analysis: optimise on each training window, trade the next test window with the
winners, and stitch the out-of-sample results together.

Each test window is traded as a trader deployed at its first bar would trade it: the strategy
sees the `warmup` bars before the window (so its indicators are ready), but decisions made on
those earlier bars are never acted on (run_backtest's trade_from). Each window starts with the
equity the previous one ended with, so the stitched curve compounds as real trading would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from backtest.engine import BacktestConfig, BacktestResult, run_backtest, trade_exposure_bars
from backtest.metrics import STAT_LABELS, compute_stats, stats_for_output
from backtest.optimize import GridError, check_request, run_grid
from backtest.strategy import Strategy, create_strategy, strategy_warmup
from backtest.symbols import SymbolSpec
from backtest.trading_windows import ensure_broker_time

logger = logging.getLogger(__name__)

SUMMARY_STATS = (
    "total_return_pct",
    "cagr_pct",
    "sharpe",
    "sortino",
    "max_drawdown_pct",
    "max_drawdown_days",
    "exposure_pct",
    "win_rate_pct",
    "profit_factor",
    "n_trades",
)


@dataclass(frozen=True)
class Window:
    """Bar index ranges [start, end) of one training and one test window."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int


def windows(n_bars: int, train: int, test: int, mode: str) -> list[Window]:
    """Rolling: fixed-length training windows stepping by `test`; anchored: training always
    starts at bar 0 and grows."""
    if train <= 0 or test <= 0:
        raise GridError(f"--train and --test must be positive, got {train} and {test}")
    if mode not in ("rolling", "anchored"):
        raise GridError(f"mode must be rolling or anchored, got {mode!r}")
    if n_bars < train + test:
        raise GridError(
            f"walk-forward needs at least train + test = {train + test} bars, the data has {n_bars}"
        )
    result = []
    test_start = train
    while test_start + test <= n_bars:
        train_start = 0 if mode == "anchored" else test_start - train
        result.append(Window(train_start, test_start, test_start, test_start + test))
        test_start += test
    return result


@dataclass(frozen=True)
class WalkForwardResult:
    """Windows with their winners, the stitched out-of-sample equity, trades and stats."""

    windows: pd.DataFrame
    oos_equity: pd.Series
    oos_trades: pd.DataFrame
    oos_stats: dict[str, Any]
    is_stats: dict[str, Any]
    metric: str

    def summary(self) -> str:
        """Windows, then in-sample (the winners' averages) beside out-of-sample stats."""
        shown = self.windows.copy()
        for column in ("train_start", "train_end", "test_start", "test_end"):
            shown[column] = pd.to_datetime(shown[column]).dt.strftime("%Y-%m-%d %H:%M")
        lines = [
            f"walk-forward: {len(self.windows)} windows, optimised for {self.metric}",
            shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}"),
            "",
            f"{'statistic':<30}{'in-sample':>14}{'out-of-sample':>16}",
        ]
        for key in SUMMARY_STATS:
            lines.append(
                f"{STAT_LABELS[key]:<30}{_fmt(self.is_stats.get(key)):>14}"
                f"{_fmt(self.oos_stats.get(key)):>16}"
            )
        return "\n".join(lines)

    def to_json_dict(self) -> dict[str, Any]:
        """Windows, both sets of stats and the stitched out-of-sample equity per bar."""
        return {**self._json_head(), "oos_equity": json.loads(self.equity_json())}

    def json_text(self) -> str:
        """The `--json` document; the equity list is encoded column-wise, one point a line."""
        head = json.dumps(self._json_head(), indent=1, default=_plain)
        points = self.equity_json().replace("},{", "},\n  {")
        return head[:-2] + ',\n "oos_equity": ' + points + "\n}\n"

    def equity_json(self) -> str:
        """[{"time": ISO-8601 UTC, "equity": cents}, ...] of the stitched out-of-sample run."""
        seconds = pd.DatetimeIndex(self.oos_equity.index).tz_convert(None).to_numpy("datetime64[s]")
        frame = pd.DataFrame(
            {
                "time": np.char.add(np.datetime_as_string(seconds, unit="s"), "+00:00"),
                "equity": self.oos_equity.to_numpy(dtype=float).round(2),
            }
        )
        return frame.to_json(orient="records", double_precision=2)

    def _json_head(self) -> dict[str, Any]:
        frame = self.windows.copy()
        for column in ("train_start", "train_end", "test_start", "test_end"):
            frame[column] = pd.to_datetime(frame[column]).map(lambda t: t.isoformat())
        frame = frame.astype(object).where(frame.notna(), None)  # NaN is not JSON
        # each window's metrics rounded as the stats are (6 places), so no float noise
        rows = [stats_for_output(row) for row in frame.to_dict(orient="records")]
        return {
            "metric": self.metric,
            "windows": rows,
            "in_sample": stats_for_output(self.is_stats),
            "out_of_sample": stats_for_output(self.oos_stats),
            "oos_trades": len(self.oos_trades),
        }


@dataclass(frozen=True)
class Search:
    """An Optuna search per window: `trials` each, seeded, kept in `study_path` if given
    (each window is its own study there), trials with fewer than `min_trades` pruned."""

    trials: int
    seed: int = 0
    study_path: str | None = None
    min_trades: int = 0

    def run(self, bars: pd.DataFrame, strategy_cls: type[Strategy], grid, **options):
        from backtest.search import run_search

        settings = {"trials": self.trials, "seed": self.seed, "study_path": self.study_path,
                    "min_trades": self.min_trades}  # fmt: skip
        return run_search(bars, strategy_cls, grid, **settings, **options)


def run_walkforward(
    bars: pd.DataFrame,
    strategy_cls: type[Strategy],
    grid: dict[str, list],
    *,
    spec: SymbolSpec,
    config: BacktestConfig,
    metric: str,
    train: int,
    test: int,
    mode: str = "rolling",
    fixed_params: dict[str, Any] | None = None,
    workers: int | None = None,
    cluster: str | None = None,
    progress: bool = True,
    search: Search | None = None,
    other_bars: Mapping[str, pd.DataFrame] | None = None,
) -> WalkForwardResult:
    """Optimise `grid` on each training window, trade the following test window with the
    winners; see the module docstring. With `search`, each window is searched by Optuna
    (`backtest.search`) instead of run whole. `other_bars`: the bars of the other symbols
    the strategy reads (`informative`), by symbol."""
    fixed = dict(fixed_params or {})
    check_request(grid, fixed, metric)
    bars = ensure_broker_time(bars, config.rules.zone)  # once, not per window and combination
    rows, equities, trades, in_sample = [], [], [], []
    exposure = 0
    equity = config.cash
    for number, window in enumerate(windows(len(bars), train, test, mode), start=1):
        if progress:
            logger.warning(
                "window %d: optimising on bars %d-%d",
                number,
                window.train_start,
                window.train_end - 1,
            )
        training = bars.iloc[window.train_start : window.train_end].reset_index(drop=True)
        options = {"spec": spec, "config": config, "metric": metric, "fixed_params": fixed,
                   "workers": workers, "cluster": cluster, "other_bars": other_bars}  # fmt: skip
        if search is None:
            table = run_grid(training, strategy_cls, grid, progress=False, **options)
        else:
            table = search.run(training, strategy_cls, grid, **options)
        best = table.iloc[0]
        declared = strategy_cls.parameters()
        params = {name: declared[name].type(_plain(best[name])) for name in grid}
        strategy = create_strategy(strategy_cls, {**fixed, **params})
        traded = replace(config, cash=equity)
        result = _trade_window(bars, strategy, window, spec, traded, other_bars)
        held = trade_exposure_bars(result.trades)
        exposure += held
        equity = float(result.equity.iloc[-1])
        equities.append(result.equity)
        trades.append(result.trades)
        in_sample.append(best)
        rows.append(_window_row(bars, window, params, best, result, metric, held))
    oos_equity = pd.concat(equities)
    oos_trades = pd.concat(trades, ignore_index=True)
    oos_stats = compute_stats(
        equity=oos_equity.to_numpy(),
        times=oos_equity.index,
        trade_pnl=oos_trades["pnl"].to_numpy(),
        cash=config.cash,
        exposure_bars=exposure,
        trade_durations=oos_trades["exit_time"] - oos_trades["entry_time"],
    )
    return WalkForwardResult(
        pd.DataFrame(rows), oos_equity, oos_trades, oos_stats, _average(in_sample), metric
    )


def _trade_window(
    bars: pd.DataFrame,
    strategy: Strategy,
    window: Window,
    spec: SymbolSpec,
    config: BacktestConfig,
    other_bars: Mapping[str, pd.DataFrame] | None,
) -> BacktestResult:
    """The test window traded alone; trades' bar numbers index the whole `bars`."""
    first = max(0, window.test_start - strategy_warmup(strategy))
    piece = bars.iloc[first : window.test_end].reset_index(drop=True)
    result = run_backtest(
        piece,
        strategy,
        spec=spec,
        config=config,
        trade_from=window.test_start - first,
        other_bars=other_bars,
    )
    start = window.test_start - first
    trades = result.trades[result.trades["entry_bar"] >= start].copy()
    for column in ("entry_bar", "exit_bar", "signal_bar"):
        trades[column] += first
    return replace(result, equity=result.equity.iloc[start:], trades=trades)


def _window_row(
    bars: pd.DataFrame,
    window: Window,
    params: dict[str, Any],
    best: pd.Series,
    result: BacktestResult,
    metric: str,
    held_bars: int,
) -> dict[str, Any]:
    times = bars["time"]
    oos = compute_stats(
        equity=result.equity.to_numpy(),
        times=result.equity.index,
        trade_pnl=result.trades["pnl"].to_numpy(),
        cash=float(result.equity.iloc[0]),  # the test window alone
        exposure_bars=held_bars,
    )
    return {
        "train_start": times.iloc[window.train_start],
        "train_end": times.iloc[window.train_end - 1],
        "test_start": times.iloc[window.test_start],
        "test_end": times.iloc[window.test_end - 1],
        **params,
        f"IS {metric}": best[metric],
        f"OOS {metric}": oos.get(metric),
        "OOS trades": len(result.trades),
    }


def _average(rows: list[pd.Series]) -> dict[str, Any]:
    frame = pd.DataFrame(rows)
    out: dict[str, Any] = {}
    for key in SUMMARY_STATS:
        if key in frame:
            values = pd.to_numeric(frame[key], errors="coerce")
            out[key] = float(values.mean()) if values.notna().any() else None
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}"
