"""The strategy contract shared by backtest and live: typed parameters, warm-up, vectorised signals.

A strategy turns a bars DataFrame (columns time, open, high, low, close, tick_volume, spread)
into one decision per bar: the columns of backtest/signals.py (`position`, and optional stops,
size, pending entries and time exits). Whoever runs the strategy acts on bar t only when the
decision changes (`position[t] != position[t-1]`) or when the optional boolean `entry[t]`
asks for a fresh entry; the action fills at the next bar's open. An action closes the current
position, then opens `position[t]` if it is not flat. So a position closed by its stop-loss
or take-profit is re-opened only by a new decision: a change, or an `entry` event.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import importlib.util
import inspect
import logging
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from backtest.broker_clock import UTC_ZONE
from backtest.errors import BacktestError
from backtest.informative import InformativeBars, align
from backtest.signals import (
    SIGNAL_COLUMNS,
    SignalError,
    Signals,
    check_against_prices,
    normalize_signals,
    plain,
)
from backtest.trading_windows import ensure_broker_time

logger = logging.getLogger(__name__)

__all__ = [
    "SIGNAL_COLUMNS",
    "InvalidParameters",
    "Parameter",
    "Signals",
    "Strategy",
    "StrategyError",
    "align",
    "compute_signals",
    "create_strategy",
    "get_strategy_from_file",
    "normalize_signals",
    "strategy_label",
    "strategy_warmup",
]

PARAM_TYPES = (int, float, bool, str)


class StrategyError(BacktestError):
    """A strategy could not be loaded, configured or run. The message says which and why."""


class InvalidParameters(StrategyError):
    """The strategy refused these parameter values (validate() raised ValueError).

    A grid skips such combinations; any other StrategyError stops the run.
    """


@dataclass(frozen=True)
class Parameter:
    """One tunable strategy parameter: its name, type and default value."""

    name: str
    type: type
    default: object

    def parse(self, text: str) -> object:
        """Convert a command-line or .env string into this parameter's type."""
        try:
            if self.type is bool:
                lowered = text.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if self.type is int:
                as_float = float(text)
                if not as_float.is_integer():
                    raise ValueError(text)
                return int(as_float)
            return self.type(text)
        except ValueError:
            raise StrategyError(
                f"parameter {self.name!r} expects {self.type.__name__}, got {text!r}"
            ) from None


class Strategy:
    """Base class. Declare parameters as annotated class attributes, implement `signals`.

    class SmaCross(Strategy):
        fast: int = 10
        slow: int = 30

        @property
        def warmup(self) -> int:
            return self.slow + 1

        def signals(self, bars):
            ...
            return pd.DataFrame({"position": position})
    """

    name: ClassVar[str] = ""
    # "/abs/path/file.py:ClassName" when loaded by get_strategy_from_file (the live audit log
    # records it); source_file is the path as given, for messages; source_code is the file's
    # text, so workers without the file (processes, cluster nodes) can rebuild the class
    source: ClassVar[str] = ""
    source_file: ClassVar[str] = ""
    source_code: ClassVar[str] = ""
    # True: the stop columns are read on every bar and move the stops (a level set on bar t
    # applies from bar t+1); False: they are read on the bar that enters only
    moving_stops: ClassVar[bool] = False
    # higher timeframes read in signals() with informative_bars() (backtest/informative.py)
    informative: ClassVar[tuple[str, ...]] = ()
    _informative_now: InformativeBars | None = None

    def __init__(self, **params: object) -> None:
        declared = self.parameters()
        for key, value in params.items():
            if key not in declared:
                raise StrategyError(_unknown_param_message(type(self), key, declared))
            setattr(self, key, _coerce(declared[key], value))
        try:
            self.validate()
        except ValueError as exc:
            raise InvalidParameters(f"{describe(type(self))}: {exc}") from None
        except (Exception, SystemExit) as exc:  # a bug in validate(), not a refusal
            if isinstance(exc, StrategyError):
                raise
            raise StrategyError(_fault(type(self), "validate()", exc)) from exc

    @classmethod
    def parameters(cls) -> dict[str, Parameter]:
        """Declared parameters, in declaration order (base classes first)."""
        found: dict[str, Parameter] = {}
        for klass in reversed(cls.__mro__):
            if klass in (Strategy, object):
                continue
            hints = typing.get_type_hints(klass, include_extras=False)
            for key in vars(klass).get("__annotations__", {}):
                hint = hints.get(key)
                if key.startswith("_") or hint not in PARAM_TYPES:
                    continue
                found[key] = Parameter(key, hint, getattr(klass, key, None))
        return found

    @property
    def params(self) -> dict[str, object]:
        """Current parameter values."""
        return {key: getattr(self, key) for key in self.parameters()}

    @property
    def warmup(self) -> int:
        """Closed bars needed before the signal of the last bar is meaningful."""
        return 1

    def validate(self) -> None:
        """Check relations between parameters; raise ValueError with a fix-it message."""

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame | pd.Series:
        """Return per-bar decisions: a Series of positions or a DataFrame with SIGNAL_COLUMNS."""
        raise NotImplementedError

    def plots(self, bars: pd.DataFrame) -> dict[str, object]:
        """Series the HTML report draws over the price: a name and one value per bar each
        (a moving average, a channel's bounds; NaN where there is none). None by default."""
        return {}

    def informative_bars(self, timeframe: str) -> pd.DataFrame:
        """Inside signals(): the bars of a declared informative timeframe (`informative`),
        with their `close_time`; bring their values onto the bars with `align`."""
        if self._informative_now is None:
            raise StrategyError(
                f"{describe(type(self))}: informative_bars() is only available inside "
                "signals(), for the timeframes in `informative`"
            )
        return self._informative_now[timeframe]

    def label(self) -> str:
        """Short identifier, e.g. 'SmaCross(fast=10,slow=30)'."""
        args = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name or type(self).__name__}({args})"


