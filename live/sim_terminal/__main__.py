"""`python -m live.sim_terminal serve ...`: serve the simulated terminal to mt5linux clients."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from backtest.data import DataError
from live.sim_terminal.config import FaultConfig, SimConfig
from live.sim_terminal.server import serve
from live.sim_terminal.terminal import SimTerminal


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
    run.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (anyone reaching it can run code)",
    )
    return parser


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
        faults=FaultConfig.parse(args.faults),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
