"""A simulated MetaTrader 5 terminal: the MetaTrader5 API over replayed or generated prices.

    from live.sim_terminal import SimConfig, SimTerminal
    mt5 = SimTerminal(SimConfig(symbols=("EURUSD",)))
    mt5.initialize()

Serve it to mt5linux clients with `python -m live.sim_terminal serve` (see docs/simulator.md).
"""

from live.sim_terminal.config import FaultConfig, SimConfig
from live.sim_terminal.terminal import SimTerminal

__all__ = ["FaultConfig", "SimConfig", "SimTerminal"]
