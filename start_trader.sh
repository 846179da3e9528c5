#!/bin/sh
# Start the live trader on Linux or macOS: creates the virtual environment on first use, then
# passes every argument to live/live_trader.py. Example:
#   ./start_trader.sh --strategy backtest/strategies/sma_cross.py --dry-run
# Settings come from .env (copy .env.template). Stop with Ctrl+C, or create the KILL_SWITCH
# file to halt new entries.
set -e
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment in .venv ..."
    python3 -m venv .venv
    .venv/bin/pip install -r requirements.txt
fi
exec .venv/bin/python live/live_trader.py "$@"
