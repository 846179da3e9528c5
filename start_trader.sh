#!/bin/sh
# Start the live trader on Linux or macOS: sets up the virtual environment in .venv on first
# use (and again whenever requirements.txt changed or an install was interrupted), then
# passes every argument to live/live_trader.py. Example:
#   ./start_trader.sh --strategy backtest/strategies/sma_cross.py --dry-run
# Settings come from .env (copy .env.template). Stop with Ctrl+C, or create the KILL_SWITCH
# file to halt new entries.
set -e
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
# a copy of requirements.txt, written only after pip succeeded: its absence means "install"
MARKER=.venv/.installed-requirements

if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt "$MARKER"; then
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        echo "error: $PYTHON not found; install Python 3.11 or newer" >&2
        exit 2
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "error: $("$PYTHON" -V 2>&1) is too old; the trader needs Python 3.11 or newer" \
             "(set PYTHON=/path/to/python3.11 to choose one)" >&2
        exit 2
    fi
    echo "Setting up the virtual environment in .venv ..."
    if ! "$PYTHON" -m venv .venv; then
        echo "error: $PYTHON -m venv failed; on Debian or Ubuntu install it with" \
             "'sudo apt-get install python3-venv', then run this again" >&2
        exit 2
    fi
    if ! .venv/bin/python -m pip install -r requirements.txt; then
        echo "error: installing requirements.txt failed (see above); run this again once" \
             "fixed" >&2
        exit 1
    fi
    cp requirements.txt "$MARKER"
fi
exec .venv/bin/python live/live_trader.py "$@"
