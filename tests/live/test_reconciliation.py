"""The trader as a reconciler: after a restart the broker follows the target within one loop
(a flip during downtime included), missed entries are chased only by the rule and said so,
and the live target equals the backtest's position on every bar for every shipped strategy."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest

from backtest.strategy import compute_signals
from live.backtesting_bridge import get_strategy_from_file
from live.mt5_connector import MT5Connector
from tests.live.conftest import ROOT, run_bars

STRATEGIES = {
    "sma_cross": "fast=5,slow=12",
    "rsi_reversion": "",
    "donchian_breakout": "",
}


def held_directions(terminal, symbol: str = "EURUSD") -> list[int]:
    return [1 if p.type == 0 else -1 for p in terminal.positions_get(symbol=symbol)]


def target_now(trader, symbol: str = "EURUSD") -> int:
    """The strategy's position on the last closed bar, as the backtest would hold it."""
    return trader.bridge.decide(symbol, trader.bridge.latest_bars(symbol)).position


def hold(trader, terminal, direction: int) -> None:
    for _ in range(400):
        run_bars(trader, terminal, 1)
        if held_directions(terminal) == [direction]:
            return
    raise AssertionError(f"never held {direction}")


def step_until_flip(trader, terminal, direction: int, then_bars: int = 0) -> None:
    """Move the market (the trader is down) to the bar where the target flips to
    `direction`, and `then_bars` bars on while it stays there."""
    for _ in range(400):
        terminal.sim_step_bar()
        if target_now(trader) != direction:
            continue
        for _ in range(then_bars):
            terminal.sim_step_bar()
        if target_now(trader) == direction:
            return
    raise AssertionError("the target never flipped")


@pytest.fixture
def downtime(live_config, make_sim, make_trader):
    """Factory: a live trader holding a short that then stops without a word, the market
    moved on until the target is long (and `then_bars` more), and a restarted trader."""

    def factory(then_bars: int = 0, **settings: object):
        config = live_config(dry_run=False, strategy_params="fast=2,slow=5", **settings)
        terminal = make_sim()
        first = make_trader(config, terminal)
        first.start()
        hold(first, terminal, -1)
        step_until_flip(first, terminal, 1, then_bars)
        restarted = make_trader(config, terminal)
        restarted.start()
        return config, terminal, restarted

    return factory


def test_a_flip_during_downtime_is_followed_within_one_loop_of_the_restart(downtime):
    _, terminal, trader = downtime()
    trader.iterate()
    assert held_directions(terminal) == [1]


def test_a_missed_entry_is_not_chased_but_the_exit_is_and_the_skip_is_recorded(downtime):
    config, terminal, trader = downtime(then_bars=3)
    trader.iterate()
    assert held_directions(terminal) == []  # the short is gone; the long was not chased
    with sqlite3.connect(config.audit_db) as conn:
        told = conn.execute(
            "SELECT message FROM events WHERE kind = 'entry_not_chased' ORDER BY id"
        ).fetchall()
        (close,) = conn.execute(
            "SELECT detail FROM orders WHERE kind = 'close' AND status = 'intent' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert "not chased" in told[-1][0] and "ENTRY_CHASE_BARS=0" in told[-1][0]
    assert close.startswith("exit retry")
    trader.iterate()
    with sqlite3.connect(config.audit_db) as conn:
        again = conn.execute("SELECT count(*) FROM events WHERE kind = 'entry_not_chased'")
        assert again.fetchone()[0] == len(told)  # said once


def test_a_missed_entry_is_chased_within_the_rule(downtime):
    _, terminal, trader = downtime(then_bars=3, entry_chase_bars=5)
    trader.iterate()
    assert held_directions(terminal) == [1]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_the_live_target_is_the_backtest_position_on_every_bar(
    name, live_config, make_sim, make_trader
):
    """A long replay, with a restart in the middle: every decision's target equals the
    position the backtest holds on that bar, computed on all the bars from the start."""
    config = live_config(
        strategy_path=str(ROOT / "backtest" / "strategies" / f"{name}.py"),
        strategy_params=STRATEGIES[name],
        dry_run=True,
    )
    terminal = make_sim(n_bars=3000, history_bars=300)
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 250)
    restarted = make_trader(config, terminal)  # a new process: the history fetched again
    restarted.start()
    run_bars(restarted, terminal, 250)

    every_bar = MT5Connector(config, api=terminal).rates("EURUSD", "H1", 5000)
    strategy = get_strategy_from_file(config.strategy_path, config.strategy_param_pairs())
    backtest = compute_signals(strategy, every_bar).position
    by_time = {t.to_pydatetime(): int(p) for t, p in zip(every_bar["time"], backtest, strict=True)}
    with sqlite3.connect(config.audit_db) as conn:
        decided = conn.execute("SELECT bar_time, position FROM signals ORDER BY id").fetchall()
    assert len(decided) >= 499
    differ = [
        (bar, live, by_time[datetime.fromisoformat(bar)])
        for bar, live in decided
        if live != by_time[datetime.fromisoformat(bar)]
    ]
    assert differ == []
    assert len({p for _, p in decided}) > 1  # the strategy did change its mind


