"""The errors the backtest raises on purpose, under one base, as live/errors.py is for live/.

`BacktestError` covers bad input (a file, an option, a setting or a value, named in the
message), a strategy's own fault (`StrategyError`), a grid or a cluster that cannot run. The
command line reports any of them in one line with exit code 2; anything else is a bug and
keeps its traceback. The input errors are ValueErrors too, as code written against them
before this base expects.
"""

from __future__ import annotations


class BacktestError(Exception):
    """Something the backtest refuses, with a message that says what and where."""


class UsageError(BacktestError, ValueError):
    """An option, a setting or a value that cannot be used (the command line's exit 2)."""
