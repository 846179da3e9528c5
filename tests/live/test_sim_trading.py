"""The simulated trade server: fills, closes, hedging vs netting, pending orders, SL/TP, money,
history, and each refusal with the real return code."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from backtest.data import load_csv, save_csv
from live.sim_terminal import SimConfig, SimTerminal

H1 = 3600
DATA = Path(__file__).resolve().parents[1] / "data"


def deal(sim: SimTerminal, side: str = "buy", symbol: str = "EURUSD", **fields) -> dict:
    tick = sim.symbol_info_tick(symbol)
    buying = side == "buy"
    request = {
        "action": sim.TRADE_ACTION_DEAL,
        "symbol": symbol,
        "volume": 0.1,
        "type": sim.ORDER_TYPE_BUY if buying else sim.ORDER_TYPE_SELL,
        "price": tick.ask if buying else tick.bid,
        "deviation": 20,
        "magic": 77,
        "comment": "test",
        "type_filling": sim.ORDER_FILLING_FOK,
    }
    request.update(fields)
    return request


def test_market_buy_fills_at_the_ask_and_keeps_magic_and_comment(sim):
    tick = sim.symbol_info_tick("EURUSD")
    result = sim.order_send(deal(sim, comment="LTABC"))
    assert (result.retcode, result.price, result.volume) == (10009, tick.ask, 0.1)
    assert (result.bid, result.ask, result.comment) == (tick.bid, tick.ask, "Request executed")
    position = sim.positions_get()[0]
    assert position.ticket == position.identifier == result.order  # MT5's identifier rule
    assert (position.magic, position.comment, position.price_open) == (77, "LTABC", tick.ask)
    order = sim.history_orders_get(ticket=result.order)[0]
    assert order.state == sim.ORDER_STATE_FILLED and order.comment == "LTABC"
    # ticket= names the ORDER (DEAL_ORDER), as the official docs say, not the deal
    (entry,) = sim.history_deals_get(ticket=result.order)
    assert (entry.ticket, entry.order) == (result.deal, result.order)
    assert (entry.entry, entry.position_id, entry.magic) == (sim.DEAL_ENTRY_IN, result.order, 77)
    assert sim.history_deals_get(ticket=result.deal) == ()


def test_closing_a_hedged_position_by_ticket_realises_the_profit(sim):
    opened = sim.order_send(deal(sim))
    for _ in range(5):
        sim.sim_step_bar()
    bid = sim.symbol_info_tick("EURUSD").bid
    closed = sim.order_send(deal(sim, "sell", position=opened.order))
    assert closed.retcode == 10009 and sim.positions_total() == 0
    out = sim.history_deals_get(position=opened.order)[-1]
    expected = round((bid - opened.price) * 0.1 * 100_000, 2)
    assert (out.entry, out.price, out.profit) == (sim.DEAL_ENTRY_OUT, bid, expected)
    assert sim.account_info().balance == pytest.approx(10_000 + expected)


def test_partial_close_and_hedged_positions_stay_separate(sim):
    first = sim.order_send(deal(sim, volume=0.3))
    sim.order_send(deal(sim, volume=0.1))
    assert sim.positions_total() == 2
    sim.order_send(deal(sim, "sell", volume=0.1, position=first.order))
    volumes = sorted(p.volume for p in sim.positions_get())
    assert volumes == [0.1, 0.2]


def test_netting_reduces_closes_and_reverses_one_position(make_sim):
    sim = make_sim(netting=True)
    assert sim.account_info().margin_mode == sim.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    first = sim.order_send(deal(sim, volume=0.2))
    sim.order_send(deal(sim, volume=0.1))
    assert [p.volume for p in sim.positions_get()] == [pytest.approx(0.3)]
    sim.order_send(deal(sim, "sell", volume=0.1))
    assert sim.positions_get()[0].volume == pytest.approx(0.2)
    reversed_ = sim.order_send(deal(sim, "sell", volume=0.5))
    position = sim.positions_get()[0]
    assert (position.type, position.volume) == (sim.POSITION_TYPE_SELL, pytest.approx(0.3))
    assert position.identifier == first.order
    assert position.ticket == reversed_.order  # re-ticketed by the reversal; identifier kept
    assert sim.history_deals_get(ticket=reversed_.order)[0].entry == sim.DEAL_ENTRY_INOUT


def test_a_deal_carries_the_magic_of_its_order_not_the_position(sim):
    opened = sim.order_send(deal(sim, magic=77))
    sim.order_send(deal(sim, "sell", magic=0, position=opened.order, comment="by hand"))
    entry, out = sim.history_deals_get(position=opened.order)
    assert (entry.magic, out.magic) == (77, 0)  # a hand close is no deal of magic 77


def test_stop_loss_fires_on_the_path_with_the_server_comment(sim):
    tick = sim.symbol_info_tick("EURUSD")
    sl = round(tick.bid - 0.0015, 5)
    opened = sim.order_send(deal(sim, sl=sl))
    for _ in range(400):
        sim.sim_step_bar()
        if not sim.positions_total():
            break
    assert sim.positions_total() == 0
    out = sim.history_deals_get(position=opened.order)[-1]
    assert out.reason == sim.DEAL_REASON_SL
    assert out.comment == f"[sl {sl:.5f}]"
    assert out.price <= sl  # at the level, or worse after a gap
    assert out.magic == 77


def test_take_profit_of_a_short_fires_at_the_ask(sim):
    tick = sim.symbol_info_tick("EURUSD")
    tp = round(tick.ask - 0.0015, 5)
    opened = sim.order_send(deal(sim, "sell", tp=tp))
    for _ in range(400):
        sim.sim_step_bar()
        if not sim.positions_total():
            break
    out = sim.history_deals_get(position=opened.order)[-1]
    assert (out.reason, out.comment) == (sim.DEAL_REASON_TP, f"[tp {tp:.5f}]")


def test_modify_stops_with_sltp(sim):
    opened = sim.order_send(deal(sim))
    bid = sim.symbol_info_tick("EURUSD").bid
    result = sim.order_send(
        {
            "action": sim.TRADE_ACTION_SLTP,
            "symbol": "EURUSD",
            "position": opened.order,
            "sl": round(bid - 0.002, 5),
            "tp": round(bid + 0.003, 5),
        }
    )
    assert result.retcode == 10009
    position = sim.positions_get(ticket=opened.order)[0]
    assert (position.sl, position.tp) == (round(bid - 0.002, 5), round(bid + 0.003, 5))


def test_pending_orders_trigger_modify_and_remove(sim):
    ask = sim.symbol_info_tick("EURUSD").ask
    limit = {
        "action": sim.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": sim.ORDER_TYPE_BUY_LIMIT,
        "price": round(ask - 0.0010, 5),
        "magic": 5,
        "comment": "limit",
    }
    placed = sim.order_send(limit)
    assert placed.retcode == sim.TRADE_RETCODE_PLACED and sim.orders_total() == 1
    far = sim.order_send({**limit, "price": round(ask - 0.05, 5), "comment": "far"})
    moved = sim.order_send(
        {
            "action": sim.TRADE_ACTION_MODIFY,
            "order": far.order,
            "price": round(ask - 0.06, 5),
            "sl": 0.0,
            "tp": 0.0,
        }
    )
    assert moved.retcode == 10009 and sim.orders_get(ticket=far.order)[0].price_open == round(
        ask - 0.06, 5
    )
    removed = sim.order_send({"action": sim.TRADE_ACTION_REMOVE, "order": far.order})
    assert removed.retcode == 10009
    assert sim.history_orders_get(ticket=far.order)[0].state == sim.ORDER_STATE_CANCELED
    for _ in range(300):
        sim.sim_step_bar()
        if sim.positions_total():
            break
    position = sim.positions_get()[0]
    assert (position.price_open, position.comment) == (round(ask - 0.0010, 5), "limit")
    assert sim.orders_total() == 0


def test_equity_margin_and_free_margin_move_with_prices(sim):
    sim.order_send(deal(sim, volume=1.0))
    account = sim.account_info()
    position = sim.positions_get()[0]
    assert account.margin == pytest.approx(1.0 * 100_000 * position.price_open / 100, rel=1e-3)
    assert account.equity == pytest.approx(account.balance + position.profit)
    assert account.margin_free == pytest.approx(account.equity - account.margin)
    sim.sim_advance(H1 * 3)
    later = sim.account_info()
    assert later.equity == pytest.approx(later.balance + sim.positions_get()[0].profit)
    assert later.equity != account.equity


def test_calc_margin_and_profit(sim):
    margin = sim.order_calc_margin(sim.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1)
    assert margin == pytest.approx(1100.0)
    assert sim.order_calc_profit(sim.ORDER_TYPE_SELL, "EURUSD", 0.5, 1.1, 1.09) == pytest.approx(
        500.0
    )
    assert sim.order_calc_profit(sim.ORDER_TYPE_BUY, "USDJPY", 1.0, 150.0, 151.0) == pytest.approx(
        round(100_000 / 151.0, 2)
    )
    assert sim.order_calc_margin(sim.ORDER_TYPE_BUY, "USDJPY", 1.0, 150.0) == 1000.0


def test_history_by_date_range_and_group(sim):
    sim.order_send(deal(sim))
    now = int(sim.sim_time())
    assert len(sim.history_deals_get(now - 60, now + 60)) == 1
    assert sim.history_deals_get(now + 60, now + 120) == ()
    assert sim.history_deals_get(now - 60, now + 60, group="GBP*") == ()
    assert sim.history_deals_total(now - 60, now + 60) == 1
    assert sim.history_orders_total(now - 60, now + 60) == 1


def test_positions_get_filters_in_the_binary_order(sim):
    buy = sim.order_send(deal(sim))
    sim.order_send(deal(sim, symbol="GBPUSD", type_filling=sim.ORDER_FILLING_IOC))
    assert {p.symbol for p in sim.positions_get()} == {"EURUSD", "GBPUSD"}
    assert [p.symbol for p in sim.positions_get(symbol="GBPUSD")] == ["GBPUSD"]
    # ticket wins over symbol when both are given (as the compiled module does)
    assert [p.ticket for p in sim.positions_get(ticket=buy.order, symbol="GBPUSD")] == [buy.order]
    assert sim.positions_get(symbol="XAUUSD") == ()


def test_order_check_reports_margin_after_and_does_not_trade(sim):
    check = sim.order_check(deal(sim, volume=1.0))
    assert check.retcode == 0 and check.comment == "Done"
    assert check.margin == pytest.approx(
        sim.order_calc_margin(
            sim.ORDER_TYPE_BUY, "EURUSD", 1.0, sim.symbol_info_tick("EURUSD").ask
        ),
        abs=0.01,
    )
    assert check.margin_free == pytest.approx(check.equity - check.margin)
    assert sim.positions_total() == 0


REFUSALS = {
    "invalid volume (step)": (lambda s: deal(s, volume=0.015), 10014),
    "invalid volume (max)": (lambda s: deal(s, volume=250.0), 10014),
    "invalid stops (level)": (
        lambda s: deal(s, sl=round(s.symbol_info_tick("EURUSD").bid - 0.00005, 5)),
        10016,
    ),
    "invalid stops (side)": (
        lambda s: deal(s, tp=round(s.symbol_info_tick("EURUSD").bid - 0.01, 5)),
        10016,
    ),
    "unsupported filling (IOC-only symbol)": (
        lambda s: deal(s, symbol="GBPUSD", type_filling=s.ORDER_FILLING_FOK),
        10030,
    ),
    "unsupported filling (RETURN)": (lambda s: deal(s, type_filling=s.ORDER_FILLING_RETURN), 10030),
    "no money": (lambda s: deal(s, volume=100.0), 10019),
    "trade disabled": (lambda s: deal(s, symbol="USDTRY"), 10017),
    "invalid request (unknown symbol)": (lambda s: {**deal(s), "symbol": "NOPE"}, 10013),
    "invalid request (action)": (lambda s: {**deal(s), "action": 99}, 10013),
    "position already closed": (lambda s: deal(s, "sell", position=123), 10036),
    "invalid price (instant execution, zero)": (
        lambda s: deal(s, symbol="USDJPY", price=0.0),
        10015,
    ),
    "requote (instant execution, moved)": (
        lambda s: deal(
            s, symbol="USDJPY", price=round(s.symbol_info_tick("USDJPY").ask + 0.1, 3), deviation=5
        ),
        10004,
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_carry_the_real_return_code(sim, case):
    build, code = REFUSALS[case]
    request = build(sim)
    check = sim.order_check(request)
    sent = sim.order_send(request)
    assert (check.retcode, sent.retcode) == (code, code)
    assert sim.positions_total() == 0 and sent.deal == 0


def test_close_volume_too_big(sim):
    opened = sim.order_send(deal(sim, volume=0.1))
    assert sim.order_send(deal(sim, "sell", volume=0.2, position=opened.order)).retcode == 10038


def test_market_execution_ignores_price_and_deviation(sim):
    result = sim.order_send(deal(sim, price=1.0, deviation=0))
    assert result.retcode == 10009 and result.price == sim.symbol_info_tick("EURUSD").ask


def test_no_prices_for_a_symbol_outside_market_watch(sim):
    request = {**deal(sim), "symbol": "USDCHF", "price": 0.9}
    assert sim.order_send(request).retcode == sim.TRADE_RETCODE_PRICE_OFF


def test_autotrading_switches(sim):
    sim.sim_set_terminal(trade_allowed=False)
    assert sim.terminal_info().trade_allowed is False
    assert sim.order_send(deal(sim)).retcode == sim.TRADE_RETCODE_CLIENT_DISABLES_AT
    sim.sim_set_terminal(trade_allowed=True, tradeapi_disabled=True)
    assert sim.order_send(deal(sim)) is None
    assert sim.last_error() == (-8, "Auto-Trading using Python API disabled in Terminal")


def test_broker_link_down_gives_no_connection(sim):
    sim.sim_set_terminal(connected=False)
    assert sim.terminal_info().connected is False
    assert sim.order_send(deal(sim)).retcode == sim.TRADE_RETCODE_CONNECTION


def test_real_account_flag(make_sim):
    assert make_sim(real_account=True).account_info().trade_mode == 2


def test_package_helpers_buy_and_close(sim):
    bought = sim.Buy("EURUSD", 0.1, comment="helper")
    assert bought.retcode == 10009
    assert sim.Close("EURUSD") is True
    assert sim.positions_total() == 0
    assert sim.Close("EURUSD") is False


# ---------------------------------------------------------------- netting reductions


def test_netting_reduction_without_position_needs_no_margin(make_sim):
    sim = make_sim(netting=True, balance=1200.0)
    assert sim.order_send(deal(sim, volume=1.0)).retcode == 10009  # margin ~1,100 of 1,200
    reduce = deal(sim, "sell", volume=0.5)
    check = sim.order_check(reduce)
    assert check.retcode == 0 and check.margin < sim.account_info().margin  # it frees margin
    assert sim.order_send(reduce).retcode == 10009
    assert sim.positions_get()[0].volume == pytest.approx(0.5)
    # a reversal needs margin for its excess only: 2.0 lots is more than 1,200 covers
    assert sim.order_send(deal(sim, "sell", volume=2.5)).retcode == 10019
    reversed_ = sim.order_send(deal(sim, "sell", volume=1.0))
    assert reversed_.retcode == 10009
    position = sim.positions_get()[0]
    assert (position.type, position.volume) == (sim.POSITION_TYPE_SELL, pytest.approx(0.5))


def close_only(sim, symbol="EURUSD"):
    """The broker switches the symbol to close-only, as brokers do before delistings."""
    feed = sim.server.feeds[symbol]
    feed.symbol = dataclasses.replace(feed.symbol, trade_mode=sim.SYMBOL_TRADE_MODE_CLOSEONLY)


def test_close_only_allows_netting_reductions_and_refuses_anything_opening(make_sim):
    sim = make_sim(netting=True)
    sim.order_send(deal(sim, volume=0.5))
    close_only(sim)
    assert sim.symbol_info("EURUSD").trade_mode == sim.SYMBOL_TRADE_MODE_CLOSEONLY
    assert sim.order_send(deal(sim, volume=0.1)).retcode == sim.TRADE_RETCODE_CLOSE_ONLY
    assert (
        sim.order_send(deal(sim, "sell", volume=1.0)).retcode == sim.TRADE_RETCODE_CLOSE_ONLY
    )  # would reverse: opens 0.5 short
    assert sim.order_send(deal(sim, "sell", volume=0.2)).retcode == 10009
    assert sim.order_send(deal(sim, "sell", volume=0.3)).retcode == 10009
    assert sim.positions_total() == 0


def test_close_only_allows_closing_a_hedged_position_by_ticket(sim):
    opened = sim.order_send(deal(sim))
    close_only(sim)
    assert sim.order_send(deal(sim)).retcode == sim.TRADE_RETCODE_CLOSE_ONLY
    assert sim.order_send(deal(sim, "sell", position=opened.order)).retcode == 10009


# ---------------------------------------------------------------- tick value


def test_tick_value_is_in_the_account_currency_and_matches_calc_profit(sim):
    for symbol in ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "USDCHF"):
        sim.symbol_select(symbol, True)
        info = sim.symbol_info(symbol)
        moved = sim.order_calc_profit(
            sim.ORDER_TYPE_BUY, symbol, 1.0, info.bid, info.bid + info.trade_tick_size
        )
        assert info.trade_tick_value == pytest.approx(moved, abs=0.01), symbol
        assert info.trade_tick_value_profit == info.trade_tick_value_loss == info.trade_tick_value
    usdjpy = sim.symbol_info("USDJPY")
    assert usdjpy.trade_tick_value == pytest.approx(100_000 * 0.001 / usdjpy.bid)
    assert sim.symbol_info("EURUSD").trade_tick_value == pytest.approx(1.0)
    assert sim.symbol_info("XAUUSD").trade_tick_value == pytest.approx(1.0)


def test_tick_value_of_a_cross_goes_through_the_usd_rate(tmp_path):
    bars = load_csv(DATA / "eurusd_h1_generic.csv")
    save_csv(bars, tmp_path / "eurgbp.csv")
    sim = SimTerminal(
        SimConfig(
            symbols=("EURGBP",), data=str(tmp_path / "eurgbp.csv"), n_bars=50, history_bars=10
        )
    )
    assert sim.initialize()
    info, gbpusd = sim.symbol_info("EURGBP"), sim.symbol_info_tick("GBPUSD")
    assert (info.currency_profit, info.point) == ("GBP", 1e-05)
    assert info.trade_tick_value == pytest.approx(100_000 * 1e-05 * gbpusd.bid)
    profit = sim.order_calc_profit(sim.ORDER_TYPE_SELL, "EURGBP", 1.0, 0.8600, 0.8500)
    assert profit == pytest.approx(1_000 * gbpusd.bid, abs=0.01)  # 1,000 GBP in USD


# ---------------------------------------------------------------- freeze level, no changes


def falling_moment(sim):
    """(t0, t1): a bar's open and 10 minutes later, the bid falling at least 15 points
    in between on the bar's path (its first extreme is the low, 40+ points down)."""
    feed = sim.server.feeds["EURUSD"]
    first = feed.index_at(sim.sim_time()) + 1
    for i in range(first, len(feed.times)):
        o, h, lo = feed.open[i], feed.high[i], feed.low[i]
        if (o - lo) <= (h - o) and o - lo >= 0.0004:
            return float(feed.times[i]), float(feed.times[i]) + 600.0
    raise AssertionError("no bar falling enough")


