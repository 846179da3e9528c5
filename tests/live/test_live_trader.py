"""The orchestrator loop on the simulator: dry run, live parity with the backtest, kill switch,
limits, restarts, failure isolation, audit failure."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backtest.data import save_csv
from backtest.engine import BacktestConfig, run_backtest
from backtest.symbols import get_symbol_spec
from backtest.synthetic import generate_bars
from live.backtesting_bridge import get_strategy_from_file
from live.errors import ConfigError
from tests.live.conftest import ROOT, SMA_CROSS, RecordingAlerts, WallClock, run_bars

FAST = ["fast=5", "slow=12"]


def rows(db: Path, sql: str, *params: object) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, params).fetchall()


def open_until_position(trader, terminal, limit: int = 400) -> None:
    for _ in range(limit):
        run_bars(trader, terminal, 1)
        if trader.state.positions:
            return
    raise AssertionError(f"no position opened in {limit} bars")


@pytest.fixture
def start_trader(live_config, make_sim, make_trader):
    """Factory: a started trader (SMA 5/12 unless told) on a stepped simulator:
    (config, terminal, trader)."""

    def factory(*, sim: dict | None = None, **settings: object):
        config = live_config(**{"strategy_params": "fast=5,slow=12", **settings})
        terminal = make_sim(**(sim or {}))
        trader = make_trader(config, terminal)
        trader.start()
        return config, terminal, trader

    return factory


def test_dry_run_paper_trades_without_sending_anything(live_config, make_sim, make_trader):
    config = live_config(dry_run=True, max_bars=300, strategy_params="fast=5,slow=12")
    terminal = make_sim()
    summary = make_trader(config, terminal).run()

    assert summary.bars == 300 and summary.entries > 3
    assert terminal.initialize()  # the trader shut its connection down
    assert terminal.positions_total() == 0
    assert terminal.history_deals_get(0, 2**40) == ()  # the terminal never saw an order
    orders = rows(config.audit_db, "SELECT * FROM orders WHERE status = 'filled'")
    assert orders and all(o["dry_run"] == 1 for o in orders)
    trades = rows(config.audit_db, "SELECT * FROM trades")
    assert len(trades) == summary.trades_closed > 0
    assert round(sum(t["pnl"] for t in trades), 2) == round(summary.realized_pnl, 2)
    assert len(rows(config.audit_db, "SELECT * FROM signals")) == 300


@pytest.mark.parametrize(("seed", "with_spread"), [(11, False), (23, True)])
def test_live_trades_on_the_simulator_match_the_backtest(
    tmp_path, live_config, make_sim, make_trader, seed, with_spread
):
    """Equal costs: no spread, or the bars' own spread with MT5's bid bars on both sides."""
    bars = generate_bars("EURUSD", "H1", 900, seed=seed)
    if not with_spread:
        bars = bars.assign(spread=0)
    csv = tmp_path / "eurusd.csv"
    save_csv(bars, csv)
    config = live_config(
        dry_run=False,
        strategy_params="fast=5,slow=12",
        lot_size=0.1,
        max_daily_loss_pct=0,
        max_trades_per_day=0,
    )
    terminal = make_sim(data=str(csv), history_bars=100)
    make_trader(config, terminal).run()

    strategy = get_strategy_from_file(str(SMA_CROSS), FAST)
    first_decision = 99  # the clock starts at bar 100's open: bar 99 is the first closed one
    expected = run_backtest(
        bars,
        strategy,
        spec=get_symbol_spec("EURUSD"),
        config=BacktestConfig(close_at_end=False, spread_mode="bid"),
        trade_from=first_decision,
    ).trades
    live = pd.DataFrame(
        [dict(r) for r in rows(config.audit_db, "SELECT * FROM trades ORDER BY entry_time")]
    )
    assert len(expected) > 20 and len(live) == len(expected)
    assert list(pd.to_datetime(live["entry_time"])) == list(expected["entry_time"])
    assert list(pd.to_datetime(live["exit_time"])) == list(expected["exit_time"])
    assert list(live["entry_price"]) == pytest.approx(list(expected["entry_price"]), abs=1e-9)
    assert list(live["exit_price"]) == pytest.approx(list(expected["exit_price"]), abs=1e-9)
    assert list(live["direction"]) == [str(d) for d in expected["direction"]]
    assert list(live["volume"]) == pytest.approx(list(expected["volume"]))
    assert list(live["pnl"]) == pytest.approx(list(expected["pnl"]), abs=0.011)


def test_halt_kill_switch_blocks_entries_but_lets_exits_run(start_trader):
    config, terminal, trader = start_trader()
    open_until_position(trader, terminal)
    config.kill_switch_file.write_text("halt\n")
    run_bars(trader, terminal, 200)

    assert not trader.state.positions  # the strategy's exit still closed it
    refused = rows(config.audit_db, "SELECT * FROM signals WHERE outcome LIKE 'refused: kill%'")
    assert refused and all(r["outcome"] == "refused: kill_switch_halt" for r in refused)
    assert rows(config.audit_db, "SELECT * FROM events WHERE kind = 'kill_switch_on'")

    config.kill_switch_file.unlink()
    open_until_position(trader, terminal)
    assert rows(config.audit_db, "SELECT * FROM events WHERE kind = 'kill_switch_off'")


def test_close_all_flattens_once_and_stays_halted_across_a_restart(make_trader, start_trader):
    config, terminal, trader = start_trader(dry_run=False)
    open_until_position(trader, terminal)
    config.kill_switch_file.write_text("close_all")
    run_bars(trader, terminal, 1)
    assert terminal.positions_total() == 0
    assert trader.state.kill_switch.level == "halt"
    last_trade = rows(config.audit_db, "SELECT * FROM trades ORDER BY id DESC LIMIT 1")[0]
    assert last_trade["exit_reason"] == "kill_switch"
    trader.shutdown()

    closes = len(rows(config.audit_db, "SELECT * FROM orders WHERE kind = 'close'"))
    again = make_trader(config, terminal)
    again.start()
    run_bars(again, terminal, 150)
    assert again.state.kill_switch.level == "halt"
    assert terminal.positions_total() == 0
    assert len(rows(config.audit_db, "SELECT * FROM orders WHERE kind = 'close'")) == closes


def test_reduce_closes_what_the_strategy_leaves_and_opens_nothing(start_trader):
    config, terminal, trader = start_trader()
    open_until_position(trader, terminal)
    entries = trader.summary.entries
    config.kill_switch_file.write_text("reduce")
    run_bars(trader, terminal, 200)
    assert not trader.state.positions and trader.summary.entries == entries


def test_real_account_is_refused_unless_allowed(live_config, make_sim, make_trader):
    terminal = make_sim(real_account=True)
    with pytest.raises(ConfigError, match="REAL account"):
        make_trader(live_config(dry_run=False), terminal).start()
    make_trader(live_config(dry_run=True), terminal).start()  # dry run may watch it
    make_trader(live_config(dry_run=False, allow_real_account=True), terminal).start()


def test_max_trades_per_day_refuses_further_entries(start_trader):
    config, terminal, trader = start_trader(strategy_params="fast=2,slow=4", max_trades_per_day=1)
    run_bars(trader, terminal, 48)
    opened = rows(
        config.audit_db,
        "SELECT substr(bar_time, 1, 10) AS day, count(*) AS n FROM "
        "signals WHERE outcome = 'executed' AND action LIKE 'open%' GROUP BY day",
    )
    assert opened and max(r["n"] for r in opened) == 1
    refused = rows(
        config.audit_db, "SELECT * FROM signals WHERE outcome LIKE 'refused: disabled: %trades%'"
    )
    assert refused


def test_daily_loss_limit_stops_entries_until_the_next_day(start_trader):
    config, terminal, trader = start_trader(
        strategy_params="fast=2,slow=4",
        lot_size=1.0,
        max_daily_loss_pct=0.001,
        max_trades_per_day=0,
    )
    run_bars(trader, terminal, 72)
    limits = rows(config.audit_db, "SELECT * FROM events WHERE kind = 'daily_limit'")
    assert limits and "loss" in limits[0]["message"]
    assert rows(config.audit_db, "SELECT * FROM events WHERE kind = 'daily_limit_reset'")


PICKY = (
    "from backtest.strategies.sma_cross import SmaCross\n\n\n"
    "class Picky(SmaCross):\n"
    "    def signals(self, bars):\n"
    "        if bars['close'].iloc[-1] > 50:\n"
    "            raise RuntimeError('cannot trade yen crosses')\n"
    "        return super().signals(bars)\n"
)


def test_a_failing_symbol_is_paused_and_does_not_stop_the_others(
    tmp_path, live_config, make_sim, make_trader
):
    picky = tmp_path / "picky.py"
    picky.write_text(PICKY)
    config = live_config(
        strategy_path=str(picky), symbols=("USDJPY", "EURUSD"), strategy_params="fast=5,slow=12"
    )
    terminal = make_sim(symbols=("USDJPY", "EURUSD"))
    alerts = RecordingAlerts()
    trader = make_trader(config, terminal, alerts=alerts)
    trader.start()
    for _ in range(100):
        trader.iterate()
        trader.iterate()  # the same bar again: skipped, not failed twice
        terminal.sim_step_bar()
    errors = rows(config.audit_db, "SELECT * FROM events WHERE kind = 'strategy_error'")
    assert len(errors) == 20 and all(e["symbol"] == "USDJPY" for e in errors)
    assert "cannot trade yen crosses" in errors[0]["message"]
    (paused,) = rows(config.audit_db, "SELECT * FROM events WHERE kind = 'symbol_paused'")
    assert paused["symbol"] == "USDJPY" and "failed on 20 bars in a row" in paused["message"]
    assert len(rows(config.audit_db, "SELECT * FROM signals WHERE symbol = 'EURUSD'")) == 100
    assert trader.summary.entries > 0 and trader.summary.bars == 100
    paged = [a for a in alerts.sent if a[0] == "error"]
    assert [a[2] for a in paged] == ["error", "critical"]  # the failure once, the pause once
    assert "USDJPY paused" in paged[1][1]
    assert trader.last_status["paused_symbols"].keys() == {"USDJPY"}


def test_a_strategy_failing_on_every_bar_still_ends_a_max_bars_run(tmp_path):
    picky = tmp_path / "picky.py"
    picky.write_text(PICKY)
    env = tmp_path / "trader.env"
    env.write_text(
        f"AUDIT_DB={tmp_path / 'audit.db'}\nLOG_DIR={tmp_path / 'logs'}\nMT5_BACKEND=sim\n"
        f"KILL_SWITCH_FILE={tmp_path / 'KILL'}\nSTRATEGY_MAX_FAILURES=5\n"
        f"LOCK_DIR={tmp_path / 'locks'}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "live" / "live_trader.py"),
            "--config",
            str(env),
            "--strategy",
            str(picky),
            "--symbols",
            "USDJPY",
            "--dry-run",
            "--max-bars",
            "40",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "--max-bars 40 reached" in done.stderr
    assert done.stderr.count("USDJPY paused") == 1
    errors = rows(tmp_path / "audit.db", "SELECT * FROM events WHERE kind = 'strategy_error'")
    assert len(errors) == 5


def test_a_failed_exit_is_retried_on_the_next_bar(start_trader):
    config, terminal, trader = start_trader(dry_run=False, order_max_retries=1)
    open_until_position(trader, terminal)
    (ticket,) = trader.state.positions
    terminal.sim_set_faults(requote_rate=1.0)
    for _ in range(200):  # until the strategy's exit is tried and fails
        run_bars(trader, terminal, 1)
        if rows(
            config.audit_db,
            "SELECT * FROM orders WHERE kind = 'close' AND status = "
            "'failed' AND position_ticket = ?",
            ticket,
        ):
            break
    else:
        raise AssertionError("no exit was tried")
    held = trader.state.positions[ticket]
    wanted = trader.targets.target(held.symbol).direction
    assert wanted != (1 if held.type == 0 else -1)  # still held, though no longer wanted
    terminal.sim_set_faults(requote_rate=0.0)
    run_bars(trader, terminal, 1)
    assert ticket not in {p.ticket for p in terminal.positions_get()}
    (trade,) = rows(config.audit_db, "SELECT * FROM trades WHERE position_ticket = ?", ticket)
    assert trade["exit_reason"] == "exit_retry"
    assert rows(config.audit_db, "SELECT * FROM signals WHERE outcome = 'exit_retried: 1/1 closed'")


def test_margin_limit_counts_in_the_account_currency(start_trader):
    """USDJPY 0.5 lots at 1:100 needs 500 USD, 5 % of equity (not 500 x the yen price)."""
    _config, terminal, trader = start_trader(
        dry_run=False,
        symbols=("USDJPY",),
        sim={"symbols": ("USDJPY",)},
        lot_size=0.5,
        max_margin_pct=10.0,
    )
    open_until_position(trader, terminal)
    assert terminal.positions_get()[0].volume == 0.5


def test_restart_adopts_open_positions_and_never_repeats_an_order(make_trader, start_trader):
    config, terminal, trader = start_trader(dry_run=False)
    open_until_position(trader, terminal)
    ticket = next(iter(trader.state.positions))
    trader.shutdown()

    again = make_trader(config, terminal)
    again.start()
    assert set(again.state.positions) == {ticket}
    again.iterate()  # the same closed bar: already decided, nothing sent
    assert terminal.positions_total() == 1
    orders = len(rows(config.audit_db, "SELECT * FROM orders"))
    run_bars(again, terminal, 30)  # trades on: every order new, none sent twice
    assert len(rows(config.audit_db, "SELECT * FROM orders")) > orders
    comments = [d.comment for d in terminal.history_deals_get(0, 2**40)]
    assert len(comments) == len(set(comments))


def test_symbol_allowing_only_ioc_fills_with_ioc(live_config, make_sim, make_trader):
    config = live_config(dry_run=False, symbols=("GBPUSD",), strategy_params="fast=5,slow=12")
    terminal = make_sim(symbols=("GBPUSD",))
    trader = make_trader(config, terminal)
    trader.start()
    open_until_position(trader, terminal)
    assert terminal.positions_total() == 1
    failed = rows(config.audit_db, "SELECT * FROM orders WHERE retcode = 10030")
    assert not failed  # the filling mode was right the first time


def test_unwritable_audit_log_stops_entries_and_resumes_after(live_config, make_sim, make_trader):
    config = live_config(strategy_params="fast=2,slow=4")
    terminal = make_sim()
    wall = WallClock()
    trader = make_trader(config, terminal, busy_timeout_s=0.05, wall_clock=wall)
    trader.start()
    blocker = sqlite3.connect(config.audit_db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    entries = trader.summary.entries
    for _ in range(20):
        run_bars(trader, terminal, 1)
        wall.advance(10)
    assert not trader.state.entries_enabled
    assert trader.summary.entries == entries
    blocker.execute("ROLLBACK")
    blocker.close()
    for _ in range(40):
        run_bars(trader, terminal, 1)
        wall.advance(10)
    assert trader.state.entries_enabled and trader.summary.entries > entries


def test_a_position_closed_while_the_trader_was_down_gets_its_trade_row(make_trader, start_trader):
    config, terminal, trader = start_trader(dry_run=False)
    open_until_position(trader, terminal)
    position = terminal.positions_get()[0]  # the trader dies here, without a shutdown
    tick = terminal.symbol_info_tick("EURUSD")
    closing = terminal.order_send(
        {
            "action": 1,
            "symbol": "EURUSD",
            "volume": position.volume,
            "position": position.ticket,
            "type": 1 if position.type == 0 else 0,
            "deviation": 20,
            "magic": config.magic_number,
            "price": tick.bid if position.type == 0 else tick.ask,
            "type_filling": 1,
            "comment": "closed by hand",
        }
    )
    assert closing.retcode == 10009

    make_trader(config, terminal).start()
    (trade,) = rows(
        config.audit_db, "SELECT * FROM trades WHERE position_ticket = ?", position.ticket
    )
    assert trade["exit_client_order_id"] == "closed by hand"
    assert trade["entry_price"] == position.price_open


@pytest.mark.parametrize("dry_run", [True, False])
def test_stops_fire_inside_bars_and_are_recorded(dry_run, start_trader):
    rsi = str(SMA_CROSS.with_name("rsi_reversion.py"))
    config, terminal, trader = start_trader(
        dry_run=dry_run,
        strategy_path=rsi,
        strategy_params="period=5,atr_period=5,sl_atr=0.5,tp_atr=0.5,oversold=35,overbought=65",
    )
    run_bars(trader, terminal, 400)
    reasons = {r["exit_reason"] for r in rows(config.audit_db, "SELECT * FROM trades")}
    assert {"sl", "tp"} <= reasons


def test_paper_positions_survive_a_restart(make_trader, start_trader):
    config, terminal, trader = start_trader(dry_run=True)
    open_until_position(trader, terminal)
    (ticket,) = trader.state.positions
    orders = len(rows(config.audit_db, "SELECT * FROM orders"))
    trader.shutdown()

    again = make_trader(config, terminal)
    again.start()
    again.iterate()
    assert set(again.state.positions) == {ticket}
    assert len(rows(config.audit_db, "SELECT * FROM orders")) == orders


def test_the_heartbeat_shows_a_new_position_at_once(start_trader):
    config, terminal, trader = start_trader()
    run_bars(trader, terminal, 1)  # the first heartbeat; the next is due in 15 wall seconds
    open_until_position(trader, terminal)
    (ticket,) = trader.state.positions
    beat = rows(
        config.audit_db, "SELECT data FROM events WHERE kind = 'heartbeat' ORDER BY id DESC LIMIT 1"
    )[0]["data"]
    assert [p["ticket"] for p in json.loads(beat)["positions"]] == [ticket]


@pytest.mark.parametrize("change", ["real", "login"])
def test_a_live_trader_stops_when_the_terminal_changes_account(start_trader, change):
    config, terminal, trader = start_trader(dry_run=False)
    run_bars(trader, terminal, 2)
    account = terminal.server.account  # switched in the terminal's window, say
    if change == "real":
        account.trade_mode = terminal.ACCOUNT_TRADE_MODE_REAL
    else:
        account.login += 1
    orders = len(rows(config.audit_db, "SELECT * FROM orders"))
    trader.iterate()
    assert trader.stopping
    (event,) = rows(config.audit_db, "SELECT * FROM events WHERE kind = 'account_changed'")
    assert ("REAL" if change == "real" else "switched") in event["message"]
    assert len(rows(config.audit_db, "SELECT * FROM orders")) == orders


def test_status_says_entries_are_stopped_while_the_kill_switch_is_on(start_trader):
    config, terminal, trader = start_trader()
    run_bars(trader, terminal, 1)
    assert trader.last_status["entries_enabled"] is True
    config.kill_switch_file.write_text("halt")
    run_bars(trader, terminal, 1)
    assert trader.last_status["entries_enabled"] is False
    assert trader.last_status["disabled_reasons"] == ["kill switch halt"]
    assert "entries stopped: kill switch halt" in trader.status_text()
