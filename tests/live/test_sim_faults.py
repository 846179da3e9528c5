"""Fault injection: each knob, seeded and deterministic."""

from __future__ import annotations

import pytest

from live.sim_terminal import FaultConfig


def buy(sim, **fields):
    tick = sim.symbol_info_tick("EURUSD")
    return {
        "action": sim.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": sim.ORDER_TYPE_BUY,
        "price": tick.ask,
        "deviation": 20,
        "magic": 9,
        "comment": "fault",
        "type_filling": sim.ORDER_FILLING_IOC,
        **fields,
    }


def outcomes(sim, n=40):
    results = []
    for _ in range(n):
        result = sim.order_send(buy(sim))
        results.append(result.retcode if result is not None else sim.last_error()[0])
    return results


@pytest.mark.parametrize(
    ("knob", "code"),
    [
        ("requote_rate", 10004),
        ("reject_rate", 10006),
        ("timeout_rate", -10005),
    ],
)
def test_refusing_knobs_execute_nothing_and_are_seeded(make_sim, knob, code):
    first = make_sim(faults=FaultConfig(seed=3, **{knob: 0.5}))
    second = make_sim(faults=FaultConfig(seed=3, **{knob: 0.5}))
    a, b = outcomes(first), outcomes(second)
    assert a == b  # same seed, same failures
    assert 5 < a.count(code) < 35 and a.count(10009) == 40 - a.count(code)
    assert first.positions_total() == a.count(10009)


def test_requote_carries_fresh_prices(make_sim):
    sim = make_sim(faults=FaultConfig(requote_rate=1.0))
    tick = sim.symbol_info_tick("EURUSD")
    result = sim.order_send(buy(sim))
    assert (result.retcode, result.bid, result.ask, result.deal) == (10004, tick.bid, tick.ask, 0)


def test_reply_lost_means_the_deal_exists_but_the_caller_sees_none(make_sim):
    sim = make_sim(faults=FaultConfig(reply_lost_rate=1.0))
    assert sim.order_send(buy(sim, comment="LTLOST")) is None
    assert sim.last_error() == (-10005, "IPC timeout")
    positions = sim.positions_get()
    assert len(positions) == 1 and positions[0].comment == "LTLOST"
    now = sim.sim_time()
    deals = sim.history_deals_get(now - 10, now + 10)
    assert [d.comment for d in deals] == ["LTLOST"]


def test_partial_fills_only_for_ioc_and_return(make_sim):
    sim = make_sim(faults=FaultConfig(partial_fill_rate=1.0, partial_fill_ratio=0.5))
    partial = sim.order_send(buy(sim, volume=0.4))
    assert (partial.retcode, partial.volume) == (10010, 0.2)
    full = sim.order_send(buy(sim, volume=0.4, type_filling=sim.ORDER_FILLING_FOK))
    assert (full.retcode, full.volume) == (10009, 0.4)


def test_latency_goes_through_the_injected_sleep(make_sim):
    slept = []
    sim = make_sim(faults=FaultConfig(latency_s=0.25), sleep=slept.append)
    slept.clear()
    sim.symbol_info_tick("EURUSD")
    sim.positions_get()
    assert slept == [0.25, 0.25]


def test_periodic_drops_fail_like_a_disconnected_terminal(make_sim):
    sim = make_sim(faults=FaultConfig(drop_every_calls=10, drop_for_calls=3))
    results = [sim.symbol_info_tick("EURUSD") for _ in range(8)]
    assert all(r is not None for r in results)
    assert sim.account_info() is None and sim.last_error() == (-10004, "No IPC connection")
    assert sim.positions_get() is None
    assert sim.initialize() is False  # still down: the pipe does not answer
    assert sim.last_error() == (-10005, "IPC timeout")
    assert sim.symbol_info_tick("EURUSD") is None  # down is over, but not re-initialized
    assert sim.initialize() is True
    assert sim.symbol_info_tick("EURUSD") is not None


