"""Telegram commands against the local Bot API stand-in: no replay of commands sent before the
start, /stop never weakens a stronger kill switch, and a failing command is answered while the
listener keeps going."""

from __future__ import annotations

import logging
import time

import pytest

from live.alerts import HELP_TEXT
from tests.live.conftest import run_bars
from tests.live.test_alerts import CHAT, alert_config, hook, make_alerts, telegram

__all__ = ["alert_config", "hook", "make_alerts", "telegram"]  # fixtures shared with test_alerts


def ask(telegram, text: str) -> str:
    """Send `text` as the user and return the bot's reply to it."""
    before = len(telegram.texts())
    telegram.queue_message(CHAT, text)
    telegram.wait_for(before + 1, "sendMessage")
    return telegram.texts()[before]


def test_commands_sent_before_the_start_are_not_replayed(
    alert_config, make_alerts, telegram, caplog
):
    config = alert_config(webhook_url="")
    config.kill_switch_file.write_text("halt\n")
    an_hour_ago = time.time() - 3600
    telegram.queue_message(CHAT, "/stop", date=an_hour_ago)
    telegram.queue_message(CHAT, "/resume", date=an_hour_ago + 60)  # while it was down
    caplog.set_level(logging.WARNING, logger="live.telegram_alerts")
    alerts = make_alerts(config)
    alerts.start_commands(None, poll_timeout_s=0.2)
    telegram.wait_for(1, "getUpdates")  # the backlog is gone once the first poll returned

    assert ask(telegram, "/help") == HELP_TEXT  # answered: the listener is up
    assert telegram.texts() == [HELP_TEXT]  # and the old /resume got no answer...
    assert config.kill_switch_file.read_text() == "halt\n"  # ...nor acted
    assert int(telegram.get_updates_calls()[0]["offset"]) == -1
    assert "sent before the trader started were dropped" in caplog.text


def test_a_command_sent_as_the_listener_starts_is_answered(alert_config, make_alerts, telegram):
    """The newest pending update is kept when it was sent after the start."""
    config = alert_config(webhook_url="")
    alerts = make_alerts(config)
    alerts.start_commands(None, poll_timeout_s=0.2)
    telegram.queue_message(CHAT, "/stop", date=time.time() + 1)
    telegram.wait_for(1, "sendMessage")
    assert "kill switch created" in telegram.texts()[0]


@pytest.mark.parametrize("level", ["close_all", "reduce"])
def test_stop_keeps_a_stronger_kill_switch(alert_config, make_alerts, telegram, level):
    config = alert_config(webhook_url="")
    config.kill_switch_file.write_text(f"{level}\n")
    alerts = make_alerts(config)
    alerts.start_commands(None, poll_timeout_s=0.2)
    reply = ask(telegram, "/stop")
    assert f"already on at {level}" in reply and "stronger than halt" in reply
    assert config.kill_switch_file.read_text() == f"{level}\n"


def test_stop_on_an_empty_file_reads_it_as_the_trader_does(alert_config, make_alerts, telegram):
    """An empty file means KILL_SWITCH_ACTION, here close_all: /stop leaves it."""
    config = alert_config(webhook_url="", kill_switch_action="close_all")
    config.kill_switch_file.write_text("")
    alerts = make_alerts(config)
    alerts.start_commands(None, poll_timeout_s=0.2)
    assert "already on at close_all" in ask(telegram, "/stop")
    assert config.kill_switch_file.read_text() == ""
    assert "removed" in ask(telegram, "/resume")
    assert not config.kill_switch_file.exists()
    assert "kill switch created" in ask(telegram, "/stop")
    assert "already on (halt" in ask(telegram, "/stop")


def test_a_failing_command_is_answered_and_the_listener_keeps_going(
    alert_config, make_alerts, telegram, make_sim, make_trader, caplog
):
    config = alert_config(webhook_url="", strategy_params="fast=5,slow=12")
    terminal = make_sim()
    trader = make_trader(config, terminal)
    trader.start()
    run_bars(trader, terminal, 30)
    good = dict(trader.last_status)
    trader.status.last_status = {"mode": "dry-run"}  # a status the text cannot be made from
    caplog.set_level(logging.ERROR, logger="live.telegram_alerts")
    alerts = make_alerts(config)
    alerts.start_commands(trader, poll_timeout_s=0.2)

    reply = ask(telegram, "/status")
    assert reply.startswith("/status failed: KeyError") and "keeps running" in reply
    assert "telegram command /status failed" in caplog.text
    assert ask(telegram, "/help") == HELP_TEXT
    trader.status.last_status = good
    assert ask(telegram, "/status") == trader.status_text()
    assert alerts.commands_listening
