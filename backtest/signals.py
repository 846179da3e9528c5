"""A strategy's output: the per-bar signal columns, normalised into arrays and checked.

`position[t]` is the position to hold once bar t has closed (+1, 0, -1); an action on bar t
(a change of position, or `entry[t]`) fills at the next bar's open. Optional columns:

  sl, tp                    stop-loss and take-profit as prices;
  sl_distance, tp_distance  the same as distances from the entry's fill price (an absolute
                            level wins); NaN means none. Given for the bar that enters; with
                            a strategy's `moving_stops = True`, given on any bar to move them:
                            a level set on bar t applies from bar t+1 (NaN keeps it);
  size                      the fraction of the full volume to hold after bar t (0..1; NaN
                            keeps it): less scales out (a partial exit at the next open),
                            more scales in, 0 closes;
  entry_type                "market" (default), "limit" or "stop" (or 0, 1, 2): how the
                            entry on bar t is sent;
  entry_price               the limit or stop price of that entry;
  expiry_bars               bars a limit or stop entry waits before it is cancelled (NaN:
                            until the decision changes);
  max_bars                  a time exit: the position closes at the open after it has been
                            held this many bars (NaN: no time exit).

Every column is one value per bar, vectorised, and may use bars up to and including t only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.errors import BacktestError

SIGNAL_COLUMNS = (
    "position",
    "sl",
    "tp",
    "sl_distance",
    "tp_distance",
    "entry",
    "size",
    "entry_type",
    "entry_price",
    "expiry_bars",
    "max_bars",
)
LEVEL_COLUMNS = ("sl", "tp", "sl_distance", "tp_distance")
ENTRY_TYPES = ("market", "limit", "stop")
MARKET, LIMIT, STOP = range(3)
_FLOAT_COLUMNS = (*LEVEL_COLUMNS, "size", "entry_price", "expiry_bars", "max_bars")


class SignalError(BacktestError, ValueError):
    """A signal column the strategy returned is unusable; the message names column and row
    (`row`, when one row is at fault)."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


@dataclass(frozen=True)
class Signals:
    """Normalised strategy output: numpy arrays of the bars' length (see module docstring)."""

    position: np.ndarray
    sl: np.ndarray
    tp: np.ndarray
    sl_distance: np.ndarray
    tp_distance: np.ndarray
    entry: np.ndarray
    size: np.ndarray
    entry_type: np.ndarray
    entry_price: np.ndarray
    expiry_bars: np.ndarray
    max_bars: np.ndarray

    def __len__(self) -> int:
        return len(self.position)

    def actions(self) -> np.ndarray:
        """Boolean array: True on bars that trade (a changed decision or a fresh entry)."""
        previous = np.concatenate(([0], self.position[:-1]))
        return (self.position != previous) | (self.entry & (self.position != 0))

    def tail(self, n: int) -> Signals:
        return Signals(*(getattr(self, c)[-n:] for c in SIGNAL_COLUMNS))

    @property
    def manages(self) -> bool:
        """Whether any position-management column is used (size, pending or time exits)."""
        return bool(
            np.isfinite(self.size).any()
            or self.entry_type.any()
            or np.isfinite(self.max_bars).any()
        )


def normalize_signals(
    raw: object, n_bars: int, who: str = "strategy", *, check_from: int = 0
) -> Signals:
    """Turn a Series/DataFrame/ndarray of decisions into validated `Signals` arrays. Rows
    before `check_from` are not checked (a trader decides on the last bar only): their bad
    values are dropped (NaN, a market entry) instead."""
    columns = _columns(raw, who)
    position = columns["position"]
    if len(position) != n_bars:
        raise SignalError(f"{who}.signals returned {len(position)} rows for {n_bars} bars")
    nan = np.full(n_bars, np.nan)
    nan.flags.writeable = False  # shared by every missing column
    floats = {c: _floats(columns, c, nan, who, copy=check_from > 0) for c in _FLOAT_COLUMNS}
    entry = columns.get("entry")
    signals = Signals(
        position=_position_array(position, who),
        sl=floats["sl"],
        tp=floats["tp"],
        sl_distance=floats["sl_distance"],
        tp_distance=floats["tp_distance"],
        entry=np.zeros(n_bars, dtype=bool) if entry is None else _bool_array(entry),
        size=floats["size"],
        entry_type=_entry_types(columns.get("entry_type"), n_bars, who, check_from),
        entry_price=floats["entry_price"],
        expiry_bars=floats["expiry_bars"],
        max_bars=floats["max_bars"],
    )
    _check_ranges(signals, who, check_from, given=set(columns))
    return signals