STOPPED = (
    "from backtest.strategies.sma_cross import SmaCross\n\n\n"
    "class Stopped(SmaCross):\n"
    "    def signals(self, bars):\n"
    "        out = super().signals(bars)\n"
    "        out['sl_distance'] = 0.004\n"
    "        out['tp_distance'] = 0.008\n"
    "        return out\n"
)


def test_stops_a_server_left_out_are_set_again_once(tmp_path, live_config, make_sim, make_trader):
    from live.sim_terminal import FaultConfig

    strategy = tmp_path / "stopped.py"
    strategy.write_text(STOPPED)
    config = live_config(
        strategy_path=str(strategy), strategy_params="fast=2,slow=5", dry_run=False
    )
    terminal = make_sim(faults=FaultConfig(stops_ignored_rate=1.0))
    trader = make_trader(config, terminal)
    trader.start()
    for _ in range(300):
        trader.iterate()
        if trader.summary.stop_changes:
            break
        terminal.sim_step_bar()
    else:
        raise AssertionError("no stop change happened")
    (position,) = terminal.positions_get()
    row = trader.audit.reader.entry_stops(position.ticket)
    assert (position.sl, position.tp) == row and position.sl > 0
    changes = trader.summary.stop_changes
    for _ in range(3):
        trader.iterate()  # the stops are where they belong: nothing more is sent
    assert trader.summary.stop_changes == changes
    with sqlite3.connect(config.audit_db) as conn:
        kinds = {k for (k,) in conn.execute("SELECT DISTINCT kind FROM orders")}
    assert "modify" in kinds


def test_a_pending_order_against_the_target_is_cancelled(live_config, make_sim, make_trader):
    config = live_config(dry_run=False, strategy_params="fast=2,slow=5")
    terminal = make_sim()
    trader = make_trader(config, terminal)
    trader.start()
    hold(trader, terminal, -1)
    tick = terminal.symbol_info_tick("EURUSD")
    placed = terminal.order_send(
        {
            "action": terminal.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.01,
            "type": terminal.ORDER_TYPE_BUY_LIMIT,
            "price": round(tick.ask - 0.005, 5),
            "magic": config.magic_number,
            "comment": "left over",
            "type_time": terminal.ORDER_TIME_GTC,
        }
    )
    assert placed.retcode == 10008 and terminal.orders_total() == 1
    trader.iterate()  # the target is short: a buy waiting to fill goes against it
    assert terminal.orders_total() == 0
    with sqlite3.connect(config.audit_db) as conn:
        (status,) = conn.execute(
            "SELECT status FROM orders WHERE kind = 'cancel' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert status == "filled"
