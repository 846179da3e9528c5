"""`python -m backtest`: see backtest/cli.py."""

from backtest.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
