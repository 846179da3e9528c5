"""Alerts and Telegram commands against real HTTP servers on 127.0.0.1 playing the Bot API
and a webhook receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket

import pytest

from live.alerts import HELP_TEXT, AlertSystem, format_message
from live.audit_logger import AuditLogger
from live.control_requests import kill_switch_origin
from tests.live.conftest import run_bars
from tests.live.fake_servers import FakeServer, FakeTelegram, server_error, too_many_requests

TOKEN = "4242:test-token-never-logged"
CHAT = 777
SECRET = "hook-secret"


@pytest.fixture
def telegram():
    server = FakeTelegram(TOKEN)
    yield server
    server.close()


@pytest.fixture
def hook():
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def alert_config(live_config, telegram, hook):
    def factory(**overrides: object):
        base = {
            "telegram_bot_token": TOKEN,
            "telegram_chat_id": str(CHAT),
            "telegram_api_url": telegram.url,
            "webhook_url": hook.url + "/hook",
            "webhook_secret": SECRET,
        }
        return live_config(**{**base, **overrides})

    return factory


@pytest.fixture
def make_alerts():
    made = []

    def factory(config, **options: object) -> AlertSystem:
        audit = AuditLogger(config.audit_db)
        system = AlertSystem.from_config(config, audit=audit, **{"base_delay_s": 0.01, **options})
        made.append(system)
        return system

    yield factory
    for system in made:
        system.close(timeout_s=1.0)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_both_channels_receive_formatted_messages_in_order(
    alert_config, make_alerts, telegram, hook
):
    alerts = make_alerts(alert_config())
    sent = [
        ("startup", "dry-run on EURUSD", "info"),
        ("trade_opened", "opened EURUSD buy 0.1 lots at 1.1", "info"),
        ("order_failed", "GBPUSD sell order rejected: 10016 invalid stops", "error"),
        ("kill_switch", "KILL SWITCH halt: no new entries", "critical"),
    ]
    for kind, text, severity in sent:
        alerts.notify(kind, text, severity=severity, symbol="EURUSD")
    alerts.close(timeout_s=5.0)

    expected = [format_message(kind, severity, text) for kind, text, severity in sent]
    assert telegram.texts() == expected
    assert expected[3].startswith("[!!!] Kill switch\n")
    assert all(
        r.params["chat_id"] == str(CHAT) for r in telegram.received if r.name == "sendMessage"
    )
    posts = hook.wait_for(4)
    assert [json.loads(p.body)["text"] for p in posts] == expected
    assert [json.loads(p.body)["kind"] for p in posts] == [k for k, _, _ in sent]
    for post in posts:
        digest = hmac.new(SECRET.encode(), post.body, hashlib.sha256).hexdigest()
        assert post.headers["X-Signature-SHA256"] == digest
    reader = AuditLogger(alert_config().audit_db).reader
    assert reader.undelivered_alerts("telegram") == []
    assert reader.undelivered_alerts("webhook") == []


def test_retry_after_from_telegram_is_honoured(alert_config, make_alerts, telegram):
    telegram.answers.append(too_many_requests(1))
    alerts = make_alerts(alert_config(webhook_url=""))
    alerts.notify("error", "terminal unreachable", severity="error")
    first, second = telegram.wait_for(2, "sendMessage")
    assert second.at - first.at >= 1.0  # waited as asked, not the 0.01 s backoff
    alerts.close()
    assert telegram.texts()[-1].endswith("terminal unreachable")


def test_failing_receiver_is_retried_with_backoff_then_delivered(alert_config, make_alerts, hook):
    hook.answers.extend([server_error(), server_error()])
    config = alert_config(telegram_bot_token="", telegram_chat_id="")
    alerts = make_alerts(config)
    alerts.notify("reconnect", "MT5 terminal reachable again", severity="warning")
    hook.wait_for(3)
    alerts.close()
    rows = AuditLogger(config.audit_db).reader.query(
        "SELECT status, attempts FROM alert_deliveries ORDER BY id"
    )
    assert [(r["status"], r["attempts"]) for r in rows] == [
        ("failed", 1),
        ("failed", 2),
        ("delivered", 3),
    ]


def test_a_refusal_is_not_retried(alert_config, make_alerts, hook):
    hook.answers.append((400, {"error": "bad"}, 0.0))
    config = alert_config(telegram_bot_token="", telegram_chat_id="")
    alerts = make_alerts(config)
    alerts.notify("error", "x", severity="error")
    alerts.close()
    assert len(hook.received) == 1
    (row,) = AuditLogger(config.audit_db).reader.query("SELECT * FROM alert_deliveries")
    assert row["status"] == "dropped" and "400" in row["detail"]


def test_a_slow_channel_delays_neither_the_caller_nor_the_other_channel(
    alert_config, make_alerts, telegram, hook
):
    hook.answers.append((200, {"ok": True}, 3.0))  # the webhook hangs for 3 s
    alerts = make_alerts(alert_config())
    alerts.notify("trade_closed", "closed EURUSD long 0.1 lots: P/L 12.00 (tp)")
    alerts.notify("daily_limit", "daily limit reached", severity="warning")
    assert hook.received == []  # notify returned while the webhook still hangs
    telegram.wait_for(2, "sendMessage", timeout=2.5)
    assert hook.received == []  # Telegram got both while the webhook was still stuck
    assert alerts.queue_depth() >= 1
    alerts.close(timeout_s=10)
    assert len(hook.wait_for(2)) == 2


def test_a_flood_of_the_same_alert_becomes_one_message_and_a_count(
    alert_config, make_alerts, telegram
):
    alerts = make_alerts(alert_config(webhook_url=""), flood_window_s=0.3)
    for _ in range(50):
        alerts.notify("disconnect", "MT5 terminal unreachable; retrying", severity="error")
    telegram.wait_for(2, "sendMessage", timeout=5)
    alerts.close()
    texts = telegram.texts()
    assert len(texts) == 2
    assert texts[1].endswith("(repeated 49 more times in 0 s)")


def test_undelivered_alerts_are_sent_after_a_restart(alert_config, make_alerts, telegram, caplog):
    caplog.set_level(logging.DEBUG)
    down = alert_config(webhook_url="", telegram_api_url=closed_port_url())
    first = make_alerts(down)
    first.notify("shutdown", "session summary: 3 trades", severity="info")
    first.close(timeout_s=0.3)
    assert len(AuditLogger(down.audit_db).reader.undelivered_alerts("telegram")) == 1

    make_alerts(alert_config(webhook_url="")).close(timeout_s=5)
    assert telegram.texts() == [format_message("shutdown", "info", "session summary: 3 trades")]
    assert AuditLogger(down.audit_db).reader.undelivered_alerts("telegram") == []
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("live"))
    assert "Telegram unreachable" in ours and TOKEN not in ours
    assert TOKEN.encode() not in down.audit_db.read_bytes()


def test_below_the_minimum_level_nothing_is_sent(alert_config, make_alerts, telegram):
    alerts = make_alerts(alert_config(webhook_url="", alert_min_level="warning"))
    alerts.notify("trade_opened", "opened", severity="info")
    alerts.notify("error", "broken", severity="error")
    alerts.close()
    assert telegram.texts() == [format_message("error", "error", "broken")]


def test_commands_from_the_configured_chat_only(
    alert_config, make_alerts, telegram, make_sim, make_trader, caplog
):
    config = alert_config(webhook_url="", strategy_params="fast=5,slow=12")
    terminal = make_sim()
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 60)
    alerts = make_alerts(config)
    alerts.start_commands(trader, poll_timeout_s=0.2)

    def ask(text: str) -> str:
        before = len(telegram.texts())
        telegram.queue_message(CHAT, text)
        telegram.wait_for(before + 1, "sendMessage")
        return telegram.texts()[before]

    assert ask("/status") == trader.status_text() and "dry-run" in ask("/status")
    assert ask("/positions@alerts_test_bot") == trader.positions_text()
    assert ask("/daily") == trader.daily_text()
    assert "kill switch created" in ask("/stop")
    assert config.kill_switch_file.read_text().split()[0] == "halt"
    assert kill_switch_origin(config.kill_switch_file).via == "telegram"  # who asked, for the log
    assert "removed" in ask("/resume") and not config.kill_switch_file.exists()
    assert ask("/help") == HELP_TEXT

    caplog.set_level(logging.WARNING, logger="live.telegram_alerts")
    sends = len(telegram.texts())
    telegram.queue_message(666, "/stop")
    telegram.queue_message(CHAT, "/help")  # answered after the stranger's message is skipped
    telegram.wait_for(sends + 1, "sendMessage")
    assert telegram.texts()[sends] == HELP_TEXT and not config.kill_switch_file.exists()
    assert "ignored a message from chat 666" in caplog.text