def test_orders_and_stops_within_the_freeze_level_are_frozen(sim):
    t0, t1 = falling_moment(sim)
    sim.sim_set_time(t0)
    _, bid1, ask1 = sim.server.feeds["EURUSD"].quote(t1)  # where the price will be at t1
    point, freeze = 1e-05, sim.symbol_info("EURUSD").trade_freeze_level
    assert freeze == 5
    limit = {
        "action": sim.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": sim.ORDER_TYPE_BUY_LIMIT,
        "magic": 5,
    }
    near = sim.order_send({**limit, "price": round(ask1 - 3 * point, 5)})
    far = sim.order_send({**limit, "price": round(ask1 - 0.0100, 5)})
    opened = sim.order_send(deal(sim, sl=round(bid1 - 3 * point, 5)))
    assert (near.retcode, far.retcode, opened.retcode) == (10008, 10008, 10009)
    sim.sim_set_time(t1)  # the ask is now 3 points above the limit, the bid 3 above the SL
    assert sim.orders_total() == 2 and sim.positions_total() == 1
    modify = {
        "action": sim.TRADE_ACTION_MODIFY,
        "order": near.order,
        "price": round(ask1 - 0.0020, 5),
        "sl": 0.0,
        "tp": 0.0,
    }
    assert sim.order_check(modify).retcode == sim.TRADE_RETCODE_FROZEN
    assert sim.order_send(modify).retcode == sim.TRADE_RETCODE_FROZEN
    remove = {"action": sim.TRADE_ACTION_REMOVE, "order": near.order}
    assert sim.order_send(remove).retcode == sim.TRADE_RETCODE_FROZEN
    sltp = {
        "action": sim.TRADE_ACTION_SLTP,
        "symbol": "EURUSD",
        "position": opened.order,
        "sl": round(bid1 - 0.0030, 5),
        "tp": 0.0,
    }
    assert sim.order_send(sltp).retcode == sim.TRADE_RETCODE_FROZEN
    assert sim.order_send({**modify, "order": far.order}).retcode == 10009  # far: not frozen
    assert sim.orders_get(ticket=near.order)[0].price_open == round(ask1 - 3 * point, 5)


