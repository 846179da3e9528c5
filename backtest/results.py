"""What a backtest takes and gives: the account and cost settings (BacktestConfig), the
result (BacktestResult: trades, equity, statistics, the stops' path) and the trades' columns
and exit reasons.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtest.errors import UsageError
from backtest.sizing import Sizing
from backtest.trading_windows import TradingRules

TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "direction",
    "volume",
    "size",
    "pnl",
    "commission",
    "exit_reason",
    "sl",
    "tp",
    "entry_bar",
    "exit_bar",
    "signal_bar",
    "position",
)
# what a person reads of a trade first: the report's table and the CLI's --show-trades
TRADE_SUMMARY_COLUMNS = (
    "entry_time",
    "exit_time",
    "direction",
    "volume",
    "entry_price",
    "exit_price",
    "pnl",
    "exit_reason",
)
SPREAD_MODES = ("half", "bid")
EXIT_REASONS = ("signal", "sl", "tp", "end", "time", "partial")
SIGNAL, STOP_LOSS, TAKE_PROFIT, END = range(4)  # codes into EXIT_REASONS (managed.py: all six)


@dataclass(frozen=True)
class BacktestConfig:
    """Account and cost settings. Money in the account currency, spread in points."""

    cash: float = 10_000.0
    commission_per_lot: float = 0.0
    spread_points: float | None = None
    spread_mode: str = "half"
    sizing: Sizing = field(default_factory=Sizing)
    account_currency: str = "USD"
    close_at_end: bool = True
    # the broker's clock, sessions, trade hours and news windows (off by default)
    rules: TradingRules = field(default_factory=TradingRules)

    def __post_init__(self) -> None:
        if not (self.cash > 0 and math.isfinite(self.cash)):
            raise UsageError(f"cash must be a positive number, got {self.cash!r}")
        if self.commission_per_lot < 0:
            raise UsageError(f"commission must be >= 0, got {self.commission_per_lot!r}")
        if self.spread_points is not None and self.spread_points < 0:
            raise UsageError(f"spread must be >= 0 points, got {self.spread_points!r}")
        if self.spread_mode not in SPREAD_MODES:
            raise UsageError(f"spread_mode must be one of {SPREAD_MODES}, got {self.spread_mode!r}")

    def describe(self) -> dict[str, object]:
        """The settings as plain values (JSON-ready), sizing and trading rules described."""
        setup = {k: v for k, v in vars(self).items() if k not in ("sizing", "rules")}
        setup["sizing"] = self.sizing.describe()
        setup["rules"] = self.rules.describe()
        return setup


@dataclass(frozen=True)
class TradeArrays:
    """The trades as the engine holds them: one numpy array per column, a row per closing
    fill (partial exits included), money already rounded. `frame` gives the table of
    TRADE_COLUMNS; readers on a hot path (the challenge) use the arrays and skip pandas."""

    entry_bar: np.ndarray
    exit_bar: np.ndarray
    signal_bar: np.ndarray
    position: np.ndarray
    direction: np.ndarray  # +1 long, -1 short
    entry_price: np.ndarray
    exit_price: np.ndarray
    volume: np.ndarray
    pnl: np.ndarray
    commission: np.ndarray
    exit_reason: np.ndarray  # codes into EXIT_REASONS
    sl: np.ndarray
    tp: np.ndarray

    def __len__(self) -> int:
        return len(self.entry_bar)

    def frame(self, times: pd.DatetimeIndex, contract_size: float) -> pd.DataFrame:
        """The trades table (TRADE_COLUMNS), times from the bars' UTC index."""
        return pd.DataFrame(
            {
                "entry_time": times[self.entry_bar],
                "exit_time": times[self.exit_bar],
                "entry_price": self.entry_price,
                "exit_price": self.exit_price,
                "direction": pd.Categorical.from_codes(
                    (self.direction > 0).astype(np.int8), ["short", "long"]
                ),
                "volume": self.volume,
                "size": self.volume * contract_size,
                "pnl": self.pnl,
                "commission": self.commission,
                "exit_reason": pd.Categorical.from_codes(self.exit_reason, EXIT_REASONS),
                "sl": self.sl,
                "tp": self.tp,
                "entry_bar": self.entry_bar,
                "exit_bar": self.exit_bar,
                "signal_bar": self.signal_bar,
                "position": self.position,
            }
        )


@dataclass(frozen=True)
class BacktestResult:
    """Trades (one row per round trip), the per-bar equity curve and summary statistics."""

    trades: pd.DataFrame
    equity: pd.Series
    stats: dict[str, float | int | str | None]
    symbol: str
    strategy: str
    # per bar, the stop-loss and take-profit in force (NaN when flat or none; None when no
    # trade had either): the report draws their path
    stops: pd.DataFrame | None = None
    # the engine's arrays behind `trades` (None for a result built by hand)
    trade_arrays: TradeArrays | None = field(default=None, repr=False, compare=False)

    def trades_records(self) -> list[dict[str, object]]:
        """Trades as JSON-ready dicts: ISO-8601 UTC times, size in units (lots × contract size)."""
        return json.loads(self.trades_json())

    def trades_json(self, price_decimals: int = 6) -> str:
        """The trades as a JSON array (fast: encoded column-wise by pandas).

        Prices carry `price_decimals` places (the fill precision), money and units two, so
        binary float noise (-32.299999999999997) never reaches the file.
        """
        return "[" + ",".join(self.trades_json_pieces(price_decimals)) + "]"

    def trades_json_pieces(self, price_decimals: int = 6, rows: int = 50_000) -> Iterator[str]:
        """The JSON array's items, `rows` trades a piece (comma-separated, no brackets): a
        run of a million trades is written without its whole text in memory."""
        for start in range(0, len(self.trades), rows):
            text = self._trades_slice_json(start, start + rows, price_decimals)
            if len(text) > 2:
                yield text[1:-1]

    def _trades_slice_json(self, start: int, stop: int, price_decimals: int) -> str:
        columns = [
            "entry_time",
            "exit_time",
            "entry_price",
            "exit_price",
            "direction",
            "size",
            "volume",
            "pnl",
            "exit_reason",
            "position",
        ]
        trades = self.trades.iloc[start:stop]
        # the encoder prints the shortest text that reads back as the rounded double
        decimals = {
            "entry_price": price_decimals,
            "exit_price": price_decimals,
            "size": 2,
            "volume": 4,
            "pnl": 2,
        }
        data: dict[str, object] = {}
        for column in columns:
            values = trades[column]
            if column in ("entry_time", "exit_time"):
                seconds = pd.DatetimeIndex(values).tz_convert(None).to_numpy("datetime64[s]")
                text = np.char.add(np.datetime_as_string(seconds, unit="s"), "+00:00")
                data[column] = _python_strings(text)
            elif column in decimals:
                data[column] = values.to_numpy(dtype=float).round(decimals[column])
            elif isinstance(values.dtype, pd.CategoricalDtype):
                data[column] = _python_strings(values.to_numpy(dtype=object))
            else:
                data[column] = values.to_numpy()
        frame = pd.DataFrame(data, copy=False)
        # double_precision counts decimal places: more than the rounding would print noise
        return frame.to_json(orient="records", double_precision=max(price_decimals, 4))


def _python_strings(values: np.ndarray) -> pd.Series:
    """Strings kept as Python objects: the JSON encoder reads them as they are, where
    pandas' own string columns would first be built, then converted back for it."""
    return pd.Series(values.astype(object, copy=False), dtype=object, copy=False)
