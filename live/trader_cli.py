"""The command line `python live/live_trader.py --strategy ...`: arguments to a validated
LiveConfig, the instance locks, the trader built and run, `--check`; exit codes 0 (done),
1 (a failure while running, the terminal unreachable) and 2 (usage and configuration).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from backtest.data import DataError
from backtest.strategy import StrategyError
from live.audit_logger import AuditLogger
from live.backtesting_bridge import get_strategy_from_file
from live.config import LiveConfig
from live.errors import AuditWriteError, BrokerError, BrokerUnavailable, ConfigError
from live.instance_lock import account_lock, database_lock, needs_account_lock
from live.json_logs import setup_logging
from live.live_trader import LiveTrader
from live.market_hours import load_calendar_setting
from live.mt5_connector import MT5Connector

logger = logging.getLogger("live.live_trader")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="live_trader.py",
        description="Trade a backtest strategy on MetaTrader 5 (or its simulator).",
    )
    parser.add_argument(
        "strategy_file",
        nargs="?",
        metavar="STRATEGY",
        help="strategy file, as --strategy (`live_trader.py my_strategy.py --dry-run`)",
    )
    parser.add_argument("--strategy", help="strategy file (path[:ClassName]); or STRATEGY_PATH")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="strategy parameter (repeatable); or STRATEGY_PARAMS",
    )
    parser.add_argument("--symbols", help="comma-separated symbols, e.g. EURUSD,GBPUSD")
    parser.add_argument("--timeframe", help="bar timeframe, e.g. H1")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="paper-trade: validate orders, never send them (the default)",
    )
    mode.add_argument(
        "--live", action="store_true", help="send real orders (same as DRY_RUN=false)"
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "mt5", "mt5linux", "sim"),
        help="which terminal: mt5 (the MetaTrader5 package, Windows), mt5linux (a terminal "
        "under Wine), sim (the built-in simulator), or auto: the package, falling back to the "
        "simulator in dry-run only (default: MT5_BACKEND, auto)",
    )
    parser.add_argument("--sim-data", help="bars CSV for the simulator (default: generated)")
    parser.add_argument("--sim-speed", help="simulated seconds per second, or max (lockstep)")
    parser.add_argument("--max-bars", type=int, help="stop after N closed bars")
    parser.add_argument("--config", help="settings file (default .env in the project root)")
    parser.add_argument("--interval", type=float, help="seconds between loop iterations")
    parser.add_argument("--db", help="audit database file (AUDIT_DB)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check settings, connection, account and symbols, then exit "
        "(0 ready, 1 problems); sends no order",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --check: print one JSON document (for monitoring), same exit codes",
    )
    return parser


def config_from_args(args: argparse.Namespace, *, need_strategy: bool = True) -> LiveConfig:
    overrides: dict[str, object] = {
        "strategy_path": args.strategy,
        "symbols": tuple(s.strip() for s in args.symbols.split(",") if s.strip())
        if args.symbols
        else None,
        "timeframe": args.timeframe,
        "backend": args.backend,
        "sim_data": args.sim_data,
        "sim_speed": args.sim_speed,
        "max_bars": args.max_bars,
        "interval_seconds": args.interval,
        "audit_db": args.db,
        "dry_run": False if args.live else (True if args.dry_run else None),
    }
    if args.param:
        overrides["strategy_params"] = ",".join(args.param)
    config = LiveConfig.load(args.config, overrides=overrides)
    if need_strategy and not config.strategy_path:
        raise ConfigError(
            "no strategy: name its file (live_trader.py PATH, or --strategy PATH) or set "
            "STRATEGY_PATH"
        )
    return config


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (2 for configuration and usage errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.strategy = _one_strategy(parser, args.strategy_file, args.strategy)
    if args.json and not args.check:
        parser.error("--json goes with --check")
    if args.check:
        return _check(args)
    logged = False
    try:
        config = config_from_args(args)
        try:
            setup_logging(config)
        except OSError as exc:
            raise ConfigError(
                f"LOG_DIR={config.log_dir}: cannot write the log there ({exc.strerror or exc})"
            ) from None
        logged = True
        with ExitStack() as held:  # the instance locks, released when the run ends
            trader = _build_trader(config, held)
            _install_signal_handlers(trader)
            if hasattr(trader.alerts, "start_commands"):
                trader.alerts.start_commands(trader)
            trader.run()  # start() may refuse too: a real account, a locked database, ...
    except (ConfigError, StrategyError, AuditWriteError, DataError) as exc:
        return _cannot_start(str(exc), EXIT_USAGE, logged)
    except BrokerUnavailable as exc:
        return _cannot_start(f"MT5 terminal unreachable: {exc}", EXIT_FAILURE, logged)
    except BrokerError as exc:
        return _cannot_start(str(exc), EXIT_USAGE, logged)
    return EXIT_OK


def _one_strategy(
    parser: argparse.ArgumentParser, positional: str | None, option: str | None
) -> str | None:
    """The strategy given as `STRATEGY` or `--strategy` (both only when they name the same
    file); two different ones are a usage error naming both (exit code 2)."""
    if positional and option and not _same_file(positional, option):
        parser.error(
            f"two strategies given: {positional} (positional) and --strategy {option}; give one"
        )
    return option or positional


def _same_file(first: str, second: str) -> bool:
    return (
        first == second or Path(first).expanduser().resolve() == Path(second).expanduser().resolve()
    )


def _check_informative(strategy: object, config: LiveConfig) -> None:
    """The strategy's informative timeframes must be whole multiples of TIMEFRAME (its
    informative symbols are asked for from the terminal like the traded ones)."""
    from backtest.data import timeframe_seconds
    from backtest.informative import InformativeError, check_multiples, declared_sources

    try:
        check_multiples(
            declared_sources(strategy),
            timeframe_seconds(config.timeframe),
            f"{config.strategy_path} on TIMEFRAME={config.timeframe}",
        )
    except InformativeError as exc:
        raise ConfigError(str(exc)) from None


def _build_trader(config: LiveConfig, held: ExitStack) -> LiveTrader:
    """Load the strategy and reach the terminal before the audit DB is created, so a run
    that cannot start leaves no empty database behind; take the instance locks (`held`
    keeps them) before anything is written."""
    strategy = get_strategy_from_file(config.strategy_path, config.strategy_param_pairs())
    _check_informative(strategy, config)
    calendar = load_calendar_setting(config)  # a bad row stops us before anything is written
    connector = MT5Connector(config)
    connector.connect()
    for symbol in config.symbols:
        connector.symbol_info(symbol)  # an unknown symbol stops us here
    command = _command_line(config)
    if needs_account_lock(dry_run=config.dry_run, backend=connector.backend):
        account = connector.account()
        held.enter_context(
            account_lock(
                config.lock_dir,
                login=int(account.login),
                server=str(account.server),
                magic=config.magic_number,
                command=command,
            )
        )
    held.enter_context(database_lock(config.audit_db, command=command))
    audit = AuditLogger(config.audit_db, key_file=config.audit_key_file, busy_timeout_s=2.0)
    return LiveTrader(
        config,
        connector=connector,
        strategy=strategy,
        audit=audit,
        alerts=_alerts(config, audit),
        calendar=calendar,
    )


def _command_line(config: LiveConfig) -> str:
    """This process's command line for the lock's holder note, secrets blanked."""
    text = " ".join([Path(sys.executable).name, *sys.argv])
    for secret in config.secrets():
        text = text.replace(secret, "***")
    return text


def _cannot_start(message: str, code: int, logged: bool) -> int:
    """One line on stderr: through the log's console handler when logging is set up (the
    log file keeps it too), else printed."""
    if logged:
        logger.error("cannot start: %s", message)
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def _check(args: argparse.Namespace) -> int:
    from live.doctor import print_config_error, run_check

    try:
        config = config_from_args(args, need_strategy=False)
    except ConfigError as exc:
        print_config_error(exc, as_json=args.json)
        return EXIT_USAGE
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")  # stderr
    return run_check(config, as_json=args.json)


def _alerts(config: LiveConfig, audit: AuditLogger) -> Any:
    from live.alerts import AlertSystem

    return AlertSystem.from_config(config, audit=audit)


def _install_signal_handlers(trader: LiveTrader) -> None:
    def handle(signum: int, _frame: object) -> None:
        trader.request_stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    if hasattr(signal, "SIGBREAK"):  # Ctrl+Break on Windows
        signal.signal(signal.SIGBREAK, handle)