def check_against_prices(
    signals: Signals,
    close: np.ndarray,
    who: str,
    *,
    moving_stops: bool = False,
    check_from: int = 0,
) -> None:
    """Levels on the wrong side of the price on the bars they are decided for (the bars that
    enter, every held bar when stops move): a long's stop-loss at or above the close, its
    take-profit at or below it (the reverse for a short); a buy limit at or above the close,
    a buy stop at or below it."""
    acting = signals.actions()
    acting[:check_from] = False
    deciding = (signals.position != 0) if moving_stops else acting
    deciding[:check_from] = False
    rows = np.flatnonzero(deciding)  # few rows without moving stops: checked on those only
    long, short = signals.position[rows] > 0, signals.position[rows] < 0
    with np.errstate(invalid="ignore"):
        for name, above in (("sl", False), ("tp", True)):
            level, at_close = getattr(signals, name)[rows], close[rows]
            high, low = level >= at_close, level <= at_close
            wrong = (long & (low if above else high)) | (short & (high if above else low))
            if wrong.any():
                mask = np.zeros(len(signals), dtype=bool)
                mask[rows[wrong]] = True
                _refuse(
                    who,
                    name,
                    mask,
                    getattr(signals, name),
                    "on the wrong side of the close for the position",
                )
        if not signals.entry_type.any():
            return
        long = acting & (signals.position > 0)
        short = acting & (signals.position < 0)
        pending = acting & (signals.entry_type != MARKET)
        price = signals.entry_price
        limit, stop = signals.entry_type == LIMIT, signals.entry_type == STOP
        below = price < close
        wrong = pending & (long | short) & ((limit & (long != below)) | (stop & (long == below)))
        _refuse(
            who,
            "entry_price",
            wrong,
            price,
            "on the wrong side of the close for a limit (below for a buy) or a stop "
            "(above for a buy) entry",
        )


# ---------------------------------------------------------------- parsing


def _columns(raw: object, who: str) -> dict[str, np.ndarray]:
    if isinstance(raw, pd.DataFrame):
        unknown = [c for c in raw.columns if c not in SIGNAL_COLUMNS]
        if unknown or "position" not in raw.columns:
            raise SignalError(
                f"{who}.signals must return a 'position' column and optionally "
                f"{', '.join(SIGNAL_COLUMNS[1:])}; got columns {list(raw.columns)}"
            )
        return {c: raw[c].to_numpy() for c in raw.columns}
    if isinstance(raw, (pd.Series, np.ndarray)):
        return {"position": np.asarray(raw)}
    raise SignalError(f"{who}.signals returned {type(raw).__name__}, expected a DataFrame")


