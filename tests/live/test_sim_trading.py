"""The simulated trade server: fills, closes, hedging vs netting, pending orders, SL/TP, money,
history, and each refusal with the real return code."""

from __future__ import annotations

import pytest

from live.sim_terminal import SimTerminal

H1 = 3600


def deal(sim: SimTerminal, side: str = "buy", symbol: str = "EURUSD", **fields) -> dict:
    tick = sim.symbol_info_tick(symbol)
    buying = side == "buy"
    request = {"action": sim.TRADE_ACTION_DEAL, "symbol": symbol, "volume": 0.1,
               "type": sim.ORDER_TYPE_BUY if buying else sim.ORDER_TYPE_SELL,
               "price": tick.ask if buying else tick.bid, "deviation": 20, "magic": 77,
               "comment": "test", "type_filling": sim.ORDER_FILLING_FOK}
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
    entry = sim.history_deals_get(ticket=result.deal)[0]
    assert (entry.entry, entry.position_id, entry.magic) == (sim.DEAL_ENTRY_IN, result.order, 77)


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
    assert sim.history_deals_get(ticket=reversed_.deal)[0].entry == sim.DEAL_ENTRY_INOUT


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
    result = sim.order_send({"action": sim.TRADE_ACTION_SLTP, "symbol": "EURUSD",
                             "position": opened.order, "sl": round(bid - 0.002, 5),
                             "tp": round(bid + 0.003, 5)})
    assert result.retcode == 10009
    position = sim.positions_get(ticket=opened.order)[0]
    assert (position.sl, position.tp) == (round(bid - 0.002, 5), round(bid + 0.003, 5))


def test_pending_orders_trigger_modify_and_remove(sim):
    ask = sim.symbol_info_tick("EURUSD").ask
    limit = {"action": sim.TRADE_ACTION_PENDING, "symbol": "EURUSD", "volume": 0.1,
             "type": sim.ORDER_TYPE_BUY_LIMIT, "price": round(ask - 0.0010, 5), "magic": 5,
             "comment": "limit"}
    placed = sim.order_send(limit)
    assert placed.retcode == sim.TRADE_RETCODE_PLACED and sim.orders_total() == 1
    far = sim.order_send({**limit, "price": round(ask - 0.05, 5), "comment": "far"})
    moved = sim.order_send({"action": sim.TRADE_ACTION_MODIFY, "order": far.order,
                            "price": round(ask - 0.06, 5), "sl": 0.0, "tp": 0.0})
    assert moved.retcode == 10009 and sim.orders_get(ticket=far.order)[0].price_open == \
        round(ask - 0.06, 5)
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
    assert sim.order_calc_profit(sim.ORDER_TYPE_SELL, "EURUSD", 0.5, 1.1, 1.09) == \
        pytest.approx(500.0)
    assert sim.order_calc_profit(sim.ORDER_TYPE_BUY, "USDJPY", 1.0, 150.0, 151.0) == \
        pytest.approx(round(100_000 / 151.0, 2))
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
    assert [p.ticket for p in sim.positions_get(ticket=buy.order, symbol="GBPUSD")] == \
        [buy.order]
    assert sim.positions_get(symbol="XAUUSD") == ()


def test_order_check_reports_margin_after_and_does_not_trade(sim):
    check = sim.order_check(deal(sim, volume=1.0))
    assert check.retcode == 0 and check.comment == "Done"
    assert check.margin == pytest.approx(sim.order_calc_margin(
        sim.ORDER_TYPE_BUY, "EURUSD", 1.0, sim.symbol_info_tick("EURUSD").ask), abs=0.01)
    assert check.margin_free == pytest.approx(check.equity - check.margin)
    assert sim.positions_total() == 0


REFUSALS = {
    "invalid volume (step)": (lambda s: deal(s, volume=0.015), 10014),
    "invalid volume (max)": (lambda s: deal(s, volume=250.0), 10014),
    "invalid stops (level)": (lambda s: deal(s, sl=round(s.symbol_info_tick("EURUSD").bid
                                                         - 0.00005, 5)), 10016),
    "invalid stops (side)": (lambda s: deal(s, tp=round(s.symbol_info_tick("EURUSD").bid
                                                        - 0.01, 5)), 10016),
    "unsupported filling (IOC-only symbol)": (
        lambda s: deal(s, symbol="GBPUSD", type_filling=s.ORDER_FILLING_FOK), 10030),
    "unsupported filling (RETURN)": (
        lambda s: deal(s, type_filling=s.ORDER_FILLING_RETURN), 10030),
    "no money": (lambda s: deal(s, volume=100.0), 10019),
    "trade disabled": (lambda s: deal(s, symbol="USDTRY"), 10017),
    "invalid request (unknown symbol)": (lambda s: {**deal(s), "symbol": "NOPE"}, 10013),
    "invalid request (action)": (lambda s: {**deal(s), "action": 99}, 10013),
    "position already closed": (lambda s: deal(s, "sell", position=123), 10036),
    "invalid price (instant execution, zero)": (
        lambda s: deal(s, symbol="USDJPY", price=0.0), 10015),
    "requote (instant execution, moved)": (
        lambda s: deal(s, symbol="USDJPY", price=round(s.symbol_info_tick("USDJPY").ask
                                                       + 0.1, 3), deviation=5), 10004),
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
