"""The trade server's rules through the served simulator and the real mt5linux client: an SLTP
naming only the symbol on a netting account, and a close-by on a hedging account."""

from __future__ import annotations

import pytest
from mt5linux import MetaTrader5

from live.sim_terminal.launch import start_served_sim

pytestmark = pytest.mark.served


def market(mt5, side: str, volume: float) -> dict:
    tick = mt5.symbol_info_tick("EURUSD")
    buying = side == "buy"
    return {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": volume,
        "type": mt5.ORDER_TYPE_BUY if buying else mt5.ORDER_TYPE_SELL,
        "price": tick.ask if buying else tick.bid,
        "deviation": 20,
        "magic": 7,
        "type_filling": mt5.ORDER_FILLING_FOK,
    }


def test_sltp_by_symbol_on_netting_and_close_by_on_hedging_over_mt5linux(tmp_path, served_sim):
    netting = start_served_sim(tmp_path / "netting.json", "--netting")
    try:
        mt5 = MetaTrader5(host="127.0.0.1", port=netting.port)
        assert mt5.initialize() is True
        assert mt5.account_info().margin_mode == mt5.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
        opened = mt5.order_send(market(mt5, "buy", 0.2))
        sl = round(mt5.symbol_info_tick("EURUSD").bid - 0.0020, 5)
        stops = {"action": mt5.TRADE_ACTION_SLTP, "symbol": "EURUSD", "sl": sl, "tp": 0.0}
        assert mt5.order_send(stops).retcode == mt5.TRADE_RETCODE_DONE
        assert [(p.ticket, p.sl) for p in mt5.positions_get()] == [(opened.order, sl)]
        assert mt5.order_send(stops).retcode == mt5.TRADE_RETCODE_NO_CHANGES
    finally:
        netting.stop()
    mt5 = MetaTrader5(host="127.0.0.1", port=served_sim.port)  # a hedging account
    assert mt5.initialize() is True
    buy = mt5.order_send(market(mt5, "buy", 0.3))
    sell = mt5.order_send(market(mt5, "sell", 0.1))
    request = {
        "action": mt5.TRADE_ACTION_CLOSE_BY,
        "symbol": "EURUSD",
        "position": buy.order,
        "position_by": sell.order,
    }
    closed = mt5.order_send(request)
    assert closed.retcode == mt5.TRADE_RETCODE_DONE
    assert [(p.ticket, round(p.volume, 2)) for p in mt5.positions_get()] == [(buy.order, 0.2)]
    (order,) = mt5.history_orders_get(ticket=closed.order)
    assert (order.type, order.position_by_id) == (mt5.ORDER_TYPE_CLOSE_BY, sell.order)
    deals = mt5.history_deals_get(ticket=closed.order)
    assert [(d.entry, d.price) for d in deals] == [(mt5.DEAL_ENTRY_OUT_BY, sell.price)] * 2
    pair = round((sell.price - buy.price) * 0.1 * 100_000, 2)
    assert sum(d.profit for d in deals) == pytest.approx(pair)
