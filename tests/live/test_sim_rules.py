"""The simulated trade server follows the real server's rules: the fields SLTP needs on hedging
and netting accounts, a modified pending price checked against the market, the symbol's
expiration modes, the freeze level on closes, close-by, stop slippage, the request-rate limit,
no-change answers and partial closes."""

from __future__ import annotations

import dataclasses

import pytest

from live.sim_terminal.__main__ import build_parser, config_from
from live.sim_terminal.config import SimConfig
from live.sim_terminal.constants import K
from live.sim_terminal.market import SimSymbol
from tests.live.test_sim_trading import deal, falling_moment

POINT = 1e-05  # EURUSD
# SYMBOL_EXPIRATION_* flags (MQL5; the package does not export them)
GTC, DAY, SPECIFIED, SPECIFIED_DAY = 1, 2, 4, 8


def sltp(sim, **fields) -> dict:
    return {"action": sim.TRADE_ACTION_SLTP, "sl": 0.0, "tp": 0.0, **fields}


def pending(sim, order_type=None, offset=0.0100, **fields) -> dict:
    """A pending EURUSD order `offset` away from the market on its valid side."""
    tick = sim.symbol_info_tick("EURUSD")
    order_type = sim.ORDER_TYPE_BUY_LIMIT if order_type is None else order_type
    price = {
        sim.ORDER_TYPE_BUY_LIMIT: tick.ask - offset,
        sim.ORDER_TYPE_SELL_LIMIT: tick.bid + offset,
        sim.ORDER_TYPE_BUY_STOP: tick.ask + offset,
        sim.ORDER_TYPE_SELL_STOP: tick.bid - offset,
    }[order_type]
    return {
        "action": sim.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": order_type,
        "price": round(price, 5),
        "magic": 9,
        **fields,
    }


def modify(sim, order, **fields) -> dict:
    return {
        "action": sim.TRADE_ACTION_MODIFY,
        "order": order.ticket,
        "price": order.price_open,
        "sl": order.sl,
        "tp": order.tp,
        "type_time": order.type_time,
        "expiration": order.time_expiration,
        **fields,
    }


def respec(sim, symbol="EURUSD", **changes) -> None:
    """The broker changes a symbol's specification (as the catalog's entries are built)."""
    feed = sim.server.feeds[symbol]
    feed.symbol = dataclasses.replace(feed.symbol, **changes)


# ---------------------------------------------------------------- 1. SLTP: position or symbol


def test_sltp_on_hedging_names_the_position_and_the_symbol_is_optional(sim):
    opened = sim.order_send(deal(sim))
    bid = sim.symbol_info_tick("EURUSD").bid
    sl = round(bid - 0.0020, 5)
    assert sim.order_send(sltp(sim, position=opened.order, sl=sl)).retcode == 10009
    assert sim.positions_get(ticket=opened.order)[0].sl == sl
    # without the ticket a hedging account cannot tell which position is meant
    assert sim.order_send(sltp(sim, symbol="EURUSD", sl=sl - 0.001)).retcode == 10013
    wrong_symbol = sltp(sim, symbol="GBPUSD", position=opened.order, sl=sl - 0.001)
    assert sim.order_send(wrong_symbol).retcode == 10013
    assert sim.order_send(sltp(sim, position=999, sl=sl)).retcode == 10036


def test_sltp_on_netting_names_the_symbol_and_the_position_is_optional(make_sim):
    sim = make_sim(netting=True)
    opened = sim.order_send(deal(sim, volume=0.2))
    bid = sim.symbol_info_tick("EURUSD").bid
    sl, tp = round(bid - 0.0020, 5), round(bid + 0.0030, 5)
    check = sim.order_check(sltp(sim, symbol="EURUSD", sl=sl, tp=tp))
    assert check.retcode == 0
    assert sim.order_send(sltp(sim, symbol="EURUSD", sl=sl, tp=tp)).retcode == 10009
    position = sim.positions_get()[0]
    assert (position.ticket, position.sl, position.tp) == (opened.order, sl, tp)
    both = sltp(sim, symbol="EURUSD", position=opened.order, sl=round(sl - 0.001, 5))
    assert sim.order_send(both).retcode == 10009
    # the symbol is what a netting account needs; a position alone does not do
    assert sim.order_send(sltp(sim, position=opened.order, sl=sl)).retcode == 10013
    assert sim.order_send(sltp(sim, symbol="GBPUSD", sl=1.2)).retcode == 10036  # none open
    assert sim.order_send(sltp(sim, symbol="NOPE", sl=1.2)).retcode == 10013