def describe(cls: type) -> str:
    """'SmaCross (path/to/sma_cross.py)': the class and where it came from, for messages."""
    where = getattr(cls, "source_file", "") or f"module {cls.__module__}"
    return f"{cls.__name__} ({where})"


def _fault(cls: type, doing: str, exc: BaseException) -> str:
    return f"{describe(cls)}: {doing} raised {type(exc).__name__}: {exc}"


@contextlib.contextmanager
def user_code(cls: type, doing: str) -> Iterator[None]:
    """Turn anything raised by a strategy's own code into a StrategyError naming the class,
    its file and what it was doing. SystemExit too: a strategy must not end the program."""
    try:
        yield
    except StrategyError:
        raise
    except (Exception, SystemExit) as exc:
        raise StrategyError(_fault(cls, doing, exc)) from exc


def create_strategy(cls: type[Strategy], params: dict[str, object] | None = None) -> Strategy:
    """`cls(**params)`; a custom __init__ or validate() that fails raises StrategyError
    (InvalidParameters when validate() refuses the values with ValueError)."""
    params = dict(params or {})
    args = ",".join(f"{k}={v}" for k, v in params.items())
    with user_code(cls, f"creating {cls.__name__}({args})"):
        return cls(**params)


def strategy_warmup(strategy: Strategy) -> int:
    """The strategy's declared warm-up, checked to be a whole number >= 0."""
    with user_code(type(strategy), "warmup"):
        value = strategy.warmup
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise StrategyError(
            f"{describe(type(strategy))}: warmup must be an integer >= 0, got {plain(value)!r}"
        )
    return int(value)


def strategy_label(strategy: Strategy) -> str:
    """The strategy's label(), checked to be a string."""
    with user_code(type(strategy), "label()"):
        value = strategy.label()
    if not isinstance(value, str):
        raise StrategyError(
            f"{describe(type(strategy))}: label() must return a str, got {type(value).__name__}"
        )
    return value


def compute_signals(
    strategy: Strategy,
    bars: pd.DataFrame,
    *,
    check_from: int = 0,
    informative: dict[str, pd.DataFrame] | None = None,
) -> Signals:
    """Run the strategy on bars and validate its output against them. Raises StrategyError
    naming the class, its file, the column, the row and its bar on any fault. Rows before
    `check_from` are not checked (the live trader decides on the last bar only). Bars
    without a `broker_time` column get one on UTC (callers that know the broker's zone
    add it themselves). `informative`: the bars of the strategy's informative timeframes
    (backtest/informative.py), by timeframe."""
    if "time" in bars.columns:
        bars = ensure_broker_time(bars, UTC_ZONE)
    cls = type(strategy)
    strategy._informative_now = InformativeBars(dict(informative or {}))
    try:
        with user_code(cls, "signals()"):
            raw = strategy.signals(bars)
    finally:
        strategy._informative_now = None
    who = describe(cls)
    try:
        signals = normalize_signals(raw, len(bars), who, check_from=check_from)
        check_against_prices(
            signals,
            bars["close"].to_numpy(dtype=float),
            who,
            moving_stops=bool(getattr(strategy, "moving_stops", False)),
            check_from=check_from,
        )
    except SignalError as exc:
        when = f" (bar {bars['time'].iloc[exc.row]})" if exc.row is not None else ""
        raise StrategyError(f"{exc}{when}") from None
    except (TypeError, ValueError) as exc:  # e.g. a position column of strings
        raise StrategyError(
            f"{who}: signals() returned unusable values: {type(exc).__name__}: {exc}"
        ) from None
    return signals


