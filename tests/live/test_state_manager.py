"""Trader state: trading days in the configured timezone (by default the broker's), limits
that survive restarts, portfolio limits, one decision per bar, kill-switch file levels."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime

import pytest

from live.audit_logger import AuditLogger
from live.broker_time import BrokerClock
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


@pytest.mark.parametrize(
    ("moment", "day", "start"),
    [
        ("2024-03-08 21:59", "2024-03-08", "2024-03-07 22:00"),  # Friday, winter: UTC+2
        ("2024-03-08 22:00", "2024-03-09", "2024-03-08 22:00"),
        ("2024-03-10 20:59", "2024-03-10", "2024-03-09 22:00"),  # the US switch day: 23 h
        ("2024-03-10 21:00", "2024-03-11", "2024-03-10 21:00"),  # summer: UTC+3
        ("2024-03-11 21:00", "2024-03-12", "2024-03-11 21:00"),
        ("2024-11-01 21:00", "2024-11-02", "2024-11-01 21:00"),  # before the fall-back
        ("2024-11-04 21:30", "2024-11-04", "2024-11-03 22:00"),  # after it: 22:00 again
    ],
)
def test_a_ny7_brokers_day_starts_at_21_utc_in_summer_and_22_in_winter(
    make_state, moment, day, start
):
    state = make_state(broker_tz="NY+7")  # TRADING_DAY_TZ defaults to broker
    assert state.trading_day(utc(moment)) == (day, utc(start))


def test_the_day_follows_the_connectors_clock_as_auto_resolves_it(live_config):
    """With BROKER_TZ=auto the zone is known only once the connector has seen a tick: the
    state reads it from the connector's clock at every question, not once at start."""
    now = [utc("2024-07-01 12:00").timestamp()]
    clock = BrokerClock("auto", utc_now=lambda: now[0])
    config = live_config()
    audit = AuditLogger(config.audit_db)
    try:
        state = StateManager(config, audit, broker_clock=clock)
        assert state.trading_day(utc("2024-07-01 21:30"))[1] == utc("2024-07-01 00:00")  # UTC
        clock.observe({"EURUSD": now[0] + 3 * 3600})
        assert state.trading_day(utc("2024-07-01 21:30")) == ("2024-07-02", utc("2024-07-01 21:00"))
    finally:
        audit.close()


def test_an_iana_day_zone_ignores_the_broker_clock(live_config):
    clock = BrokerClock("UTC+3")
    config = live_config(trading_day_timezone="Europe/London", trading_day_start_hour=8)
    audit = AuditLogger(config.audit_db)
    try:
        state = StateManager(config, audit, broker_clock=clock)
        assert state.trading_day(utc("2024-07-01 06:59")) == ("2024-06-30", utc("2024-06-30 07:00"))
    finally:
        audit.close()


def test_daily_limits_reset_at_the_brokers_midnight(make_state):
    state = make_state(broker_tz="NY+7", max_daily_loss_pct=3.0)
    make_state.clock["now"] = utc("2024-07-01 20:00")  # 23:00 on the server
    assert state.daily_limit_reason(10_000.0) is None
    assert "daily loss 4.00%" in state.daily_limit_reason(9_600.0)
    make_state.clock["now"] = utc("2024-07-01 21:00")  # the server's midnight
    assert state.daily_limit_reason(9_600.0) is None
    assert state.day_start_equity(9_000.0) == 9_600.0


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
