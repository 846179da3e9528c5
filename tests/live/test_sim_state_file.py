"""The served simulator's state file: a snapshot plus an append-only history journal that
restores one consistent moment, also after a save that died half-way."""

from __future__ import annotations

import json

import pytest

from live.sim_terminal import SimConfig, SimTerminal
from live.sim_terminal.state_file import StateFile, StateFileError


def trade(terminal, side: int, comment: str, position: int = 0) -> int:
    tick = terminal.symbol_info_tick("EURUSD")
    request = {
        "action": terminal.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": side,
        "price": tick.ask if side == 0 else tick.bid,
        "deviation": 20,
        "magic": 7,
        "comment": comment,
        "type_filling": terminal.ORDER_FILLING_FOK,
    }
    if position:
        request["position"] = position
    result = terminal.order_send(request)
    assert result.retcode == terminal.TRADE_RETCODE_DONE, result
    return result.order


@pytest.fixture
def busy(make_sim):
    """A terminal with a closed trade, an open position and a pending order."""
    terminal = make_sim()
    opened = trade(terminal, 0, "first")
    trade(terminal, 1, "first-close", position=opened)
    trade(terminal, 0, "second")
    bid = terminal.symbol_info_tick("EURUSD").bid
    placed = terminal.order_send(
        {
            "action": terminal.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": terminal.ORDER_TYPE_BUY_LIMIT,
            "price": round(bid - 0.01, 5),
            "magic": 7,
            "comment": "pending",
            "type_filling": terminal.ORDER_FILLING_RETURN,
        }
    )
    assert placed.retcode == terminal.TRADE_RETCODE_PLACED, placed
    terminal.sim_step_bar()
    return terminal


def restored(make_sim, path):
    fresh = make_sim()
    assert StateFile(path).load_into(fresh)
    return fresh


def test_round_trip_restores_positions_orders_history_and_clock(busy, make_sim, tmp_path):
    store = StateFile(tmp_path / "state.json")
    store.save(busy)
    assert restored(make_sim, store.path).sim_state() == busy.sim_state()


def test_history_is_appended_not_rewritten(busy, make_sim, tmp_path):
    store = StateFile(tmp_path / "state.json")
    store.save(busy)
    lines_before = store.journal.read_text().splitlines()
    trade(busy, 1, "third")
    store.save(busy)
    store.save(busy)  # nothing new: nothing appended
    lines = store.journal.read_text().splitlines()
    assert lines[: len(lines_before)] == lines_before
    assert len(lines) == len(lines_before) + 2  # one history order, one deal
    snapshot = json.loads(store.path.read_text())
    assert "deals" not in snapshot and "history_orders" not in snapshot
    assert restored(make_sim, store.path).sim_state() == busy.sim_state()


def test_lines_of_a_save_that_died_before_its_snapshot_are_dropped(busy, make_sim, tmp_path):
    store = StateFile(tmp_path / "state.json")
    store.save(busy)
    before = busy.sim_state()
    with store.journal.open("a") as journal:  # appended, then the process died
        journal.write('{"deal": {"ticket": 999999, "comm')
    again = restored(make_sim, store.path)
    assert again.sim_state() == before
    reopened = StateFile(store.path)
    reopened.load_into(make_sim())
    trade(again, 1, "after")
    reopened.save(again)
    assert restored(make_sim, store.path).sim_state() == again.sim_state()


def test_an_older_all_inline_state_file_still_loads(busy, make_sim, tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(busy.sim_state()))
    store = StateFile(path)
    again = make_sim()
    assert store.load_into(again) and again.sim_state() == busy.sim_state()
    store.save(again)
    assert "deals" not in json.loads(path.read_text())
    assert restored(make_sim, path).sim_state() == busy.sim_state()


def test_a_missing_journal_is_an_error_naming_it(busy, make_sim, tmp_path):
    store = StateFile(tmp_path / "state.json")
    store.save(busy)
    store.journal.unlink()
    with pytest.raises(StateFileError, match=r"state\.json\.journal"):
        StateFile(store.path).load_into(make_sim())


def test_no_state_yet_loads_nothing(make_sim, tmp_path):
    assert StateFile(tmp_path / "absent.json").load_into(make_sim()) is False


def saved(store):
    snapshot = json.loads(store.path.read_text())
    lines = store.journal.read_text().splitlines() if store.journal.exists() else []
    deals = [json.loads(line)["deal"] for line in lines if '"deal"' in line]
    return snapshot, deals


def test_a_stop_loss_fired_by_a_running_clock_reaches_the_state_file(tmp_path):
    wall = [1000.0]
    # 36,000 simulated seconds per wall second, stepped 0.001 s: 36 s of market per call,
    # far below the clock's own once-a-second save, so only the SL itself can save it
    terminal = SimTerminal(
        SimConfig(
            symbols=("EURUSD",), n_bars=3000, history_bars=200, speed=36_000.0, wall=lambda: wall[0]
        )
    )
    assert terminal.initialize()
    store = StateFile(tmp_path / "state.json")
    terminal.on_change = lambda: store.save(terminal)
    tick = terminal.symbol_info_tick("EURUSD")
    sl = round(tick.bid - 0.0015, 5)
    opened = terminal.order_send(
        {
            "action": terminal.TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": 0,
            "price": tick.ask,
            "sl": sl,
            "magic": 7,
            "type_filling": terminal.ORDER_FILLING_FOK,
        }
    )
    assert opened.retcode == terminal.TRADE_RETCODE_DONE
    assert [p["ticket"] for p in saved(store)[0]["positions"]] == [opened.order]
    for _ in range(20_000):
        wall[0] += 0.001
        if terminal.positions_total() == 0:  # this very call fired the SL
            break
    assert terminal.positions_total() == 0
    snapshot, deals = saved(store)
    assert snapshot["positions"] == []
    assert snapshot["account"]["balance"] == terminal.account_info().balance
    assert (deals[-1]["reason"], deals[-1]["comment"]) == (
        terminal.DEAL_REASON_SL,
        f"[sl {sl:.5f}]",
    )
    again = SimTerminal(SimConfig(symbols=("EURUSD",), n_bars=3000, history_bars=200))
    assert StateFile(store.path).load_into(again)
    assert again.server.positions == {} and len(again.server.deals) == 2


def test_a_running_clock_is_saved_about_once_a_wall_second(tmp_path):
    wall = [1000.0]
    terminal = SimTerminal(
        SimConfig(n_bars=3000, history_bars=200, speed=60.0, wall=lambda: wall[0])
    )
    assert terminal.initialize()
    store = StateFile(tmp_path / "state.json")
    terminal.on_change = lambda: store.save(terminal)
    store.save(terminal)
    started = saved(store)[0]["clock"]
    wall[0] += 0.5
    terminal.version()
    assert saved(store)[0]["clock"] == started  # not every call: each save costs fsyncs
    wall[0] += 0.6
    terminal.version()
    assert saved(store)[0]["clock"] == pytest.approx(started + 66.0, abs=1e-3)


def test_symbol_select_reaches_the_state_file(make_sim, tmp_path):
    terminal = make_sim()
    store = StateFile(tmp_path / "state.json")
    terminal.on_change = lambda: store.save(terminal)
    assert terminal.symbol_select("USDCHF", True)
    assert "USDCHF" in saved(store)[0]["selected"]
    assert terminal.symbol_select("USDCHF", False)
    assert "USDCHF" not in saved(store)[0]["selected"]