def test_unchanged_stops_and_orders_answer_no_changes(sim):
    opened = sim.order_send(deal(sim))
    bid = sim.symbol_info_tick("EURUSD").bid
    sltp = {
        "action": sim.TRADE_ACTION_SLTP,
        "symbol": "EURUSD",
        "position": opened.order,
        "sl": round(bid - 0.002, 5),
        "tp": 0.0,
    }
    assert sim.order_send(sltp).retcode == 10009
    assert sim.order_check(sltp).retcode == sim.TRADE_RETCODE_NO_CHANGES
    assert sim.order_send(sltp).retcode == sim.TRADE_RETCODE_NO_CHANGES
    price = round(sim.symbol_info_tick("EURUSD").ask - 0.01, 5)
    placed = sim.order_send(
        {
            "action": sim.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": sim.ORDER_TYPE_BUY_LIMIT,
            "price": price,
        }
    )
    modify = {
        "action": sim.TRADE_ACTION_MODIFY,
        "order": placed.order,
        "price": price,
        "sl": 0.0,
        "tp": 0.0,
    }
    assert sim.order_send(modify).retcode == sim.TRADE_RETCODE_NO_CHANGES
    assert sim.order_send({**modify, "tp": round(price + 0.003, 5)}).retcode == 10009


# ---------------------------------------------------------------- market closed, expiry