def test_sltp_on_netting_that_changes_nothing_answers_no_changes(make_sim):
    sim = make_sim(netting=True)
    sim.order_send(deal(sim))
    sl = round(sim.symbol_info_tick("EURUSD").bid - 0.0020, 5)
    assert sim.order_send(sltp(sim, symbol="EURUSD", sl=sl)).retcode == 10009
    assert sim.order_send(sltp(sim, symbol="EURUSD", sl=sl)).retcode == 10025


# ---------------------------------------------------------------- 2. MODIFY checks the price


@pytest.mark.parametrize(
    ("kind", "moved_to"),
    [
        ("BUY_LIMIT", lambda tick: tick.ask + 0.0010),  # above the ask
        ("BUY_LIMIT", lambda tick: tick.ask - 5 * POINT),  # inside the stops level (10)
        ("SELL_LIMIT", lambda tick: tick.bid - 0.0010),  # below the bid
        ("BUY_STOP", lambda tick: tick.ask - 0.0010),  # below the ask
        ("SELL_STOP", lambda tick: tick.bid + 0.0010),  # above the bid
        ("SELL_STOP", lambda tick: tick.bid - 5 * POINT),  # inside the stops level
    ],
)
def test_modify_refuses_a_pending_price_on_the_wrong_side_of_the_market(sim, kind, moved_to):
    placed = sim.order_send(pending(sim, getattr(sim, f"ORDER_TYPE_{kind}")))
    assert placed.retcode == 10008
    order = sim.orders_get(ticket=placed.order)[0]
    request = modify(sim, order, price=round(moved_to(sim.symbol_info_tick("EURUSD")), 5))
    assert sim.order_check(request).retcode == sim.TRADE_RETCODE_INVALID_PRICE
    assert sim.order_send(request).retcode == sim.TRADE_RETCODE_INVALID_PRICE
    assert sim.orders_get(ticket=placed.order)[0].price_open == order.price_open
    assert sim.orders_total() == 1 and sim.positions_total() == 0


def test_modify_checks_the_stops_against_the_new_price(sim):
    placed = sim.order_send(pending(sim))
    order = sim.orders_get(ticket=placed.order)[0]
    price = round(order.price_open - 0.0050, 5)
    assert sim.order_send(modify(sim, order, price=price, sl=price + 0.0010)).retcode == 10016
    assert sim.order_send(modify(sim, order, price=price, sl=price - 5 * POINT)).retcode == 10016
    moved = modify(sim, order, price=price, sl=round(price - 0.0020, 5))
    assert sim.order_send(moved).retcode == 10009
    assert sim.orders_get(ticket=placed.order)[0].price_open == price


# ---------------------------------------------------------------- 3. expiration modes


def test_symbols_report_their_expiration_modes_and_allow_all_by_default(sim):
    assert SimSymbol("X", "x", 5, 100_000, "EUR", "USD").expiration_mode == 15
    assert sim.symbol_info("EURUSD").expiration_mode == 15
    respec(sim, expiration_mode=GTC | SPECIFIED)
    assert sim.symbol_info("EURUSD").expiration_mode == 5
    assert [s.expiration_mode for s in sim.symbols_get(group="EURUSD")] == [5]
    # flags of MQL5 that the package does not export, as SYMBOL_FILLING_*
    assert not hasattr(sim, "SYMBOL_EXPIRATION_GTC")


TYPE_TIMES = {
    "GTC": (K.ORDER_TIME_GTC, GTC),
    "DAY": (K.ORDER_TIME_DAY, DAY),
    "SPECIFIED": (K.ORDER_TIME_SPECIFIED, SPECIFIED),
    "SPECIFIED_DAY": (K.ORDER_TIME_SPECIFIED_DAY, SPECIFIED_DAY),
}


@pytest.mark.parametrize(
    "mode", [GTC, DAY, SPECIFIED, SPECIFIED_DAY, GTC | SPECIFIED, DAY | SPECIFIED_DAY, 15]
)
@pytest.mark.parametrize("name", list(TYPE_TIMES))
def test_pending_orders_take_only_the_expirations_the_symbol_allows(sim, mode, name):
    type_time, flag = TYPE_TIMES[name]
    respec(sim, expiration_mode=mode)
    request = pending(sim, type_time=type_time, expiration=int(sim.sim_time()) + 86_400 * 2)
    expected = 10008 if mode & flag else sim.TRADE_RETCODE_INVALID_EXPIRATION
    assert sim.order_check(request).retcode == (0 if mode & flag else expected)
    assert sim.order_send(request).retcode == expected


