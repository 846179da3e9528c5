"""Which MT5 API the connector talks to, made from MT5_BACKEND: the official MetaTrader5
package (Windows), an mt5linux client (RPyC to a terminal under Wine), or the built-in
simulator; `auto` tries the official package and falls back to the simulator on --dry-run only.
Also what a backend offers beyond the API: the simulator's sim_* extras, in-process or over
the mt5linux link.

Part of the connector: only live/mt5_connector.py loads a backend and calls through these
(`auto` asks the official package's initialize() whether a terminal answers).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from live.config import LiveConfig
from live.errors import BrokerError, BrokerUnavailable, ConfigError
from live.mt5_errors import API_ERRORS, TRANSPORT_ERRORS, described

logger = logging.getLogger(__name__)


def load_api(config: LiveConfig) -> tuple[Any, str]:
    """The API object for config.backend: (module-like object, backend name)."""
    if config.backend == "mt5":
        return _official_api(), "mt5"
    if config.backend == "mt5linux":
        return _mt5linux_api(config), "mt5linux"
    if config.backend == "sim":
        return create_simulator(config), "sim"
    return _auto_api(config)


def _official_api() -> Any:
    try:
        return importlib.import_module("MetaTrader5")
    except ImportError:
        raise ConfigError(
            "MT5_BACKEND=mt5 needs the MetaTrader5 package, which exists only for Windows "
            "(pip install MetaTrader5); on Linux use MT5_BACKEND=mt5linux or sim"
        ) from None


def _mt5linux_api(config: LiveConfig) -> Any:
    try:
        from mt5linux import MetaTrader5 as Client
    except ImportError:
        raise ConfigError(
            "MT5_BACKEND=mt5linux needs the mt5linux package (pip install -r requirements.txt)"
        ) from None
    try:
        return Client(host=config.mt5linux_host, port=config.mt5linux_port)
    except TRANSPORT_ERRORS as exc:
        raise BrokerUnavailable(
            f"cannot reach the mt5linux server at {config.mt5linux_host}:{config.mt5linux_port} "
            f"({exc}); is the RPyC server running next to the terminal?"
        ) from exc


def _auto_api(config: LiveConfig) -> tuple[Any, str]:
    try:
        api = importlib.import_module("MetaTrader5")
        if api.initialize(timeout=config.mt5_timeout_ms):
            return api, "mt5"
        reason = f"terminal did not answer: {api.last_error()}"
    except ImportError:
        reason = "the MetaTrader5 package is not installed (it exists only for Windows)"
    if not config.dry_run:
        raise ConfigError(
            f"MT5_BACKEND=auto found no MT5 terminal ({reason}); the simulator is allowed only "
            "with --dry-run. Set MT5_BACKEND=mt5, mt5linux or sim explicitly."
        )
    logger.warning("*" * 72)
    logger.warning("NO MT5 TERMINAL (%s): DRY RUN ON THE BUILT-IN SIMULATOR", reason)
    logger.warning("prices are simulated; nothing reaches a broker")
    logger.warning("*" * 72)
    return create_simulator(config), "sim"


def create_simulator(config: LiveConfig) -> Any:
    """An in-process simulated terminal configured from the SIM_* settings."""
    from live.sim_terminal import SimConfig, SimTerminal

    try:
        sim_config = SimConfig(
            symbols=tuple(config.symbols),
            data=config.sim_data or None,
            timeframe=config.timeframe,
            seed=config.sim_seed,
            speed=None if config.sim_lockstep else float(config.sim_speed),
            history_bars=config.sim_history_bars,
            server_tz=config.sim_server_tz,
            sessions=config.sessions,
        )
        # building reads the CSV: a bad file or one of another timeframe is a setting error
        return SimTerminal(sim_config)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"simulator settings: {exc}") from exc


def serves_simulator(api: Any) -> bool:
    """Whether an mt5linux client's server is this project's simulator (its clock can be
    stepped)."""
    conn = getattr(api, "_MetaTrader5__conn", None)
    try:
        return bool(conn is not None and conn.eval("hasattr(mt5, 'sim_step_bar')"))
    except API_ERRORS:
        return False


def call_sim_extra(api: Any, backend: str, name: str, *args: Any) -> Any:
    """Call the simulator extra `name` (sim_step_bar, sim_time, ...) of `api`: in-process,
    or over the mt5linux client's RPyC link. Raises BrokerError (BrokerUnavailable when the
    link is down), also when the backend is no simulator."""
    function = getattr(api, name, None)
    conn = getattr(api, "_MetaTrader5__conn", None)  # the mt5linux client's link
    if function is None and conn is None:
        raise BrokerError(f"{name}: the {backend} backend is not a simulator")
    try:
        if function is not None:
            return function(*args)
        return conn.eval(f"mt5.{name}({', '.join(repr(a) for a in args)})")
    except TRANSPORT_ERRORS as exc:
        raise BrokerUnavailable(f"{name}: terminal unreachable: {exc}") from exc
    except API_ERRORS as exc:
        raise BrokerError(f"{name} raised {described(exc)}") from exc