def weekend(sim):
    """Move the clock to Friday 23:00 UTC, after the week's last bar."""
    feed = sim.server.feeds["EURUSD"]
    friday = next(
        t
        for t in feed.times
        if pd.Timestamp(t, unit="s").day_of_week == 4
        and pd.Timestamp(t, unit="s").hour == 21
        and t > sim.sim_time()
    )
    sim.sim_set_time(friday + 2 * H1)


def test_removing_a_pending_order_while_the_market_is_closed_fails_with_10018(sim):
    price = round(sim.symbol_info_tick("EURUSD").ask - 0.02, 5)
    placed = sim.order_send(
        {
            "action": sim.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": sim.ORDER_TYPE_BUY_LIMIT,
            "price": price,
        }
    )
    weekend(sim)
    remove = {"action": sim.TRADE_ACTION_REMOVE, "order": placed.order}
    assert sim.order_check(remove).retcode == sim.TRADE_RETCODE_MARKET_CLOSED
    assert sim.order_send(remove).retcode == sim.TRADE_RETCODE_MARKET_CLOSED
    assert sim.orders_total() == 1


def pending(sim, **fields):
    ask = sim.symbol_info_tick("EURUSD").ask
    return {
        "action": sim.TRADE_ACTION_PENDING,
        "symbol": "EURUSD",
        "volume": 0.1,
        "type": sim.ORDER_TYPE_BUY_LIMIT,
        "price": round(ask - 0.05, 5),
        **fields,
    }


