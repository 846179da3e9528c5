"""Trader state: trading days in the configured timezone, limits that survive restarts,
portfolio limits, one decision per bar, kill-switch file levels."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime

import pytest

from live.audit_logger import AuditLogger
from live.state_manager import StateManager

Position = namedtuple("Position", "ticket symbol volume type")
Account = namedtuple("Account", "equity margin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def make_state(live_config):
    clock = {"now": utc("2024-03-04 12:00")}
    loggers: list[AuditLogger] = []

    def factory(**overrides: object) -> StateManager:
        config = live_config(**overrides)
        audit = AuditLogger(config.audit_db)
        loggers.append(audit)
        return StateManager(config, audit, now=lambda: clock["now"])

    factory.clock = clock
    yield factory
    for audit in loggers:
        audit.close()


@pytest.mark.parametrize(
    ("moment", "day", "start"),
    [
        ("2024-03-04 21:59", "2024-03-03", "2024-03-03 22:00"),  # 16:59 in New York (EST)
        ("2024-03-04 22:00", "2024-03-04", "2024-03-04 22:00"),  # 17:00 in New York
        ("2024-03-11 21:00", "2024-03-11", "2024-03-11 21:00"),  # after the DST switch (EDT)
    ],
)
def test_trading_day_follows_the_configured_timezone_and_hour(make_state, moment, day, start):
    state = make_state(trading_day_timezone="America/New_York", trading_day_start_hour=17)
    assert state.trading_day(utc(moment)) == (day, utc(start))


def test_day_start_equity_survives_a_restart(make_state):
    state = make_state()
    assert state.day_start_equity(10_000.0) == 10_000.0
    assert state.day_start_equity(9_000.0) == 10_000.0
    restarted = make_state()
    assert restarted.day_start_equity(9_000.0) == 10_000.0  # a restart cannot reset the loss
    assert "daily loss 10.00%" in restarted.daily_limit_reason(9_000.0)

    make_state.clock["now"] = utc("2024-03-05 00:00")
    assert restarted.day_start_equity(9_000.0) == 9_000.0  # a new day starts afresh
    assert restarted.daily_limit_reason(9_000.0) is None


def test_a_daily_limit_holds_for_the_rest_of_the_day_even_if_equity_recovers(make_state):
    state = make_state(max_daily_loss_pct=3.0)
    assert state.daily_limit_reason(10_000.0) is None
    reason = state.daily_limit_reason(9_650.0)
    assert "daily loss 3.50%" in reason
    assert state.record_daily_limit(reason)
    assert state.daily_limit_reason(10_200.0) == reason  # recovered, still stopped today
    restarted = make_state(max_daily_loss_pct=3.0)
    assert restarted.daily_limit_reason(10_200.0) == reason  # and after a restart
    assert not restarted.record_daily_limit(reason)  # recorded once, not at every start
    make_state.clock["now"] = utc("2024-03-05 00:00")
    assert restarted.daily_limit_reason(10_200.0) is None  # the next trading day


@pytest.mark.parametrize(
    ("limits", "volume", "margin", "refusal"),
    [
        ({"max_open_positions": 2}, 0.1, 10.0, "MAX_OPEN_POSITIONS 2"),
        (
            {"max_positions_per_symbol": 1},
            0.1,
            10.0,
            "MAX_POSITIONS_PER_SYMBOL 1 reached for EURUSD",
        ),
        (
            {"max_total_lots": 0.5},
            0.2,
            10.0,
            "MAX_TOTAL_LOTS 0.5 would be exceeded (0.4 open + 0.2)",
        ),
        ({"max_margin_pct": 5.0}, 0.1, 400.0, "MAX_MARGIN_PCT 5% would be exceeded (6.0% of"),
        ({"max_positions_per_symbol": 2, "max_total_lots": 0.6}, 0.2, 10.0, None),
    ],
)
def test_portfolio_limits_refuse_an_entry_that_would_break_them(
    make_state, limits, volume, margin, refusal
):
    defaults = {
        "max_open_positions": 0,
        "max_positions_per_symbol": 5,
        "max_total_lots": 0.0,
        "max_margin_pct": 0.0,
    }
    state = make_state(**{**defaults, **limits})
    state.sync_positions([Position(1, "EURUSD", 0.2, 0), Position(2, "GBPUSD", 0.2, 1)])
    answer = state.entry_refusal("EURUSD", volume, margin, Account(equity=10_000.0, margin=200))
    assert answer == refusal if refusal is None else refusal in answer


def test_one_decision_per_bar_even_after_a_restart(make_state):
    state = make_state()
    bar = utc("2024-03-04 10:00")
    assert state.is_new_bar("EURUSD", bar)
    state.audit.record_signal(symbol="EURUSD", bar_time=bar, action="none", outcome="no_action")
    state.mark_processed("EURUSD", bar)
    assert not state.is_new_bar("EURUSD", bar)
    restarted = make_state()
    assert not restarted.is_new_bar("EURUSD", bar)
    assert restarted.is_new_bar("EURUSD", utc("2024-03-04 11:00"))


@pytest.mark.parametrize(
    ("content", "default", "level"),
    [
        ("", "halt", "halt"),
        ("", "close_all", "close_all"),
        ("REDUCE please", "halt", "reduce"),
        ("close_all\n", "halt", "close_all"),
        ("panic", "reduce", "reduce"),  # an unknown word falls back to KILL_SWITCH_ACTION
    ],
)
def test_kill_switch_file_levels(make_state, content, default, level):
    state = make_state(kill_switch_action=default)
    state.config.kill_switch_file.write_text(content)
    assert state.update_kill_switch().level == level
    assert state.update_kill_switch() is None  # unchanged: nothing recorded twice
    state.config.kill_switch_file.unlink()
    assert state.update_kill_switch().level is None
    kinds = [e["kind"] for e in state.audit.reader.recent_events(limit=10)]
    assert kinds == ["kill_switch_off", "kill_switch_on"]


def test_kill_switch_state_is_restored_from_the_audit_log(make_state):
    state = make_state()
    state.config.kill_switch_file.write_text("reduce")
    state.update_kill_switch()
    restarted = make_state()
    assert restarted.kill_switch.level == "reduce" and restarted.kill_switch.blocks_entries