def test_drop_for_wall_seconds(make_sim):
    wall = [100.0]
    sim = make_sim(wall=lambda: wall[0])
    sim.sim_drop_connection(seconds=5)
    assert sim.version() is None and sim.initialize() is False
    wall[0] += 6
    assert sim.initialize() is True and sim.version() is not None


def test_faults_can_be_changed_while_running(sim):
    assert sim.order_send(buy(sim)).retcode == 10009
    sim.sim_set_faults(reject_rate=1.0)
    assert sim.order_send(buy(sim)).retcode == 10006
    sim.sim_set_faults(reject_rate=0.0)
    assert sim.order_send(buy(sim)).retcode == 10009


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("requote_rate=2", "must be in [0, 1]"),
        ("bogus=1", "unknown fault 'bogus'"),
        ("latency_s=abc", "needs a number"),
    ],
)
def test_bad_fault_settings_are_named(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FaultConfig.parse(text)


def test_random_drops_last_drop_seconds_of_wall_time_and_are_seeded(make_sim):
    def run():
        wall = [100.0]
        sim = make_sim(wall=lambda: wall[0])
        sim.sim_set_faults(seed=11, drop_rate=0.1, drop_seconds=30.0)
        answers = [sim.symbol_info_tick("EURUSD") is not None for _ in range(60)]
        return sim, wall, answers

    sim, wall, answers = run()
    assert answers == run()[2]  # the same seed drops at the same calls
    first_drop = answers.index(False)
    assert all(answers[:first_drop]) and not any(answers[first_drop:])  # down for 30 s
    assert sim.last_error() == (-10004, "No IPC connection")
    assert sim.initialize() is False and sim.last_error() == (-10005, "IPC timeout")
    wall[0] += 31.0
    sim.sim_set_faults(drop_rate=0.0)
    assert sim.symbol_info_tick("EURUSD") is None  # up again, but not re-initialized
    assert sim.initialize() is True and sim.symbol_info_tick("EURUSD") is not None


def test_drop_knobs_parse_and_need_a_duration():
    from live.sim_terminal.__main__ import build_parser, config_from

    args = build_parser().parse_args(["serve", "--faults", "drop_rate=0.2,drop_seconds=5"])
    faults = config_from(args).faults
    assert (faults.drop_rate, faults.drop_seconds) == (0.2, 5.0)
    with pytest.raises(ValueError, match="drop_seconds"):
        FaultConfig.parse("drop_rate=0.2")


def test_a_server_may_cut_or_replace_comments_and_leave_out_stops(make_sim):
    sim = make_sim(faults=FaultConfig(comment_truncate_rate=1.0, comment_keep=5))
    sim.order_send(buy(sim, comment="LTLONGCOMMENT"))
    assert sim.positions_get()[0].comment == "LTLON"
    sim = make_sim(faults=FaultConfig(comment_rewrite_rate=1.0, stops_ignored_rate=1.0))
    price = sim.symbol_info_tick("EURUSD").ask
    sim.order_send(buy(sim, comment="LTLONGCOMMENT", sl=price - 0.01, tp=price + 0.01))
    (position,) = sim.positions_get()
    assert position.comment.startswith("#") and (position.sl, position.tp) == (0.0, 0.0)
    (deal,) = sim.history_deals_get(position=position.ticket)
    assert deal.comment == position.comment


def test_the_history_lags_behind_a_fill(make_sim):
    sim = make_sim(faults=FaultConfig(history_lag_rate=1.0, history_lag_calls=3))
    result = sim.order_send(buy(sim))
    assert result.retcode == 10009 and result.deal == 0 and result.order > 0
    assert sim.history_deals_get(ticket=result.order) == ()
    sim.account_info()
    sim.account_info()
    assert len(sim.history_deals_get(ticket=result.order)) == 1  # caught up
