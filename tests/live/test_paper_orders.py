"""The paper broker's partial closes and pending orders: placed, filled on a bar's path,
removed, expired, and all of it rebuilt from the audit log after a restart."""

from __future__ import annotations

import pytest

from live.audit_logger import AuditLogger
from live.broker_types import (
    ORDER_TIME_GTC,
    ORDER_TIME_SPECIFIED,
    ORDER_TYPE_BUY,
    ORDER_TYPE_BUY_LIMIT,
    ORDER_TYPE_SELL,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_PENDING,
    TRADE_ACTION_REMOVE,
)
from live.paper_broker import PaperBroker


@pytest.fixture
def paper(live_config, make_sim, make_trader):
    """(trader's paper broker, terminal, config): a dry-run trader started on the simulator."""
    config = live_config(dry_run=True)
    terminal = make_sim()
    trader = make_trader(config, terminal)
    trader.start()
    return trader.broker, terminal, config


def deal(broker, side, volume, **extra):
    tick = broker.tick("EURUSD")
    return broker.send_order(
        action=TRADE_ACTION_DEAL,
        symbol="EURUSD",
        volume=volume,
        type=ORDER_TYPE_BUY if side == "buy" else ORDER_TYPE_SELL,
        price=tick.ask if side == "buy" else tick.bid,
        deviation=10,
        magic=7,
        comment="t",
        type_filling=1,
        **extra,
    )


def limit_below(broker, points, **extra):
    tick = broker.tick("EURUSD")
    return broker.send_order(
        action=TRADE_ACTION_PENDING,
        symbol="EURUSD",
        volume=0.1,
        type=ORDER_TYPE_BUY_LIMIT,
        price=round(tick.ask - points * 1e-5, 5),
        magic=7,
        comment="LTpending",
        type_filling=1,
        **extra,
    )


def restarted(broker: PaperBroker, config) -> PaperBroker:
    return PaperBroker(broker.connector, AuditLogger(config.audit_db), now=broker._now)


def test_a_deal_naming_a_position_with_less_volume_closes_part_of_it(paper):
    broker, _, config = paper
    opened = deal(broker, "buy", 0.1)
    part = deal(broker, "sell", 0.04, position=opened.order)
    (position,) = broker.positions()
    assert position.volume == pytest.approx(0.06) and part.volume == pytest.approx(0.04)
    assert [d.volume for d in broker.deals_for_position(opened.order)] == [0.1, 0.04]
    with pytest.raises(Exception, match="exceeds"):
        deal(broker, "sell", 0.1, position=opened.order)
    again = restarted(broker, config)
    assert [p.volume for p in again.positions()] == [pytest.approx(0.06)]
    assert again.account().balance == broker.account().balance


def test_a_pending_order_fills_on_the_bar_that_reaches_it_and_keeps_its_ticket(paper):
    broker, terminal, config = paper
    placed = limit_below(broker, 20, type_time=ORDER_TIME_GTC)
    (order,) = broker.orders()
    assert order.ticket == placed.order and order.comment == "LTpending"
    assert restarted(broker, config).orders()[0].ticket == placed.order
    for _ in range(200):
        terminal.sim_step_bar()
        broker.update_stops("H1", 3600)
        if broker.positions():
            break
    (position,) = broker.positions()
    assert broker.orders() == ()
    assert position.ticket == placed.order and position.price_open == order.price_open
    assert [d.order for d in broker.deals_for_order(placed.order)] == [placed.order]
    assert restarted(broker, config).orders() == ()


def test_removed_and_expired_orders_are_gone_for_good(paper):
    broker, terminal, config = paper
    placed = limit_below(broker, 5000, type_time=ORDER_TIME_GTC)
    broker.send_order(action=TRADE_ACTION_REMOVE, order=placed.order, magic=7, comment="x")
    assert broker.orders() == ()
    expiring = limit_below(
        broker,
        5000,
        type_time=ORDER_TIME_SPECIFIED,
        expiration=int(broker.tick("EURUSD").time) + 2 * 3600,
    )
    assert [o.ticket for o in broker.orders()] == [expiring.order]
    for _ in range(4):
        terminal.sim_step_bar()
        broker.update_stops("H1", 3600)
    assert broker.orders() == () and broker.positions() == ()
    assert restarted(broker, config).orders() == ()


def test_a_book_restored_before_its_balance_is_known_logs_cleanly(paper, caplog):
    broker, _, config = paper
    deal(broker, "buy", 0.1)  # no account() yet: no paper balance recorded
    with caplog.at_level("INFO", logger="live.paper_broker"):
        again = restarted(broker, config)
    assert len(again.positions()) == 1
    assert any("balance not known yet" in r.getMessage() for r in caplog.records)
