"""The inputs of a live-versus-backtest comparison, as the trader had them: its symbol, trades,
volume, strategy and decision span from the audit log (read only), its trading windows, and
the bars the built-in simulator served it, made again."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from backtest.broker_clock import parse_zone
from backtest.data import rates_to_frame
from backtest.strategy import Strategy, StrategyError
from backtest.trading_windows import TradingRules
from live.audit_reader import AuditReader
from live.backtesting_bridge import get_strategy_from_file
from live.config import LiveConfig


def live_trades(
    reader: AuditReader, symbol: str, since: pd.Timestamp | None, until: pd.Timestamp | None
) -> pd.DataFrame:
    """The trader's closed trades in `symbol` from the audit log, in entry order (UTC times)."""
    rows = [r for r in reader.trades() if r["symbol"] == symbol]
    frame = pd.DataFrame(
        rows,
        columns=[
            "entry_time",
            "exit_time",
            "entry_price",
            "exit_price",
            "direction",
            "volume",
            "pnl",
            "exit_reason",
        ],
    )
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    ordered = frame.sort_values("entry_time", ignore_index=True, kind="stable")  # exits in order
    return entry_window(ordered, since, until)


def entry_window(
    frame: pd.DataFrame, since: pd.Timestamp | None, until: pd.Timestamp | None
) -> pd.DataFrame:
    """The trades entered from `since` to `until` (each None: unbounded), renumbered."""
    if since is not None:
        frame = frame[frame["entry_time"] >= since]
    if until is not None:
        frame = frame[frame["entry_time"] <= until]
    return frame.reset_index(drop=True)


def trader_volume(reader: AuditReader, symbol: str, live: pd.DataFrame) -> tuple[float | None, str]:
    """The volume the trader would have given a trade it missed: its fixed size when all its
    entry orders had one, else the median of its trades (or orders), with what it was."""
    volumes = reader.entry_volumes(symbol)
    if len(volumes) == 1:
        return volumes[0], f"the trader's fixed volume, {volumes[0]:g} lots (from its orders)"
    if len(live):
        median = float(live["volume"].median())
        return median, f"the median live volume, {median:g} lots"
    if volumes:
        median = float(pd.Series(volumes).median())
        return median, f"the median volume of the trader's orders, {median:g} lots"
    return None, "the backtest's own volume (the trader recorded no volume to scale to)"


def startup_record(reader: AuditReader) -> dict[str, object]:
    """What the trader recorded at its last start-up (empty when it recorded none)."""
    startup = reader.last_event("startup")
    return json.loads(startup["data"] or "{}") if startup else {}


def strategy_from_db(reader: AuditReader, path: str | None, params: list[str]) -> Strategy:
    """The strategy the trader ran (its startup event), or the one named on the command line."""
    recorded = startup_record(reader)
    source = path or recorded.get("strategy_source")
    if not source:
        raise StrategyError("the audit log does not say which strategy ran: pass --strategy")
    if path is None and not params:
        return get_strategy_from_file(source, recorded.get("strategy_params") or {})
    return get_strategy_from_file(source, params)


def simulator_bars(
    reader: AuditReader, symbol: str, config: LiveConfig, seed: int | None = None
) -> tuple[pd.DataFrame, str]:
    """The bars the built-in simulator served the trader, made again the way it made them
    (same symbols, timeframe, seed, bar count and replayed CSV), and where the settings came
    from: the trader's start-up record when it has them, else the SIM_* settings."""
    from live.sim_terminal import SimConfig, SimTerminal

    recorded = startup_record(reader)
    if recorded.get("backend") not in (None, "sim"):
        raise ValueError(
            f"the trader ran via {recorded['backend']}, not the built-in "
            "simulator: pass the bars it traded with --data"
        )
    settings, origin = _sim_settings(recorded, config)
    if seed is not None:
        settings["seed"], origin = seed, "--sim-seed and " + origin
    terminal = SimTerminal(SimConfig(speed=None, **settings))
    if not terminal.initialize():
        raise ValueError(f"the simulator did not start: {terminal.last_error()}")
    terminal.sim_set_time(4_102_444_800.0)  # 2100: every bar has closed
    rates = terminal.copy_rates_range(
        symbol,
        getattr(terminal, f"TIMEFRAME_{settings['timeframe']}"),
        datetime(1970, 1, 2, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
    )
    if rates is None or not len(rates):
        raise ValueError(f"the simulator has no {symbol} bars: {terminal.last_error()}")
    # the simulator stamps bars in its server's time, as a broker does; the record is UTC
    zone = parse_zone(str(settings.get("server_tz") or "UTC"), "SIM_SERVER_TZ")
    rates["time"] = zone.to_utc(rates["time"].astype(np.int64))
    what = (
        f"replay of {settings['data']}"
        if settings.get("data")
        else f"generated bars, seed {settings['seed']}"
    )
    return rates_to_frame(rates), f"the built-in simulator's {what} ({origin})"


def trader_rules(config: LiveConfig, *, sim: bool) -> TradingRules:
    """The trader's window settings on its broker's clock: BROKER_TZ when named, else the
    simulator's zone for a simulator run (`auto` reads it), else UTC."""
    from live.market_hours import load_calendar_setting, rules_from_config

    if config.broker_tz.lower() != "auto":
        zone = parse_zone(config.broker_tz)
    else:
        zone = parse_zone(config.sim_server_tz if sim else "UTC")
    return rules_from_config(config, zone, load_calendar_setting(config))


def _sim_settings(recorded: dict, config: LiveConfig) -> tuple[dict[str, object], str]:
    sim = recorded.get("sim")
    if isinstance(sim, dict):
        keys = ("symbols", "timeframe", "seed", "n_bars", "data", "data_symbol", "data_tz")
        keys += ("server_tz", "sessions")
        settings = {k: sim[k] for k in keys if sim.get(k) is not None}
        settings["symbols"] = tuple(
            settings.get("symbols") or recorded.get("symbols") or config.symbols
        )
        settings.setdefault("timeframe", recorded.get("timeframe") or config.timeframe)
        return settings, "settings recorded by the trader at start-up"
    settings = {
        "symbols": tuple(recorded.get("symbols") or config.symbols),
        "timeframe": recorded.get("timeframe") or config.timeframe,
        "seed": config.sim_seed,
        "data": config.sim_data or None,
        "server_tz": config.sim_server_tz,
        "sessions": config.sessions,
    }
    return settings, (
        "SIM_SEED and SIM_DATA of the settings: the start-up record has no "
        "simulator settings, so they must be the ones the trader ran with"
    )


def decision_span(reader: AuditReader, bars: pd.DataFrame, symbol: str) -> tuple[int, int]:
    """Indexes of the first and last bars the trader decided on for `symbol` (all if none)."""
    span = reader.signal_span(symbol)
    if span is None:
        return 0, len(bars) - 1
    times = bars["time"]
    return (
        int(times.searchsorted(pd.Timestamp(span[0]))),
        int(times.searchsorted(pd.Timestamp(span[1]))),
    )


def traded_symbol(reader: AuditReader, chosen: str | None) -> str:
    """The symbol to compare: `chosen`, else the only one the audit log has trades in."""
    symbols = reader.traded_symbols()
    symbol = chosen or (symbols[0] if len(symbols) == 1 else None)
    if symbol is None:
        raise ValueError(
            f"the audit log has trades in {', '.join(symbols) or 'no symbol'}; "
            "choose one with --symbol"
        )
    return symbol