def test_a_modification_may_not_switch_to_an_expiration_the_symbol_refuses(sim):
    respec(sim, expiration_mode=GTC | SPECIFIED)
    order = sim.orders_get(ticket=sim.order_send(pending(sim)).order)[0]
    day = modify(sim, order, type_time=sim.ORDER_TIME_DAY, expiration=0)
    assert sim.order_send(day).retcode == sim.TRADE_RETCODE_INVALID_EXPIRATION
    later = int(sim.sim_time()) + 7200
    specified = modify(sim, order, type_time=sim.ORDER_TIME_SPECIFIED, expiration=later)
    assert sim.order_send(specified).retcode == 10009
    assert sim.orders_get(ticket=order.ticket)[0].time_expiration == later


# ---------------------------------------------------------------- 4. freeze level on a close


def test_closing_a_position_whose_stop_is_within_the_freeze_level_is_frozen(sim):
    t0, t1 = falling_moment(sim)
    sim.sim_set_time(t0)
    _, bid1, _ = sim.server.feeds["EURUSD"].quote(t1)  # where the price will be at t1
    near = sim.order_send(deal(sim, volume=0.2, sl=round(bid1 - 3 * POINT, 5)))
    far = sim.order_send(deal(sim, sl=round(bid1 - 0.0100, 5)))
    assert (near.retcode, far.retcode) == (10009, 10009)
    sim.sim_set_time(t1)  # the bid is now 3 points above the first SL; freeze level 5
    assert sim.symbol_info("EURUSD").trade_freeze_level == 5
    close = deal(sim, "sell", volume=0.2, position=near.order)
    assert sim.order_check(close).retcode == sim.TRADE_RETCODE_FROZEN
    assert sim.order_send(close).retcode == sim.TRADE_RETCODE_FROZEN
    partial = deal(sim, "sell", volume=0.1, position=near.order)
    assert sim.order_send(partial).retcode == sim.TRADE_RETCODE_FROZEN
    assert sim.positions_get(ticket=near.order)[0].volume == 0.2
    assert sim.order_send(deal(sim, "sell", position=far.order)).retcode == 10009


# ---------------------------------------------------------------- 5. close by


def close_by(sim, position, position_by) -> dict:
    return {
        "action": sim.TRADE_ACTION_CLOSE_BY,
        "symbol": "EURUSD",
        "position": position,
        "position_by": position_by,
        "magic": 31,
    }


def test_close_by_makes_one_order_and_two_out_by_deals_and_saves_a_spread(sim):
    assert (sim.ORDER_TYPE_CLOSE_BY, sim.DEAL_ENTRY_OUT_BY, sim.TRADE_ACTION_CLOSE_BY) == (8, 3, 10)
    buy = sim.order_send(deal(sim, volume=0.1))
    sell = sim.order_send(deal(sim, "sell", volume=0.1))
    balance = sim.account_info().balance
    sim.sim_advance(1800)
    result = sim.order_send(close_by(sim, buy.order, sell.order))
    assert (result.retcode, result.volume, result.price) == (10009, 0.1, sell.price)
    assert sim.positions_total() == 0
    (order,) = sim.history_orders_get(ticket=result.order)
    assert (order.type, order.state, order.volume_initial) == (
        sim.ORDER_TYPE_CLOSE_BY,
        sim.ORDER_STATE_FILLED,
        0.1,
    )
    assert (order.position_id, order.position_by_id, order.magic) == (buy.order, sell.order, 31)
    deals = sim.history_deals_get(ticket=result.order)
    assert sorted(d.position_id for d in deals) == sorted([buy.order, sell.order])
    assert {(d.entry, d.volume, d.price, d.magic) for d in deals} == {
        (sim.DEAL_ENTRY_OUT_BY, 0.1, sell.price, 31)
    }
    by_position = {d.position_id: d for d in deals}
    assert (by_position[buy.order].type, by_position[sell.order].type) == (
        sim.DEAL_TYPE_SELL,
        sim.DEAL_TYPE_BUY,
    )
    assert result.deal == by_position[buy.order].ticket
    # the pair's result is the two open prices apart, once: one spread, not two
    pair = round((sell.price - buy.price) * 0.1 * 100_000, 2)
    assert pair < 0 and sum(d.profit for d in deals) == pytest.approx(pair)
    assert sim.account_info().balance == pytest.approx(balance + pair)


