"""Backtesting module: strategies, bar data, a vectorised engine, metrics, reports and a CLI.

The same strategy class runs here and in the live trader (see backtest/strategy.py).
"""

from backtest.engine import BacktestConfig, BacktestResult, run_backtest
from backtest.sizing import Sizing, position_size
from backtest.strategy import Signals, Strategy, StrategyError, get_strategy_from_file
from backtest.symbols import SymbolSpec, get_symbol_spec

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "Signals",
    "Sizing",
    "Strategy",
    "StrategyError",
    "SymbolSpec",
    "get_strategy_from_file",
    "get_symbol_spec",
    "position_size",
    "run_backtest",
]
