"""The idempotent executor against the simulator: persistence before sending, retries only for
retryable codes, reconciliation after lost replies and restarts, never a duplicate."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from live.audit_logger import AuditLogger
from live.backtesting_bridge import build_order_request
from live.errors import AuditWriteError, OutcomeUnknown
from live.mt5_connector import MT5Connector
from live.order_executor import OrderExecutor, OrderIntent, make_client_order_id
from live.sim_terminal import FaultConfig

BAR = datetime(2024, 1, 2, 10, tzinfo=UTC)


@pytest.fixture
def rig(live_config, make_sim, tmp_path):
    """Factory: (executor, connector, simulator, audit) with a recording sleep."""

    def factory(faults: FaultConfig | None = None, **config_overrides):
        terminal = make_sim(faults=faults or FaultConfig())
        config = live_config(**config_overrides)
        connector = MT5Connector(config, api=terminal)
        connector.connect()
        audit = AuditLogger(config.audit_db)
        sleeps: list[float] = []
        executor = OrderExecutor(
            connector,
            audit,
            config,
            sleep=sleeps.append,
            now=lambda: datetime.fromtimestamp(terminal.sim_time(), tz=UTC),
        )
        executor.sleeps = sleeps
        return executor, connector, terminal, audit

    return factory


def open_intent(
    connector, symbol="EURUSD", action="open_buy", volume=0.1, side="buy", filling=None, **extra
) -> OrderIntent:
    cid = make_client_order_id("Test", symbol, BAR, action)
    tick = connector.tick(symbol)
    request = build_order_request(
        symbol=symbol,
        side=side,
        volume=volume,
        price=tick.ask if side == "buy" else tick.bid,
        spec=connector.symbol_spec(symbol),
        magic=connector.config.magic_number,
        comment=cid,
        deviation=20,
        filling=connector.filling_mode(symbol) if filling is None else filling,
        **extra,
    )
    return OrderIntent(cid, symbol, side, volume, "open", request)


def statuses(audit, cid):
    return [row["status"] for row in audit.reader.order_rows(cid)]


def deals_with(terminal, cid):
    return [d for d in terminal.server.deals if d.comment == cid]


def test_client_order_ids_are_deterministic_and_fit_the_comment():
    first = make_client_order_id("SmaCross(fast=10,slow=30)", "EURUSD", BAR, "open_buy")
    assert first == make_client_order_id("SmaCross(fast=10,slow=30)", "EURUSD", BAR, "open_buy")
    assert first != make_client_order_id("SmaCross(fast=10,slow=30)", "EURUSD", BAR, "open_sell")
    assert len(first) == 18 and first.isalnum()


def test_intent_is_in_the_database_before_the_deal_happens(rig):
    executor, connector, terminal, audit = rig()
    intent = open_intent(connector)
    seen_at_deal = []
    terminal.on_change = lambda: seen_at_deal.append(statuses(audit, intent.client_order_id))
    result = executor.execute_order(intent)
    assert result.status == "filled"
    assert seen_at_deal[0] == ["intent"]
    assert statuses(audit, intent.client_order_id) == ["intent", "filled"]
    filled = audit.reader.latest_order(intent.client_order_id)
    assert filled["position_ticket"] == terminal.positions_get()[0].ticket
    assert filled["fill_price"] == terminal.positions_get()[0].price_open


def test_requotes_are_retried_with_backoff_and_fill_once(rig):
    executor, connector, terminal, audit = rig(
        FaultConfig(seed=1, requote_rate=0.6),
        order_max_retries=10,
        order_retry_base_seconds=0.5,
        order_retry_max_seconds=2.0,
    )
    intent = open_intent(connector)
    result = executor.execute_order(intent)
    assert result.status == "filled" and result.attempts > 1
    assert len(deals_with(terminal, intent.client_order_id)) == 1
    assert statuses(audit, intent.client_order_id).count("retry") == result.attempts - 1
    assert all(0.25 <= s <= 2.0 for s in executor.sleeps)  # jittered, capped backoff
    assert executor.stats.retries == result.attempts - 1


def test_non_retryable_codes_fail_at_once(rig):
    executor, connector, _terminal, audit = rig()
    intent = open_intent(connector, volume=0.015)
    intent.request["volume"] = 0.015  # an invalid step on purpose
    result = executor.execute_order(intent)
    assert (result.status, result.retcode, result.attempts) == ("rejected", 10014, 1)
    assert statuses(audit, intent.client_order_id) == ["intent", "rejected"]
    assert executor.sleeps == []


def test_lost_reply_is_reconciled_not_resent(rig):
    executor, connector, terminal, audit = rig(FaultConfig(reply_lost_rate=1.0))
    intent = open_intent(connector)
    result = executor.execute_order(intent)
    assert result.status == "filled" and result.message == "reconciled"
    assert len(deals_with(terminal, intent.client_order_id)) == 1
    assert statuses(audit, intent.client_order_id) == ["intent", "unknown", "reconciled_filled"]


@pytest.mark.parametrize("kind", ["open", "close"])
def test_a_reconciled_order_keeps_the_broker_tickets_it_was_found_by(rig, kind):
    """Every broker order and deal can be matched to the audit by its ticket, not only
    through the comment, reconciled rows included."""
    executor, connector, terminal, audit = rig()
    intent = open_intent(connector)
    if kind == "close":
        opened = executor.execute_order(intent)
        cid = make_client_order_id("Test", "EURUSD", BAR, f"close_{opened.position_ticket}")
        tick = connector.tick("EURUSD")
        request = {
            "action": 1,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": 1,
            "price": tick.bid,
            "position": opened.position_ticket,
            "comment": cid,
            "magic": 240601,
            "deviation": 20,
            "type_filling": connector.filling_mode("EURUSD"),
        }
        intent = OrderIntent(
            cid, "EURUSD", "sell", 0.1, "close", request, position_ticket=opened.position_ticket
        )
    terminal.sim_set_faults(reply_lost_rate=1.0)
    assert executor.execute_order(intent).message == "reconciled"
    (deal,) = deals_with(terminal, intent.client_order_id)
    row = audit.latest_order(intent.client_order_id)
    assert row["status"] == "reconciled_filled"
    assert (row["broker_order"], row["broker_deal"]) == (deal.order, deal.ticket)
    assert row["broker_order"] and row["broker_deal"]


def test_timeout_before_execution_is_resent_once_known_absent(rig):
    executor, connector, terminal, audit = rig(FaultConfig(seed=1, timeout_rate=0.5))
    intent = open_intent(connector)
    result = executor.execute_order(intent)
    assert result.status == "filled"
    assert len(deals_with(terminal, intent.client_order_id)) == 1
    rows = statuses(audit, intent.client_order_id)
    assert rows[0] == "intent" and rows[-1] == "filled"
    assert "unknown" in rows, "seed 1 times the first send out"
    assert rows[rows.index("unknown") + 1] == "reconciled_absent"


class Killed(BaseException):
    """The process dying (SIGKILL) at a chosen instant: nothing after it runs."""


def test_crash_during_the_resend_after_a_timeout_is_reconciled_not_sent_again(rig):
    executor, connector, terminal, audit = rig(FaultConfig(seed=1, timeout_rate=0.5))
    intent = open_intent(connector)

    def die_once_executed():
        terminal.on_change = None
        raise Killed

    terminal.on_change = die_once_executed  # the resend is executed, its reply never read
    with pytest.raises(Killed):
        executor.execute_order(intent)
    assert statuses(audit, intent.client_order_id) == [
        "intent",
        "unknown",
        "reconciled_absent",
        "resend",
    ]
    restarted = OrderExecutor(connector, AuditLogger(audit.path), connector.config)
    assert [r.status for r in restarted.reconcile_pending()] == ["filled"]
    assert restarted.execute_order(intent).duplicate
    assert len(deals_with(terminal, intent.client_order_id)) == 1


def test_an_order_found_absent_is_asked_for_again_before_it_is_sent(rig):
    executor, connector, terminal, audit = rig()
    intent = open_intent(connector)
    audit.record_order(
        client_order_id=intent.client_order_id,
        status="reconciled_absent",
        symbol="EURUSD",
        dry_run=False,
        side="buy",
        kind="open",
        volume=0.1,
    )
    terminal.order_send(intent.request)  # it reached the broker after all
    assert executor.execute_order(intent).message == "reconciled"
    assert len(deals_with(terminal, intent.client_order_id)) == 1


def test_an_order_pending_at_the_broker_is_found_and_not_sent_again(rig):
    executor, connector, terminal, audit = rig()
    intent = open_intent(connector)
    audit.record_order(
        client_order_id=intent.client_order_id,
        status="intent",
        symbol="EURUSD",
        dry_run=False,
        side="buy",
        kind="open",
        volume=0.1,
    )
    bid = connector.tick("EURUSD").bid  # accepted before the crash, not filled yet
    placed = terminal.order_send(
        {
            "action": terminal.TRADE_ACTION_PENDING,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": terminal.ORDER_TYPE_BUY_LIMIT,
            "price": round(bid - 0.005, 5),
            "magic": connector.config.magic_number,
            "comment": intent.client_order_id,
            "type_filling": terminal.ORDER_FILLING_RETURN,
        }
    )
    assert placed.retcode == terminal.TRADE_RETCODE_PLACED
    assert [r.status for r in executor.reconcile_pending()] == ["placed"]
    assert audit.reader.latest_order(intent.client_order_id)["broker_order"] == placed.order
    assert executor.execute_order(intent).duplicate
    assert deals_with(terminal, intent.client_order_id) == [] and terminal.orders_total() == 1


def test_giving_up_after_max_retries(rig):
    executor, connector, terminal, audit = rig(FaultConfig(requote_rate=1.0), order_max_retries=2)
    intent = open_intent(connector)
    result = executor.execute_order(intent)
    assert (result.status, result.attempts) == ("failed", 3)
    assert statuses(audit, intent.client_order_id)[-1] == "failed"
    assert terminal.positions_total() == 0


def test_the_same_decision_is_never_sent_twice(rig):
    executor, connector, terminal, _audit = rig()
    intent = open_intent(connector)
    assert executor.execute_order(intent).status == "filled"
    again = executor.execute_order(intent)
    assert again.duplicate and again.status == "filled"
    assert len(deals_with(terminal, intent.client_order_id)) == 1
    assert executor.stats.duplicates_suppressed == 1


def test_restart_reconciles_unfinished_orders(rig, live_config, make_sim):
    _executor, connector, terminal, audit = rig()
    # crash between persisting and sending: an intent with nothing at the broker
    lost = open_intent(connector, action="open_buy")
    audit.record_order(
        client_order_id=lost.client_order_id,
        status="intent",
        symbol="EURUSD",
        dry_run=False,
        side="buy",
        kind="open",
        volume=0.1,
    )
    # crash after the broker executed but before the reply was recorded
    done = open_intent(connector, action="open_sell", side="sell")
    audit.record_order(
        client_order_id=done.client_order_id,
        status="intent",
        symbol="EURUSD",
        dry_run=False,
        side="sell",
        kind="open",
        volume=0.1,
    )
    terminal.order_send(done.request)
    fresh = OrderExecutor(connector, AuditLogger(audit.path), connector.config)
    results = {r.client_order_id: r.status for r in fresh.reconcile_pending()}
    assert results == {lost.client_order_id: "unknown", done.client_order_id: "filled"}
    assert statuses(audit, lost.client_order_id)[-1] == "reconciled_absent"
    assert statuses(audit, done.client_order_id)[-1] == "reconciled_filled"
    assert audit.reader.unresolved_orders() == []
    # the absent one may be sent now; the filled one never again
    assert fresh.execute_order(lost).status == "filled"
    assert fresh.execute_order(done).duplicate
    assert len(deals_with(terminal, done.client_order_id)) == 1


def test_unsupported_filling_falls_back_once(rig):
    executor, connector, terminal, _audit = rig()
    intent = open_intent(connector, symbol="GBPUSD", filling=0)  # FOK; the symbol wants IOC
    result = executor.execute_order(intent)
    assert result.status == "filled" and result.attempts == 2
    assert terminal.positions_get()[0].symbol == "GBPUSD"


def test_closing_a_position_that_is_already_gone_is_not_needed(rig):
    executor, connector, terminal, audit = rig()
    opened = executor.execute_order(open_intent(connector))
    position = terminal.positions_get()[0]
    terminal.order_send(
        {
            "action": 1,
            "symbol": "EURUSD",
            "volume": 0.1,
            "type": 1,
            "price": connector.tick("EURUSD").bid,
            "position": position.ticket,
            "type_filling": 0,
        }
    )  # closed by hand meanwhile
    cid = make_client_order_id("Test", "EURUSD", BAR, f"close_{position.ticket}")
    close = OrderIntent(
        cid,
        "EURUSD",
        "sell",
        0.1,
        "close",
        {
            "symbol": "EURUSD",
            "type": 1,
            "volume": 0.1,
            "price": 1.0,
            "position": position.ticket,
            "comment": cid,
        },
        position_ticket=opened.position_ticket,
    )
    audit.record_order(
        client_order_id=cid,
        status="intent",
        symbol="EURUSD",
        dry_run=False,
        kind="close",
        position_ticket=position.ticket,
    )
    assert executor.execute_order(close).status == "not_needed"
    assert statuses(audit, cid) == ["intent", "not_needed"]


def test_no_audit_no_order(rig, tmp_path):
    executor, connector, terminal, audit = rig()
    executor.audit = AuditLogger(audit.path, busy_timeout_s=0.05)
    blocker = sqlite3.connect(audit.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(AuditWriteError):
            executor.execute_order(open_intent(connector))
    finally:
        blocker.execute("ROLLBACK")
    assert terminal.positions_total() == 0 and terminal.server.deals == []


def test_execution_statistics(rig):
    executor, connector, _terminal, _audit = rig(
        FaultConfig(seed=4, requote_rate=0.5), order_max_retries=10
    )
    for action in ("open_buy", "open_sell"):
        side = "buy" if action == "open_buy" else "sell"
        executor.execute_order(open_intent(connector, action=action, side=side))
    stats = executor.stats.as_dict()
    assert stats["orders"] == 2 and stats["filled"] == 2
    assert stats["sends"] == 2 + stats["retries"]
    assert stats["by_retcode"].get(10004, 0) == stats["retries"]
    assert stats["by_retcode"][10009] == 2


# ---------------------------------------------------------------- brokers that keep no comment


def test_a_lost_reply_is_found_without_the_comment_the_broker_rewrote(rig):
    executor, connector, terminal, audit = rig(
        FaultConfig(comment_rewrite_rate=1.0, reply_lost_rate=1.0)
    )
    intent = open_intent(connector)
    result = executor.execute_order(intent)
    assert result.status == "filled" and result.message == "reconciled"
    (position,) = terminal.positions_get()
    assert position.comment != intent.client_order_id  # the broker kept its own reference
    row = audit.latest_order(intent.client_order_id)
    assert row["status"] == "reconciled_filled" and row["position_ticket"] == position.ticket
    assert len(terminal.server.deals) == 1  # found, not sent again


def test_a_comment_cut_short_still_names_the_order(rig):
    executor, connector, terminal, _ = rig(
        FaultConfig(comment_truncate_rate=1.0, reply_lost_rate=1.0)
    )
    intent = open_intent(connector)
    assert executor.execute_order(intent).message == "reconciled"
    (position,) = terminal.positions_get()
    assert intent.client_order_id.startswith(position.comment) and len(position.comment) == 12


def test_when_several_orders_could_be_it_nothing_is_assumed(rig):
    executor, connector, terminal, audit = rig(FaultConfig(comment_rewrite_rate=1.0))
    for n in range(2):  # two fills nobody recorded, alike in all but the lost comment
        terminal.order_send({**open_intent(connector, action=f"other_{n}").request})
    terminal.sim_set_faults(reply_lost_rate=1.0)
    intent = open_intent(connector)
    with pytest.raises(OutcomeUnknown, match="could be it"):
        executor.execute_order(intent)
    assert len(terminal.server.deals) == 3  # sent once, never again
    assert statuses(audit, intent.client_order_id)[-1] == "unknown"


def test_a_fill_whose_deal_the_history_does_not_show_yet_is_looked_up(rig):
    executor, connector, terminal, audit = rig(
        FaultConfig(history_lag_rate=1.0, history_lag_calls=4)
    )
    intent = open_intent(connector)
    result = executor.execute_order(intent)
    assert result.status == "filled"
    (deal,) = terminal.server.deals
    row = audit.latest_order(intent.client_order_id)
    assert (row["broker_order"], row["broker_deal"]) == (deal.order, deal.ticket)
    assert executor.sleeps  # it waited for the history, it did not assume