def test_a_partial_close_by_leaves_the_rest_of_the_bigger_position_open(sim):
    buy = sim.order_send(deal(sim, volume=0.3))
    sell = sim.order_send(deal(sim, "sell", volume=0.1))
    result = sim.order_send(close_by(sim, sell.order, buy.order))  # the smaller one first
    assert (result.retcode, result.volume) == (10009, 0.1)
    (left,) = sim.positions_get()
    assert (left.ticket, left.type, left.price_open) == (
        buy.order,
        sim.POSITION_TYPE_BUY,
        buy.price,
    )
    assert left.volume == pytest.approx(0.2)
    deals = sim.history_deals_get(ticket=result.order)
    assert [d.volume for d in deals] == [0.1, 0.1]
    pair = round((sell.price - buy.price) * 0.1 * 100_000, 2)
    assert sum(d.profit for d in deals) == pytest.approx(pair)


@pytest.mark.parametrize("case", ["same side", "unknown position_by", "other symbol"])
def test_close_by_needs_an_opposite_position_of_the_same_symbol(sim, case):
    first = sim.order_send(deal(sim))
    other = {
        "same side": lambda: sim.order_send(deal(sim)).order,
        "unknown position_by": lambda: 999,
        "other symbol": lambda: (
            sim.order_send(
                deal(sim, "sell", symbol="GBPUSD", type_filling=sim.ORDER_FILLING_IOC)
            ).order
        ),
    }[case]()
    result = sim.order_send(close_by(sim, first.order, other))
    assert (result.retcode, result.order, result.deal) == (sim.TRADE_RETCODE_INVALID, 0, 0)
    assert sim.history_deals_get(ticket=first.order)[0].entry == sim.DEAL_ENTRY_IN


def test_close_by_is_refused_on_a_netting_account(make_sim):
    sim = make_sim(netting=True)
    opened = sim.order_send(deal(sim, volume=0.2))
    result = sim.order_send(close_by(sim, opened.order, opened.order))
    assert result.retcode == sim.TRADE_RETCODE_INVALID
    assert sim.positions_get()[0].volume == pytest.approx(0.2)


# ---------------------------------------------------------------- 6. stop slippage


def stop_fills(make_sim, slippage: int) -> dict[str, float]:
    """The fill prices of a long and a short stop-loss, a take-profit, a buy stop and a sell
    limit on the same generated prices, with `slippage` points of stop slippage."""
    sim = make_sim(stop_slippage_points=slippage)
    tick = sim.symbol_info_tick("EURUSD")
    gap = 0.0015
    opened = {
        "long sl": sim.order_send(deal(sim, sl=round(tick.bid - gap, 5))).order,
        "short sl": sim.order_send(deal(sim, "sell", sl=round(tick.ask + gap, 5))).order,
        "long tp": sim.order_send(deal(sim, tp=round(tick.bid + gap, 5))).order,
    }
    placed = {
        "buy stop": sim.order_send(pending(sim, sim.ORDER_TYPE_BUY_STOP, gap)).order,
        "sell limit": sim.order_send(pending(sim, sim.ORDER_TYPE_SELL_LIMIT, gap)).order,
    }
    for _ in range(1000):
        if not sim.orders_total() and not any(sim.positions_get(ticket=t) for t in opened.values()):
            break
        sim.sim_step_bar()
    fills = {name: sim.history_deals_get(position=t)[-1].price for name, t in opened.items()}
    fills.update({name: sim.history_deals_get(ticket=t)[0].price for name, t in placed.items()})
    return fills


def test_stop_fills_slip_by_the_configured_points_and_take_profits_and_limits_do_not(make_sim):
    exact, slipped = stop_fills(make_sim, 0), stop_fills(make_sim, 3)
    worse = {"long sl": -3 * POINT, "short sl": 3 * POINT, "buy stop": 3 * POINT}
    for name, price in exact.items():
        assert slipped[name] == pytest.approx(price + worse.get(name, 0.0), abs=1e-9), name


def test_stop_slippage_is_off_by_default_and_validated():
    assert SimConfig().stop_slippage_points == 0
    with pytest.raises(ValueError, match="stop_slippage_points must be a whole number >= 0"):
        SimConfig(stop_slippage_points=-1)


