"""One intrabar fill rule (backtest/fills.py) in all three places that fill: the backtest
engine, the paper broker (dry run) and the simulator's trade server, run on the same bars.

The bars are built so that the rule decides: a bar holds both the stop-loss and the
take-profit of a long (the high is nearer the open, so the take-profit comes first), a
sell stop fills on the way down from a high that passed its later stop-loss first, and a
bar gaps through a stop-loss (it fills at the open)."""

from __future__ import annotations

import pandas as pd
import pytest

from backtest.data import save_csv
from backtest.engine import BacktestConfig, run_backtest
from backtest.sizing import Sizing
from live.audit_reader import AuditReader
from live.backtesting_bridge import get_strategy_from_file
from tests.live.conftest import run_bars

START = pd.Timestamp("2024-01-01 00:00", tz="UTC")  # a Monday: no weekend in 90 bars
SCRIPT = '''
import numpy as np
import pandas as pd
from backtest.strategy import Strategy

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")


class Scripted(Strategy):
    """Decisions at fixed bars: a long with SL/TP, a pending sell stop, a long gapped out."""

    def signals(self, bars):
        k = ((bars["time"] - T0) / pd.Timedelta(hours=1)).to_numpy().astype(int)
        position = np.zeros(len(k), dtype=int)
        position[(k >= 30) & (k < 40)] = 1
        position[(k >= 50) & (k < 60)] = -1
        position[(k >= 70) & (k < 80)] = 1
        short = (k >= 50) & (k < 60)
        return pd.DataFrame(
            {
                "position": position,
                "sl_distance": np.where(short, np.nan, 0.002),
                "tp_distance": np.where(short, np.nan, 0.002),
                "sl": np.where(short, 1.1015, np.nan),
                "entry_type": np.where(short, "stop", "market"),
                "entry_price": np.where(short, 1.0990, np.nan),
                "expiry_bars": np.where(short, 3.0, np.nan),
            },
            index=bars.index,
        )
'''


def scripted_bars() -> pd.DataFrame:
    rows = [(1.1000, 1.1004, 1.0996, 1.1000)] * 90
    rows[33] = (1.1000, 1.1025, 1.0970, 1.1000)  # long: SL 1.098, TP 1.102; high nearer
    rows[52] = (1.1000, 1.1018, 1.0985, 1.0995)  # up past 1.1015 first, then the stop fills
    rows[54] = (1.1000, 1.1020, 1.0996, 1.1010)  # the short's stop-loss
    rows[73] = (1.0970, 1.0975, 1.0965, 1.0970)  # opens below the long's SL 1.098: gap
    o, h, lo, c = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "time": pd.date_range(START, periods=90, freq="h"),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "tick_volume": 100,
            "spread": 4,
            "real_volume": 0,
        }
    )


def rows_of(frame: pd.DataFrame) -> list[tuple]:
    return [
        (
            pd.Timestamp(t.entry_time).floor("h"),
            pd.Timestamp(t.exit_time).floor("h"),
            t.direction,
            round(float(t.entry_price), 5),
            round(float(t.exit_price), 5),
            str(t.exit_reason),
        )
        for t in frame.itertuples()
    ]


@pytest.fixture
def scripted(tmp_path):
    csv = tmp_path / "EURUSD_H1.csv"
    save_csv(scripted_bars(), csv)
    strategy = tmp_path / "scripted.py"
    strategy.write_text(SCRIPT)
    return csv, strategy


def traded(dry_run, scripted, live_config, make_sim, make_trader, db) -> list[tuple]:
    csv, strategy = scripted
    config = live_config(dry_run=dry_run, strategy_path=str(strategy), lot_size=0.1, audit_db=db)
    terminal = make_sim(data=str(csv), history_bars=20)
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 69)
    trader.shutdown()
    reader = AuditReader(config.audit_db)
    if dry_run:  # the short's entry was a virtual pending order, filled on the bar's path
        fills = [e["message"] for e in reader.events_of_kind("paper_order")]
        assert any("filled" in text for text in fills), fills
    return rows_of(pd.DataFrame(reader.trades()).sort_values("id"))


def test_engine_paper_broker_and_simulator_fill_the_same_bars_alike(
    scripted, live_config, make_sim, make_trader, tmp_path
):
    _, strategy = scripted
    bars = scripted_bars()
    backtest = run_backtest(
        bars,
        get_strategy_from_file(strategy),
        spec=make_sim().server.feeds["EURUSD"].symbol.as_symbol_spec(),
        config=BacktestConfig(spread_mode="bid", sizing=Sizing(mode="fixed", lots=0.1)),
    )
    expected = rows_of(backtest.trades)
    assert [r[2:] for r in expected] == [
        ("long", 1.10004, 1.10204, "tp"),  # TP first: the high is nearer the open
        ("short", 1.099, 1.1015, "sl"),  # filled after the high: its SL only later
        ("long", 1.10004, 1.097, "sl"),  # a gap through the SL fills at the open
    ]
    simulator = traded(False, scripted, live_config, make_sim, make_trader, tmp_path / "sim.db")
    assert simulator == expected
    paper = traded(True, scripted, live_config, make_sim, make_trader, tmp_path / "paper.db")
    assert paper == expected
