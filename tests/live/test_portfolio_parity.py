"""Several symbols, live equals the backtest: three symbols traded by one trader on one
simulated account, in lockstep, with MAX_OPEN_POSITIONS refusing entries, give the portfolio
backtest's trades, symbol by symbol, and the same refused entries; a strategy reading other
symbols' bars trades as the backtest does on the same bars."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from backtest.data import rates_to_frame
from backtest.engine import BacktestConfig, run_backtest
from backtest.portfolio import Limits, Member, run_portfolio
from backtest.sizing import Sizing
from live.audit_reader import AuditReader
from live.backtesting_bridge import get_strategy_from_file
from tests.live.conftest import ROOT, run_bars
from tests.live.test_management_parity import comparable, live_rows

SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY")
STRATEGY = ROOT / "backtest" / "strategies" / "rsi_reversion.py"


@pytest.mark.slow
def test_three_symbols_on_one_account_equal_the_portfolio_backtest(
    tmp_path, live_config, make_sim, make_trader
):
    params = "period=7,oversold=35,overbought=65"
    config = live_config(
        dry_run=False,
        symbols=SYMBOLS,
        strategy_path=str(STRATEGY),
        strategy_params=params,
        lot_size=0.1,
        max_open_positions=2,
        max_daily_loss_pct=0.0,
        max_trades_per_day=0,
    )
    terminal = make_sim(symbols=SYMBOLS, history_bars=400, n_bars=2000)
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 450)
    now = datetime.fromtimestamp(terminal.sim_time(), tz=UTC)
    reader = AuditReader(config.audit_db)
    members = []
    for symbol in SYMBOLS:
        rates = terminal.copy_rates_range(
            symbol, terminal.TIMEFRAME_H1, datetime(1970, 1, 2, tzinfo=UTC), now
        )
        bars = rates_to_frame(rates)
        first_decided = pd.Timestamp(reader.signal_span(symbol)[0])
        spec = terminal.server.feeds[symbol].symbol.as_symbol_spec()
        strategy = get_strategy_from_file(STRATEGY, params.split(","))
        start = int((bars["time"] < first_decided).sum())
        members.append(Member(symbol, bars, spec, strategy, symbol, trade_from=start))
    trader.shutdown()
    account = BacktestConfig(
        cash=float(terminal.config.balance),
        close_at_end=False,
        spread_mode="bid",
        sizing=Sizing("fixed", lots=0.1),
    )
    backtest = run_portfolio(members, account, Limits(max_open_positions=2))
    live = live_rows(config.audit_db)
    assert backtest.refused, "the limit must refuse entries"
    end = live["exit_time"].max()
    for symbol in SYMBOLS:
        mine = live[live["symbol"] == symbol]
        theirs = backtest.results[symbol].trades
        assert len(theirs) >= 5, f"{symbol} must trade"
        done = theirs[theirs["exit_time"] <= end]
        assert comparable(mine, {}) == comparable(done, {}), symbol
    refusals = reader.query(
        "SELECT COUNT(*) AS n FROM signals WHERE outcome LIKE '%MAX_OPEN_POSITIONS%'"
    )[0]["n"]
    assert refusals == sum(pd.Timestamp(r["time"]) <= end for r in backtest.refused)


@pytest.mark.slow
def test_a_strategy_reading_other_symbols_equals_the_backtest(
    tmp_path, live_config, make_sim, make_trader
):
    """UsdBasketSma trades EURUSD on a dollar basket of GBPUSD and USDJPY bars: the trader
    fetches them from the terminal, the backtest gets the same bars; trade for trade equal."""
    strategy_path = ROOT / "backtest" / "strategies" / "usd_basket_sma.py"
    params = "fast=5,slow=20,lookback=12"
    config = live_config(
        dry_run=False, strategy_path=str(strategy_path), strategy_params=params, lot_size=0.1
    )
    terminal = make_sim(symbols=SYMBOLS, history_bars=400, n_bars=2000)
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 350)
    now = datetime.fromtimestamp(terminal.sim_time(), tz=UTC)
    bars = {
        symbol: rates_to_frame(terminal.copy_rates_range(
            symbol, terminal.TIMEFRAME_H1, datetime(1970, 1, 2, tzinfo=UTC), now))
        for symbol in SYMBOLS
    }  # fmt: skip
    spec = terminal.server.feeds["EURUSD"].symbol.as_symbol_spec()
    trader.shutdown()
    first_decided = pd.Timestamp(AuditReader(config.audit_db).signal_span("EURUSD")[0])
    backtest = run_backtest(
        bars["EURUSD"],
        get_strategy_from_file(strategy_path, params.split(",")),
        spec=spec,
        config=BacktestConfig(close_at_end=False, spread_mode="bid", sizing=Sizing("fixed", 0.1)),
        trade_from=int((bars["EURUSD"]["time"] < first_decided).sum()),
        other_bars={s: bars[s] for s in ("GBPUSD", "USDJPY")},
    ).trades
    live = live_rows(config.audit_db)
    assert len(backtest) >= 5 and len(live) >= 3, "the replay must trade"
    done = backtest[backtest["exit_time"] <= live["exit_time"].max()]
    assert comparable(live, {}) == comparable(done, {})