# ---------------------------------------------------------------- 7. request rate, no changes


def test_requests_over_the_rate_limit_answer_too_many_requests(make_sim):
    sim = make_sim(max_requests_per_second=3)
    assert sim.order_send(deal(sim)).retcode == 10009
    assert sim.order_send(deal(sim, volume=0.015)).retcode == 10014  # refused, but counted
    assert sim.order_send(deal(sim)).retcode == 10009
    over = sim.order_send(deal(sim))
    assert (over.retcode, over.deal, over.order) == (sim.TRADE_RETCODE_TOO_MANY_REQUESTS, 0, 0)
    assert sim.positions_total() == 2
    assert sim.order_check(deal(sim)).retcode == 0  # a check is not a request to execute
    sim.sim_advance(0.5)
    assert sim.order_send(deal(sim)).retcode == sim.TRADE_RETCODE_TOO_MANY_REQUESTS
    sim.sim_advance(0.5)  # a second after the first three
    assert sim.order_send(deal(sim)).retcode == 10009
    assert sim.positions_total() == 3


def test_there_is_no_rate_limit_by_default(sim):
    assert all(sim.order_send(deal(sim)).retcode == 10009 for _ in range(25))


def test_sltp_and_modify_that_change_nothing_answer_no_changes(sim):
    opened = sim.order_send(deal(sim))
    sl = round(sim.symbol_info_tick("EURUSD").bid - 0.0020, 5)
    stops = sltp(sim, symbol="EURUSD", position=opened.order, sl=sl)
    assert sim.order_send(stops).retcode == 10009
    assert sim.order_send(stops).retcode == sim.TRADE_RETCODE_NO_CHANGES
    order = sim.orders_get(ticket=sim.order_send(pending(sim)).order)[0]
    assert sim.order_check(modify(sim, order)).retcode == sim.TRADE_RETCODE_NO_CHANGES
    assert sim.order_send(modify(sim, order)).retcode == sim.TRADE_RETCODE_NO_CHANGES


# ---------------------------------------------------------------- 8. partial closes


def test_a_partial_close_on_hedging_keeps_the_ticket_and_books_one_out_deal(sim):
    opened = sim.order_send(deal(sim, volume=0.3))
    sim.sim_advance(1800)
    bid = sim.symbol_info_tick("EURUSD").bid
    closed = sim.order_send(deal(sim, "sell", volume=0.1, position=opened.order))
    assert (closed.retcode, closed.volume) == (10009, 0.1)
    (position,) = sim.positions_get()
    assert (position.ticket, position.price_open) == (opened.order, opened.price)
    assert position.volume == pytest.approx(0.2)
    (out,) = sim.history_deals_get(ticket=closed.order)
    assert (out.entry, out.volume, out.position_id, out.price) == (
        sim.DEAL_ENTRY_OUT,
        0.1,
        opened.order,
        bid,
    )
    assert out.profit == pytest.approx(round((bid - opened.price) * 0.1 * 100_000, 2))


@pytest.mark.parametrize("by_ticket", [False, True])
def test_a_smaller_opposite_deal_on_netting_reduces_the_position(make_sim, by_ticket):
    sim = make_sim(netting=True)
    opened = sim.order_send(deal(sim, volume=0.3))
    named = {"position": opened.order} if by_ticket else {}
    reduced = sim.order_send(deal(sim, "sell", volume=0.1, **named))
    assert reduced.retcode == 10009
    (position,) = sim.positions_get()
    assert (position.ticket, position.type) == (opened.order, sim.POSITION_TYPE_BUY)
    assert position.volume == pytest.approx(0.2)
    (out,) = sim.history_deals_get(ticket=reduced.order)
    assert (out.entry, out.volume, out.position_id) == (sim.DEAL_ENTRY_OUT, 0.1, opened.order)


# ---------------------------------------------------------------- the options on the command line


def test_the_rule_options_reach_the_served_simulator_config():
    args = build_parser().parse_args(
        ["serve", "--stop-slippage-points", "2", "--max-requests-per-second", "5"]
    )
    config = config_from(args)
    assert (config.stop_slippage_points, config.max_requests_per_second) == (2, 5)
    default = config_from(build_parser().parse_args(["serve"]))
    assert (default.stop_slippage_points, default.max_requests_per_second) == (0, 0)
