"""The simulated terminal's controls that no MetaTrader5 terminal has, the sim_* methods: the
clock, faults, the terminal's switches, and the state that must survive a restart.

A mixin of SimTerminal (terminal.py); usable over RPyC too.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from live.sim_terminal.config import FaultConfig

logger = logging.getLogger(__name__)


class SimControls:
    """sim_time, sim_set_time, sim_advance, sim_step_bar, sim_set_faults, sim_state, ..."""

    def sim_time(self) -> float:
        """The simulated clock, in epoch seconds (UTC)."""
        return self.clock.now()

    def sim_server_offset(self) -> int:
        """Seconds the server's clock (API times) runs ahead of UTC now: for tests; a trader
        on a real terminal has no such call and reads the offset from tick times."""
        return self.server_clock.offset(self.clock.now())

    def sim_set_time(self, moment: float) -> float:
        with self._lock:
            self.clock.set(float(moment))
            self.server.process(self.clock.now())
            self._changed()
            return self.clock.now()

    def sim_advance(self, seconds: float) -> float:
        with self._lock:
            return self.sim_set_time(self.clock.now() + float(seconds))

    def sim_step_bar(self) -> bool:
        """Move the clock to the next base bar's open: the bar before it has just closed and
        the new one shows only its open. False (and the clock at the end) when data runs out.
        """
        with self._lock:
            now = self.clock.now()
            upcoming = [
                int(f.times[i])
                for f in self.server.feeds.values()
                if (i := f.index_at(now) + 1) < len(f.times)
            ]
            if not upcoming:
                self.sim_set_time(max(f.end for f in self.server.feeds.values()))
                return False
            self.sim_set_time(min(upcoming))
            return True

    def sim_finished(self) -> bool:
        return self.clock.now() >= max(f.end for f in self.server.feeds.values())

    def sim_set_faults(self, **knobs: float) -> dict[str, float]:
        """Change fault knobs (names as in FaultConfig); returns them all."""
        with self._lock:
            current = {k: getattr(self.faults, k) for k in FaultConfig.__dataclass_fields__}
            current.update(knobs)
            self.faults = FaultConfig(**current)
            if "seed" in knobs:
                self._rng = random.Random(self.faults.seed)
            return dict(current)

    def sim_drop_connection(self, seconds: float = 0.0, calls: int = 0) -> None:
        """Disconnect now, for `seconds` of wall time and/or the next `calls` calls."""
        with self._lock:
            self._initialized = False
            self._drop_until_wall = self.config.wall() + float(seconds)
            self._drop_calls_left = max(self._drop_calls_left, int(calls))

    def sim_set_terminal(
        self,
        *,
        trade_allowed: bool | None = None,
        tradeapi_disabled: bool | None = None,
        connected: bool | None = None,
    ) -> None:
        """Flip the terminal's Algo Trading button, API switch or server link."""
        with self._lock:
            if trade_allowed is not None:
                self.trade_allowed = trade_allowed
            if tradeapi_disabled is not None:
                self.tradeapi_disabled = tradeapi_disabled
            if connected is not None:
                self.server_connected = connected

    @property
    def state_lock(self) -> threading.RLock:
        """Held by every call; a state file holds it too, so it saves one moment, in order."""
        return self._lock

    def sim_state(self, history_orders_from: int = 0, deals_from: int = 0) -> dict[str, Any]:
        """Everything that must survive a restart: account, positions, orders, deals, clock
        (with `*_from`, only the history orders and deals after those counts)."""
        with self._lock:
            state = self.server.to_state(
                history_orders_from=history_orders_from, deals_from=deals_from
            )
            state["clock"] = self.clock.now()
            state["selected"] = sorted(self._selected)
            return state

    def sim_load_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.server.load_state(state)
            self.clock.set(float(state["clock"]))
            if "selected" in state:  # Market Watch as saved (deselections too)
                self._selected = set(state["selected"])
