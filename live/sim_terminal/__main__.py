"""`python -m live.sim_terminal serve ...`: serve the simulated terminal to mt5linux clients."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from backtest.data import DataError
from live.sim_terminal.config import FaultConfig, SimConfig
from live.sim_terminal.server import serve
from live.sim_terminal.terminal import SimTerminal
from live.sim_terminal.trading_hours import MarketCalendar


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m live.sim_terminal", description="The simulated MetaTrader 5 terminal."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the MetaTrader5 API over RPyC (mt5linux)")
    run.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=18812, help="port (default 18812; 0 = any)")
    run.add_argument("--data", help="bars CSV to replay (default: generated bars)")
    run.add_argument("--symbol", help="symbol the CSV holds (default: the first of --symbols)")
    run.add_argument("--symbols", default="EURUSD", help="symbols, comma-separated")
    run.add_argument("--timeframe", default="H1", help="base timeframe of the bars")
    run.add_argument("--tz", default="UTC", help="timezone of naive times in the CSV")
    run.add_argument(
        "--speed",
        default="60",
        help="simulated seconds per second, or max: the clock moves only when a "
        "client steps it (sim_step_bar)",
    )
    run.add_argument("--state", type=Path, help="JSON file keeping the state across restarts")
    run.add_argument("--seed", type=int, default=7, help="seed of generated bars")
    run.add_argument("--bars", type=int, default=20_000, help="generated bars per symbol")
    run.add_argument(
        "--history-bars", type=int, default=500, help="bars of history before the clock starts"
    )
    run.add_argument("--start", type=float, help="clock start, epoch seconds")
    run.add_argument("--netting", action="store_true", help="netting account (default hedging)")
    run.add_argument("--real-account", action="store_true", help="report a REAL account")
    run.add_argument("--password", help="require this password at login")
    run.add_argument("--faults", default="", help="e.g. requote_rate=0.1,reply_lost_rate=0.05")
    run.add_argument(
        "--stop-slippage-points",
        type=int,
        default=0,
        help="stop-losses and buy/sell stop orders fill this many points worse than their "
        "level; take-profits and limits never slip (default 0: off)",
    )
    run.add_argument(
        "--max-requests-per-second",
        type=int,
        default=0,
        help="order_send requests beyond this many within one second of simulated time "
        "answer 10024, too many requests (default 0: no limit)",
    )
    _add_market_options(run)
    run.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (anyone reaching it can run code)",
    )
    return parser


def _add_market_options(run: argparse.ArgumentParser) -> None:
    """The server's clock and market hours (trading_hours.py)."""
    run.add_argument(
        "--server-tz",
        default="UTC",
        help="zone the server stamps API times in: UTC, UTC+2, Europe/Athens, NY+7 (the "
        "usual GMT+2/+3 broker); the sim_* controls stay UTC (default UTC)",
    )
    run.add_argument(
        "--sessions",
        default="",
        help="sessions table on the server's clock, e.g. 'EURUSD=Mon 00:00-Fri 23:55 break "
        "23:57-00:02; *=Mon 00:00-Sat 00:00'; 'forex' enforces the forex default's daily "
        "break (default: the forex week, break not enforced)",
    )
    run.add_argument(
        "--holidays",
        default="",
        help="dates closed all day (server clock): YYYY-MM-DD,YYYY-MM-DD or a file of them",
    )
    run.add_argument(
        "--rollover-spread-factor",
        type=float,
        default=1.0,
        help="spreads this many times wider around closures (default 1: off)",
    )
    run.add_argument(
        "--rollover-minutes",
        type=int,
        default=0,
        help="minutes before a closure and after the reopening the factor applies (default 0)",
    )


_OPTION_NAMES = {
    "server_tz": "--server-tz",
    "sessions": "--sessions",
    "holidays": "--holidays",
    "rollover_spread_factor": "--rollover-spread-factor",
    "rollover_minutes": "--rollover-minutes",
}


def check_market_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad market options naming the option (exit 2), before anything is built;
    `args.holidays` becomes the tuple of dates."""
    try:
        args.holidays = read_holidays(args.holidays)
        MarketCalendar.parse(
            server_tz=args.server_tz,
            sessions=args.sessions,
            holidays=args.holidays,
            rollover_spread_factor=args.rollover_spread_factor,
            rollover_minutes=args.rollover_minutes,
            keys=_OPTION_NAMES,
        )
    except ValueError as exc:
        parser.error(str(exc))


def read_holidays(text: str) -> tuple[str, ...]:
    """--holidays: comma-separated dates, or a file of dates (commas, spaces or one a line;
    # starts a comment)."""
    value = str(text).strip()
    path = Path(value)
    if value and path.is_file():
        lines = (line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())
        return tuple(part for line in lines for part in re.split(r"[,\s]+", line) if part)
    if value and (path.suffix or "/" in value or "\\" in value):
        raise ValueError(f"--holidays: no such file {value!r} (or give YYYY-MM-DD dates)")
    return tuple(part.strip() for part in value.split(",") if part.strip())


def config_from(args: argparse.Namespace) -> SimConfig:
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    speed = None if args.speed == "max" else float(args.speed)
    return SimConfig(
        symbols=symbols,
        timeframe=args.timeframe.upper(),
        data=args.data,
        data_symbol=args.symbol,
        data_tz=args.tz,
        n_bars=args.bars,
        history_bars=args.history_bars,
        seed=args.seed,
        start=args.start,
        speed=speed,
        netting=args.netting,
        real_account=args.real_account,
        password=args.password,
        stop_slippage_points=args.stop_slippage_points,
        max_requests_per_second=args.max_requests_per_second,
        server_tz=args.server_tz,
        sessions=args.sessions,
        holidays=tuple(args.holidays),
        rollover_spread_factor=args.rollover_spread_factor,
        rollover_minutes=args.rollover_minutes,
        faults=FaultConfig.parse(args.faults),
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_market_options(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        terminal = SimTerminal(config_from(args))
        serve(
            terminal,
            host=args.host,
            port=args.port,
            state=args.state,
            allow_remote=args.allow_remote,
        )
    except (ValueError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