def _floats(
    columns: dict, name: str, nan: np.ndarray, who: str, *, copy: bool = False
) -> np.ndarray:
    values = columns.get(name)
    if values is None:
        return nan
    try:
        return np.array(values, dtype=float, copy=copy) if copy else np.asarray(values, float)
    except (TypeError, ValueError):
        row = next(i for i, v in enumerate(values) if not _is_number(v))
        raise SignalError(
            f"{who}.signals: {name} must be numbers; row {row} is {plain(values[row])!r}"
        ) from None


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _entry_types(values: object, n_bars: int, who: str, check_from: int = 0) -> np.ndarray:
    if values is None:
        return np.zeros(n_bars, dtype=np.int8)
    values = np.asarray(values)
    if values.dtype.kind in "OUS":  # names
        codes = np.full(n_bars, -1, dtype=np.int8)
        for code, name in enumerate(ENTRY_TYPES):
            codes[values == name] = code
        blank = pd.isna(values) if values.dtype == object else np.zeros(n_bars, dtype=bool)
        codes[blank] = MARKET
    else:
        numbers = np.nan_to_num(values.astype(float), nan=float(MARKET))
        codes = np.where(np.isin(numbers, (0, 1, 2)), numbers, -1).astype(np.int8)
    codes[:check_from][codes[:check_from] < 0] = MARKET  # unchecked rows
    bad = codes < 0
    if bad.any():
        row = int(np.argmax(bad))
        raise SignalError(
            f"{who}.signals: entry_type must be one of {', '.join(ENTRY_TYPES)} (or 0, 1, 2); "
            f"row {row} is {plain(values[row])!r}",
            row,
        )
    return codes


def _check_ranges(signals: Signals, who: str, check_from: int, *, given: set[str]) -> None:
    """Range checks of the columns the strategy gave (the others are all NaN)."""
    with np.errstate(invalid="ignore"):
        if "size" in given:
            _refuse(
                who,
                "size",
                (signals.size < 0) | (signals.size > 1),
                signals.size,
                "outside 0..1 (a fraction of the full volume)",
                check_from,
            )
        for name in ("expiry_bars", "max_bars"):
            if name not in given:
                continue
            values = getattr(signals, name)
            _refuse(
                who,
                name,
                (values < 1) | (np.isfinite(values) & (values != np.round(values))),
                values,
                "not a whole number of bars >= 1",
                check_from,
            )
        if "entry_type" not in given:
            return
        pending = signals.entry_type != MARKET
        missing = pending & (signals.position != 0) & ~(signals.entry_price > 0)
        _refuse(
            who,
            "entry_price",
            missing,
            signals.entry_price,
            "missing or not a positive price for a limit or stop entry",
            check_from,
        )


def _refuse(
    who: str, column: str, bad: np.ndarray, values: np.ndarray, why: str, check_from: int = 0
) -> None:
    """Raise naming the first bad row; rows before `check_from` are made NaN instead."""
    if check_from and bad[:check_from].any():
        if values.flags.writeable:
            values[:check_from][bad[:check_from]] = np.nan
        bad = bad.copy()
        bad[:check_from] = False
    if bad.any():
        row = int(np.argmax(bad))
        raise SignalError(
            f"{who}.signals: {column} {plain(values[row])!r} at row {row} is {why}"
            + (f" ({int(bad.sum()) - 1} more rows)" if bad.sum() > 1 else ""),
            row,
        )


def _position_array(position: np.ndarray, who: str) -> np.ndarray:
    """int8 positions; NaN (no opinion yet) is flat; anything but -1, 0, 1 is an error."""
    if np.issubdtype(position.dtype, np.integer) or position.dtype == np.bool_:
        values = position.astype(np.int8, copy=False)
        bad = (
            (position < -1) | (position > 1)
            if len(position) and (position.min() < -1 or position.max() > 1)
            else None
        )
    else:
        as_float = np.nan_to_num(position.astype(float), nan=0.0)
        values = as_float.astype(np.int8)
        bad = values != as_float
        bad = bad if bad.any() else None
        if bad is None:
            bad = (values < -1) | (values > 1)
            bad = bad if bad.any() else None
    if bad is not None:
        row = int(np.argmax(bad))
        raise SignalError(
            f"{who}.signals: position must be -1, 0 or 1; row {row} is {plain(position[row])!r}"
        )
    return values


def _bool_array(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.bool_:
        return values
    as_float = np.asarray(values, dtype=float)
    return np.nan_to_num(as_float, nan=0.0) != 0


def plain(value: object) -> object:
    """A numpy scalar as the Python number it holds: messages say 2.0, not np.float64(2.0)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "ndim", None) == 0 else value
