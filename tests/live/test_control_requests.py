"""Requests to the trader from outside its process (live/control_requests.py) and the trader's
answer (live/control_desk.py, the kill switch in live/state_manager.py): the file protocol,
then a real trader on the simulator acting on them within one loop and recording who asked."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from live.control_requests import (
    AGENT_CHARS,
    Origin,
    clear_kill_switch,
    close_requests,
    control_folder,
    forget,
    kill_switch_origin,
    request_close,
    set_kill_switch,
    take_resume_origin,
)
from live.state_manager import kill_switch_file_level
from tests.live.test_live_trader import open_until_position, rows

DASHBOARD = Origin.now("dashboard", address="127.0.0.1", agent="Mozilla/5.0 (X11) Chrome/1")


def events(db, kind: str) -> list[dict]:
    found = rows(db, "SELECT * FROM events WHERE kind = ? ORDER BY id", kind)
    return [{**dict(r), "data": json.loads(r["data"] or "{}")} for r in found]


# ---------------------------------------------------------------- the file protocol


def test_a_kill_switch_request_is_the_file_people_write_plus_who_asked(tmp_path):
    path = tmp_path / "KILL_SWITCH"
    set_kill_switch(path, "reduce", DASHBOARD)
    assert kill_switch_file_level(path, "halt") == "reduce"  # the trader's reader, unchanged
    assert path.read_text().splitlines()[0] == "reduce"
    assert kill_switch_origin(path) == DASHBOARD
    path.write_text("close_all\n")  # by hand: no origin
    assert kill_switch_origin(path) is None
    with pytest.raises(ValueError, match="halt, reduce, close_all"):
        set_kill_switch(path, "panic", DASHBOARD)
    assert path.read_text() == "close_all\n"  # a refused request leaves the file as it was


def test_resume_leaves_who_asked_for_the_trader_once(tmp_path):
    path = tmp_path / "KILL_SWITCH"
    assert not clear_kill_switch(path, DASHBOARD)  # nothing on: nothing written
    assert not control_folder(path).exists()
    set_kill_switch(path, "halt", DASHBOARD)
    telegram = Origin.now("telegram", address="chat 42")
    assert clear_kill_switch(path, telegram) and not path.exists()
    assert take_resume_origin(path) == telegram
    assert take_resume_origin(path) is None  # taken once


def test_switching_on_again_withdraws_a_resume_not_yet_seen(tmp_path):
    path = tmp_path / "KILL_SWITCH"
    set_kill_switch(path, "halt", DASHBOARD)
    clear_kill_switch(path, DASHBOARD)
    set_kill_switch(path, "halt", DASHBOARD)
    assert take_resume_origin(path) is None


def test_close_requests_oldest_first_and_bad_files_say_why(tmp_path):
    path = tmp_path / "KILL_SWITCH"
    first = request_close(path, 7, DASHBOARD, at=datetime(2024, 3, 8, 12, 0, 5, tzinfo=UTC))
    second = request_close(path, 3, DASHBOARD, at=datetime(2024, 3, 8, 12, 0, 6, tzinfo=UTC))
    folder = control_folder(path)
    (folder / ".close-half-written.json.tmp").write_text("{")  # an atomic write in flight
    (folder / "close-zzz-bad.json").write_text('{"action": "close_position", "ticket": true}')
    found = close_requests(path)
    assert [r.file for r in found[:2]] == [first.file, second.file]  # not by ticket
    assert found[0].origin == DASHBOARD and found[0].key != found[1].key
    assert found[2].ticket == 0 and "names no position ticket" in found[2].problem
    for request in found:
        forget(request)
    assert close_requests(path) == []
    with pytest.raises(ValueError, match="positive integer"):
        request_close(path, 0, DASHBOARD)


def test_an_origin_keeps_printable_text_only_and_trims_the_agent():
    origin = Origin("dashboard", "10.0.0.1\n", "A" * 500 + "\x1b[31m")
    assert origin.address == "10.0.0.1" and origin.agent == "A" * AGENT_CHARS
    assert Origin.from_dict({"via": "dashboard", "agent": 5}).agent == "5"
    assert Origin.from_dict({"address": "x"}) is None and Origin.from_dict("text") is None


# ---------------------------------------------------------------- the trader's answer


@pytest.fixture
def trading(live_config, make_sim, make_trader):
    """A live trader (sent orders) on the simulator with a position open: (config, sim, trader)."""
    config = live_config(strategy_params="fast=5,slow=12", dry_run=False)
    terminal = make_sim(symbols=("EURUSD", "GBPUSD"))
    trader = make_trader(config, terminal)
    trader.start()
    open_until_position(trader, terminal)
    return config, terminal, trader


def test_the_kill_switch_event_says_who_switched_it_on_and_off(trading):
    config, _, trader = trading
    set_kill_switch(config.kill_switch_file, "halt", DASHBOARD)
    trader.iterate()  # one loop
    assert trader.state.kill_switch.level == "halt"
    (on,) = events(config.audit_db, "kill_switch_on")
    assert on["data"]["origin"] == DASHBOARD.as_dict() and on["data"]["level"] == "halt"
    assert "asked from dashboard (127.0.0.1, Mozilla/5.0 (X11) Chrome/1)" in on["message"]

    clear_kill_switch(config.kill_switch_file, DASHBOARD)
    trader.iterate()
    assert trader.state.kill_switch.level is None
    (off,) = events(config.audit_db, "kill_switch_off")
    assert off["data"]["origin"]["via"] == "dashboard" and "asked from dashboard" in off["message"]
    assert not (control_folder(config.kill_switch_file) / "resume.json").exists()

    # switched on and off by the dashboard between two loops: the trader saw neither, and the
    # note must not explain the next removal, done by hand
    set_kill_switch(config.kill_switch_file, "halt", DASHBOARD)
    clear_kill_switch(config.kill_switch_file, DASHBOARD)
    trader.iterate()
    config.kill_switch_file.write_text("halt\n")
    trader.iterate()
    config.kill_switch_file.unlink()
    trader.iterate()
    (_, hand_on), (_, hand_off) = (
        events(config.audit_db, f"kill_switch_{s}") for s in ("on", "off")
    )
    assert "origin" not in hand_on["data"] and hand_off["data"] == {}
    assert hand_off["message"] == "kill-switch file removed: trading resumes"


def test_a_close_request_closes_the_traders_own_position_within_one_loop(trading):
    config, terminal, trader = trading
    (ticket,) = trader.state.positions
    request_close(config.kill_switch_file, ticket, DASHBOARD)
    trader.iterate()  # no bar passes: the request alone closes it
    assert ticket not in {p.ticket for p in terminal.positions_get()}
    (event,) = events(config.audit_db, "close_requested")
    assert event["data"]["ticket"] == ticket and event["data"]["status"] == "filled"
    assert event["data"]["origin"] == DASHBOARD.as_dict()
    assert "closed on the request of dashboard (127.0.0.1" in event["message"]
    # through the executor: a write-ahead intent, then the fill, under one client id
    cid = event["data"]["client_order_id"]
    sql = "SELECT status FROM orders WHERE client_order_id = ? ORDER BY id"
    statuses = [r["status"] for r in rows(config.audit_db, sql, cid)]
    assert statuses[0] == "intent" and statuses[-1] == "filled"
    assert close_requests(config.kill_switch_file) == []  # taken once
    trader.iterate()
    assert len(events(config.audit_db, "close_requested")) == 1


def test_a_close_request_for_another_programs_position_is_refused_and_recorded(trading):
    config, terminal, trader = trading
    tick = terminal.symbol_info_tick("GBPUSD")
    other = terminal.order_send({
        "action": terminal.TRADE_ACTION_DEAL, "symbol": "GBPUSD", "volume": 0.1,
        "type": terminal.ORDER_TYPE_BUY, "price": tick.ask, "deviation": 20, "magic": 4242,
        "comment": "by hand", "type_filling": trader.connector.filling_mode("GBPUSD"),
    }).order  # fmt: skip
    request_close(config.kill_switch_file, other, DASHBOARD)
    request_close(config.kill_switch_file, 999_999, DASHBOARD)
    trader.iterate()
    assert other in {p.ticket for p in terminal.positions_get()}  # left alone
    foreign, missing = events(config.audit_db, "close_refused")
    if foreign["data"]["ticket"] != other:
        foreign, missing = missing, foreign
    assert "magic number 4242" in foreign["message"] and "left alone" in foreign["message"]
    assert foreign["data"]["origin"] == DASHBOARD.as_dict()
    assert "no such open position" in missing["message"] and missing["data"]["ticket"] == 999_999
    assert trader.state.positions  # the trader's own position was not touched either
    assert close_requests(config.kill_switch_file) == []
