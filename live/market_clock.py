"""The market clock: what time it is for the trader, and how its loop waits for the next turn.

Market time is the simulator's clock when the terminal is simulated, else UTC wall time. A
simulator run in lockstep (`SIM_SPEED=max`) is stepped bar by bar between iterations; any
other terminal is waited for by sleeping. This is the only part of the trader that knows the
terminal may be simulated: the loop asks the clock for the time and for the next turn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from live.config import LiveConfig
from live.errors import BrokerError
from live.mt5_connector import MT5Connector

logger = logging.getLogger(__name__)

_UNREACHABLE = (BrokerError, OSError, EOFError)


class MarketClock:
    """The loop's clock over one connector; `wall_clock` and `sleep` are injectable."""

    def __init__(
        self,
        connector: MT5Connector,
        config: LiveConfig,
        *,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connector = connector
        self._config = config
        self.wall = wall_clock
        self._sleep = sleep
        self._in_iteration = False
        self._iteration_time: datetime | None = None
        self._last_market: datetime | None = None  # the simulator's clock, last seen

    @property
    def simulated(self) -> bool:
        return self._connector.is_simulator

    @property
    def name(self) -> str:
        """Which clock stamps this session's rows (shown by the dashboard)."""
        return "simulated market time (UTC)" if self.simulated else "UTC"

    def now(self) -> datetime:
        """Market time, UTC.

        In lockstep the simulated clock cannot move during an iteration (only the loop steps
        it, between iterations), so it is read once per iteration, not once per audit row:
        over mt5linux every read is a network round trip. While a simulator cannot be reached
        its clock is taken to stand where it was last seen, so every row of a simulated
        session stays on the one market clock (never the wall clock of a replay).
        """
        if self._iteration_time is not None:
            return self._iteration_time
        if self.simulated:
            try:
                moment = datetime.fromtimestamp(float(self._connector.sim_call("sim_time")), tz=UTC)
            except _UNREACHABLE:
                if self._last_market is not None:
                    return self._last_market
            else:
                self._last_market = moment
                if self._in_iteration and self._config.sim_lockstep:
                    self._iteration_time = moment
                return moment
        return datetime.fromtimestamp(self.wall(), tz=UTC)

    @contextmanager
    def iteration(self) -> Iterator[None]:
        """One loop iteration: in lockstep the market time is read once for all of it."""
        self._in_iteration, self._iteration_time = True, None
        try:
            yield
        finally:
            self._in_iteration, self._iteration_time = False, None

    def stamp(self) -> str:
        """'[2020-03-09 09:00 market] ' for log lines when market time is not wall time."""
        return f"[{self.now():%Y-%m-%d %H:%M} market] " if self.simulated else ""

    def next_turn(self, *, link_down: bool) -> str | None:
        """Wait for the next iteration: step a lockstep simulator by one bar, else sleep.
        Returns why the run must end (the replayed data ran out), or None to go on."""
        if not (self.simulated and self._config.sim_lockstep):
            self._sleep(self._config.interval_seconds)
            return None
        if link_down:
            self._sleep(min(self._config.interval_seconds, 1.0))
            return None
        try:
            more = bool(self._connector.sim_call("sim_step_bar"))
        except _UNREACHABLE as exc:
            logger.warning("simulator step failed: %s", exc)
            return None
        return None if more else "end of the simulated data"

    def resume_after(self, last_bar: datetime | None, bar_seconds: int) -> None:
        """The in-process simulator's market restarts with every process: move its clock to
        after the last bar decided in the audit log, so a second run goes on from there
        instead of waiting, silent, through bars it already decided on."""
        if self._connector.backend != "sim" or last_bar is None:
            return
        resume_at = last_bar + timedelta(seconds=bar_seconds)
        if resume_at > self.now():
            self._connector.sim_call("sim_set_time", resume_at.timestamp())
            logger.info(
                "simulated market resumed at %s, after the last bar decided in %s",
                resume_at.isoformat(),
                self._config.audit_db,
            )

    def startup_record(self) -> dict[str, object]:
        """On the built-in simulator, what made its prices, so `live.compare --sim` can make
        the same bars again."""
        if self._connector.backend != "sim":
            return {}
        config = self._config
        return {
            "sim": {
                "symbols": list(config.symbols),
                "timeframe": config.timeframe,
                "seed": config.sim_seed,
                "data": config.sim_data or None,
                "server_tz": config.sim_server_tz,
                "sessions": config.sessions,
            }
        }