def get_strategy_from_file(path: str | Path) -> type[Strategy]:
    """Import a strategy file and return its Strategy subclass.

    `path` may end in `:ClassName` to choose among several classes in one file.
    """
    text = str(path)
    class_name = None
    if ":" in Path(text).name:
        text, class_name = text.rsplit(":", 1)
    file = Path(text)
    if not file.is_file():
        raise StrategyError(f"strategy file not found: {file}")
    try:
        code = importlib.util.decode_source(file.read_bytes())
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise StrategyError(f"cannot read strategy file {file}: {exc}") from None
    module = _import_source(code, str(file), str(file.resolve()))
    return _pick_class(module, file, class_name, code)


def load_strategy_code(code: str, file: str, class_name: str) -> type[Strategy]:
    """Rebuild a class from the text of its file (what worker processes and cluster nodes
    get instead of a path they may not have). Cached per text: a worker runs many tasks."""
    return _load_code_cached(code, file, class_name)


@functools.lru_cache(maxsize=16)
def _load_code_cached(code: str, file: str, class_name: str) -> type[Strategy]:
    return _pick_class(_import_source(code, file, file), Path(file), class_name, code)


def _pick_class(
    module: types.ModuleType, file: Path, class_name: str | None, code: str
) -> type[Strategy]:
    candidates = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, Strategy)
        and obj is not Strategy
        and obj.__module__ == module.__name__
    }
    if class_name is not None:
        if class_name not in candidates:
            raise StrategyError(
                f"{file} has no strategy class {class_name!r}; found: {', '.join(candidates)}"
            )
        chosen = candidates[class_name]
    elif len(candidates) != 1:
        found = ", ".join(candidates) or "none"
        raise StrategyError(
            f"{file} must define exactly one Strategy subclass (found: {found}); "
            f"pick one with {file}:ClassName"
        )
    else:
        chosen = next(iter(candidates.values()))
    chosen.source = f"{file.resolve()}:{chosen.__name__}"
    chosen.source_file = str(file)
    chosen.source_code = code
    with user_code(chosen, "reading its parameter annotations"):
        chosen.parameters()
    return chosen


def parse_param_overrides(cls: type[Strategy], pairs: list[str]) -> dict[str, object]:
    """Parse ["fast=10", "slow=30"] into typed values for `cls`, naming any bad entry."""
    declared = cls.parameters()
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StrategyError(f"parameter {pair!r} must look like name=value")
        if key not in declared:
            raise StrategyError(_unknown_param_message(cls, key, declared))
        values[key] = declared[key].parse(text.strip())
    return values


def _import_source(code: str, file: str, identity: str) -> types.ModuleType:
    """Execute a strategy file's text as a fresh module named after its path and text."""
    digest = hashlib.sha1(f"{identity}\0{code}".encode()).hexdigest()[:16]
    module = types.ModuleType(f"user_strategy_{digest}")
    module.__file__ = file
    sys.modules[module.__name__] = module  # dataclasses and pickling look the module up
    try:
        exec(compile(code, file, "exec"), module.__dict__)
    except (Exception, SystemExit) as exc:  # the file's own code: report, don't crash
        sys.modules.pop(module.__name__, None)
        raise StrategyError(f"importing {file} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _coerce(param: Parameter, value: object) -> object:
    if isinstance(value, str) and param.type is not str:
        return param.parse(value)
    if param.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if param.type is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if param.type is int and isinstance(value, np.integer):
        return int(value)
    if not isinstance(value, param.type) or (param.type is int and isinstance(value, bool)):
        raise StrategyError(
            f"parameter {param.name!r} expects {param.type.__name__}, got {value!r}"
        )
    return value


def _unknown_param_message(cls: type, key: str, declared: dict[str, Parameter]) -> str:
    close = difflib.get_close_matches(key, declared, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(declared) or "none"
    return f"{cls.__name__} has no parameter {key!r}{hint} (parameters: {known})"
