"""Position management live equals the backtest, trade for trade: each shipped example that
moves stops, exits partly, enters with pending orders or exits on time is replayed through
the simulator in lockstep, and its trade rows (partial exits included) are the backtest's on
the same bars: entry and exit bar, prices, volume and reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from backtest.data import rates_to_frame
from backtest.engine import BacktestConfig, run_backtest
from backtest.sizing import Sizing
from live.audit_reader import AuditReader
from live.backtesting_bridge import get_strategy_from_file
from tests.live.conftest import ROOT, run_bars

STRATEGIES = ROOT / "backtest" / "strategies"
PENDING = "channel=8,fast=5,slow=20,atr_period=10,expiry_bars=3,max_bars=12"
CASES = {  # id: (strategy, parameters, exit reasons that must occur, account and symbol)
    "donchian_chandelier": ("donchian_chandelier", "channel=10,period=10,atr_period=10",
                            {"sl"}, {}),
    "breakeven_partial": ("breakeven_partial", "fast=5,slow=20,atr_period=10,max_bars=30",
                          {"partial", "sl", "time"}, {}),
    "breakeven_partial_netting": ("breakeven_partial",
                                  "fast=5,slow=20,atr_period=10,max_bars=30",
                                  {"partial", "sl", "time"}, {"netting": True}),
    "pending_breakout": ("pending_breakout", PENDING, {"sl", "time"}, {}),
    # a symbol without specified expiries: GTC orders the trader removes when due
    "pending_breakout_gtc_only": ("pending_breakout", PENDING, {"sl", "time"},
                                  {"expiration_mode": 1 | 2}),
}  # fmt: skip


def live_rows(db: Path) -> pd.DataFrame:
    rows = AuditReader(db).trades()
    frame = pd.DataFrame(rows)
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame.sort_values(["entry_time", "id"], kind="stable", ignore_index=True)


def comparable(frame: pd.DataFrame, reasons: dict[str, str]) -> list[tuple]:
    return [
        (
            t.entry_time.floor("h"),  # the bar: a stop fills inside it
            t.exit_time.floor("h"),
            t.direction,
            round(float(t.entry_price), 5),
            round(float(t.exit_price), 5),
            round(float(t.volume), 2),
            reasons.get(str(t.exit_reason), str(t.exit_reason)),
        )
        for t in frame.itertuples()
    ]


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_lockstep_replay_equals_the_backtest(case, tmp_path, live_config, make_sim, make_trader):
    name, params, must_have, setting = CASES[case]
    path = STRATEGIES / f"{name}.py"
    config = live_config(
        dry_run=False, strategy_path=str(path), strategy_params=params, lot_size=0.1
    )
    terminal = make_sim(history_bars=400, n_bars=2400, netting=setting.get("netting", False))
    if "expiration_mode" in setting:
        feed = terminal.server.feeds["EURUSD"]
        feed.symbol = replace(feed.symbol, expiration_mode=setting["expiration_mode"])
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 1500)
    now = datetime.fromtimestamp(terminal.sim_time(), tz=UTC)
    rates = terminal.copy_rates_range(
        "EURUSD", terminal.TIMEFRAME_H1, datetime(1970, 1, 2, tzinfo=UTC), now
    )
    terminal_deals = terminal.history_deals_get(0, 2**40) or ()
    trader.shutdown()
    bars = rates_to_frame(rates)
    reader = AuditReader(config.audit_db)
    first_decided = pd.Timestamp(reader.signal_span("EURUSD")[0])
    first = int((bars["time"] < first_decided).sum())
    strategy = get_strategy_from_file(path, params.split(","))
    spec = terminal.server.feeds["EURUSD"].symbol.as_symbol_spec()  # the broker's spec
    backtest = run_backtest(
        bars,
        strategy,
        spec=spec,
        config=BacktestConfig(
            close_at_end=False, spread_mode="bid", sizing=Sizing(mode="fixed", lots=0.1)
        ),
        trade_from=first,
    ).trades
    live = live_rows(config.audit_db)
    assert len(backtest) >= 10, "the replay must trade"
    assert must_have <= set(backtest["exit_reason"].astype(str))
    done = backtest[backtest["exit_time"] <= live["exit_time"].max()]
    assert comparable(live, {}) == comparable(done, {})
    if name == "pending_breakout":  # each fill of a pending entry is in its order's rows
        deals = terminal_deals
        recorded = {
            int(r["broker_deal"])
            for r in reader.query("SELECT broker_deal FROM orders WHERE broker_deal > 0")
        }
        entries = [d for d in deals if d.entry == 0]
        assert entries and all(int(d.ticket) in recorded for d in entries)
        filled = reader.query(
            "SELECT COUNT(DISTINCT client_order_id) AS n FROM orders "
            "WHERE kind IN ('pending', 'open') AND status = 'filled'"
        )[0]["n"]
        assert filled == len(entries)
    if "expiration_mode" in setting:  # the trader, not the server, removed the orders
        removed = reader.query(
            "SELECT COUNT(*) AS n FROM orders WHERE kind = 'cancel' AND status = 'intent' "
            "AND detail LIKE '%its bars have passed%'"
        )[0]["n"]
        assert removed > 0


BAD_SIZE_ON_SOME_BARS = '''
import numpy as np
import pandas as pd
from backtest.strategy import Strategy

class BadSizeAtNoon(Strategy):
    """Long from 01:00 to midnight; its size column is out of range on the noon bars."""

    def signals(self, bars):
        hour = bars["time"].dt.hour.to_numpy()
        size = np.where(hour == 12, 1.5, 1.0)
        return pd.DataFrame({"position": (hour > 0).astype(int), "size": size}, index=bars.index)
'''


def test_a_bad_management_value_skips_its_bar_live_with_an_event_naming_it(
    tmp_path, live_config, make_sim, make_trader
):
    path = tmp_path / "bad_size.py"
    path.write_text(BAD_SIZE_ON_SOME_BARS)
    config = live_config(dry_run=False, strategy_path=str(path))
    terminal = make_sim()
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 30)
    events = [e for e in AuditReader(config.audit_db).events_of_kind("strategy_error")]
    assert events, "the noon bar must be refused"
    assert all("size 1.5" in e["message"] and "12:00" in e["message"] for e in events)
    assert len(events) <= 2  # only the noon bars: the others decide (and hold the long)
    signals = AuditReader(config.audit_db).query("SELECT COUNT(*) AS n FROM signals")[0]["n"]
    assert signals >= 27
    opened = AuditReader(config.audit_db).query(
        "SELECT COUNT(*) AS n FROM signals WHERE action = 'open_buy' AND outcome = 'executed'"
    )[0]["n"]
    assert opened >= 1  # the good bars trade
    trader.shutdown()


@pytest.mark.parametrize("level", ["", "close_all"])
def test_the_kill_switch_removes_waiting_entries_within_one_loop(
    level, live_config, make_sim, make_trader
):
    config = live_config(
        dry_run=False,
        strategy_path=str(STRATEGIES / "pending_breakout.py"),
        strategy_params="channel=8,fast=5,slow=20,atr_period=10,expiry_bars=50",
        lot_size=0.1,
    )
    terminal = make_sim(history_bars=400)
    trader = make_trader(config, terminal)
    trader.start()
    for _ in range(500):
        trader.iterate()
        if terminal.orders_get():  # placed at this bar's open, waiting for its price
            break
        terminal.sim_step_bar()
    (order,) = terminal.orders_get()
    positions = len(terminal.positions_get())
    config.kill_switch_file.write_text(level)  # halt (empty) or close_all
    trader.iterate()
    assert terminal.orders_get() == ()  # gone at once: it must not fill while halted
    reader = AuditReader(config.audit_db)
    (removal,) = reader.query(
        "SELECT * FROM orders WHERE kind = 'cancel' AND status = 'intent' AND position_ticket = ?",
        (order.ticket,),
    )
    assert "kill" in removal["detail"]
    run_bars(trader, terminal, 30)
    assert terminal.orders_get() == ()
    assert len(terminal.positions_get()) <= positions  # nothing opened while halted
    trader.shutdown()


SCALING = '''
import numpy as np
import pandas as pd
from backtest.strategy import Strategy

class Scaling(Strategy):
    """Long from 02:00 to 20:00: half a position, scaled to a whole at 06:00, back to half
    at 12:00 (a partial exit); with max_bars, a time exit first."""

    max_bars: int = 0

    def signals(self, bars):
        hour = bars["time"].dt.hour.to_numpy()
        position = ((hour >= 2) & (hour < 20)).astype(int)
        size = np.where(hour < 6, 0.5, np.where(hour < 12, 1.0, 0.5))
        limit = float(self.max_bars) if self.max_bars else np.nan
        return pd.DataFrame(
            {"position": position, "size": size, "max_bars": limit}, index=bars.index
        )
'''


@pytest.mark.parametrize(
    ("netting", "max_bars"),
    [(True, 0), (False, 0), (True, 8), (False, 8)],
    ids=["netting", "hedging", "netting-time-exit", "hedging-time-exit"],
)
def test_scale_ins_and_outs_live_equal_the_backtest(
    netting, max_bars, tmp_path, live_config, make_sim, make_trader
):
    path = tmp_path / "scaling.py"
    path.write_text(SCALING)
    # a scale-in on a hedging account is a position of its own: allow two per symbol
    config = live_config(
        dry_run=False,
        strategy_path=str(path),
        strategy_params=f"max_bars={max_bars}",
        lot_size=0.2,
        max_positions_per_symbol=2,
    )
    terminal = make_sim(netting=netting)
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 120)
    now = datetime.fromtimestamp(terminal.sim_time(), tz=UTC)
    rates = terminal.copy_rates_range(
        "EURUSD", terminal.TIMEFRAME_H1, datetime(1970, 1, 2, tzinfo=UTC), now
    )
    trader.shutdown()
    bars = rates_to_frame(rates)
    reader = AuditReader(config.audit_db)
    first = int((bars["time"] < pd.Timestamp(reader.signal_span("EURUSD")[0])).sum())
    backtest = run_backtest(
        bars,
        get_strategy_from_file(path, [f"max_bars={max_bars}"]),
        spec=terminal.server.feeds["EURUSD"].symbol.as_symbol_spec(),
        config=BacktestConfig(
            close_at_end=False, spread_mode="bid", sizing=Sizing(mode="fixed", lots=0.2)
        ),
        trade_from=first,
    ).trades
    live = live_rows(config.audit_db)
    done = backtest[backtest["exit_time"] <= live["exit_time"].max()]
    reasons = set(done["exit_reason"].astype(str))
    assert {"time"} <= reasons if max_bars else (done["exit_reason"] == "partial").sum() >= 3
    if netting:  # one position: the entry price is the average, as MT5 nets it
        assert comparable(live, {}) == comparable(done, {})
    else:  # a position per scale-in: the rows differ, the money does not
        assert live["pnl"].sum() == pytest.approx(done["pnl"].sum(), abs=0.05)
        assert live["volume"].sum() == pytest.approx(done["volume"].sum())


def test_a_halt_removes_waiting_entries_of_symbols_it_does_not_reconcile(
    live_config, make_sim, make_trader
):
    """A pending order of this trader on a symbol the loop does not decide on (paused,
    failing, or dropped from SYMBOLS since) goes too: none may fill while halted."""
    config = live_config(dry_run=False, symbols=("EURUSD",))
    terminal = make_sim(symbols=("EURUSD", "GBPUSD"))
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 2)
    tick = terminal.symbol_info_tick("GBPUSD")
    placed = terminal.order_send(
        {
            "action": terminal.TRADE_ACTION_PENDING,
            "symbol": "GBPUSD",
            "volume": 0.01,
            "type": terminal.ORDER_TYPE_BUY_LIMIT,
            "price": round(tick.ask - 0.0050, 5),
            "magic": config.magic_number,
            "comment": "left by an earlier run",
            "type_time": terminal.ORDER_TIME_GTC,
            "type_filling": terminal.ORDER_FILLING_RETURN,
        }
    )
    assert placed.retcode == terminal.TRADE_RETCODE_PLACED
    trader.iterate()
    assert len(terminal.orders_get(symbol="GBPUSD")) == 1  # not halted: left alone
    config.kill_switch_file.write_text("")
    trader.iterate()
    assert terminal.orders_get(symbol="GBPUSD") == ()
    trader.shutdown()


def test_pending_entries_count_toward_the_portfolio_limits(live_config, make_sim, make_trader):
    config = live_config(
        dry_run=False,
        strategy_path=str(STRATEGIES / "pending_breakout.py"),
        strategy_params="channel=8,fast=5,slow=20,atr_period=10,expiry_bars=50",
        symbols=("EURUSD", "GBPUSD"),
        max_open_positions=1,
        lot_size=0.1,
    )
    terminal = make_sim(symbols=("EURUSD", "GBPUSD"), history_bars=400)
    trader = make_trader(config, terminal)
    trader.start()
    most = 0
    for _ in range(400):
        trader.iterate()
        waiting = len(terminal.orders_get() or ()) + len(terminal.positions_get() or ())
        most = max(most, waiting)
        terminal.sim_step_bar()
    refused = AuditReader(config.audit_db).query(
        "SELECT COUNT(*) AS n FROM signals WHERE outcome LIKE '%MAX_OPEN_POSITIONS%'"
    )[0]["n"]
    assert most == 1 and refused > 0  # a waiting order took the one place
    trader.shutdown()