def test_pending_orders_expire_at_their_time(sim):
    now = int(sim.sim_time())
    specified = sim.order_send(
        pending(sim, type_time=sim.ORDER_TIME_SPECIFIED, expiration=now + 2 * H1)
    )
    day = sim.order_send(pending(sim, type_time=sim.ORDER_TIME_DAY))
    kept = sim.order_send(pending(sim))
    assert (specified.retcode, day.retcode, kept.retcode) == (10008, 10008, 10008)
    midnight = (now // 86_400 + 1) * 86_400  # the end of a DAY order (server time = UTC)
    sim.sim_advance(3 * H1)
    still = [o.ticket for o in sim.orders_get()]
    assert specified.order not in still and kept.order in still
    assert (day.order in still) == (now + 3 * H1 < midnight)
    gone = sim.history_orders_get(ticket=specified.order)[0]
    assert (gone.state, gone.time_done) == (sim.ORDER_STATE_EXPIRED, now + 2 * H1)
    sim.sim_advance(86_400)
    assert [o.ticket for o in sim.orders_get()] == [kept.order]
    expired_day = sim.history_orders_get(ticket=day.order)[0]
    assert expired_day.state == sim.ORDER_STATE_EXPIRED
    assert expired_day.time_done == midnight


def test_invalid_expirations_and_stop_limit_orders_are_refused(sim):
    now = int(sim.sim_time())
    past = pending(sim, type_time=sim.ORDER_TIME_SPECIFIED, expiration=now - 60)
    assert sim.order_send(past).retcode == sim.TRADE_RETCODE_INVALID_EXPIRATION
    missing = pending(sim, type_time=sim.ORDER_TIME_SPECIFIED)
    assert sim.order_send(missing).retcode == sim.TRADE_RETCODE_INVALID_EXPIRATION
    assert sim.order_send(pending(sim, type_time=7)).retcode == sim.TRADE_RETCODE_INVALID_EXPIRATION
    stop_limit = pending(sim, type=sim.ORDER_TYPE_BUY_STOP_LIMIT, stoplimit=1.0)
    assert sim.order_send(stop_limit).retcode == sim.TRADE_RETCODE_INVALID_ORDER
    assert sim.orders_total() == 0
