"""`live_trader.py --check`: what it reports, and its exit codes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from live.doctor import run_check
from live.instance_lock import account_lock
from live.mt5_connector import MT5Connector
from tests.live.conftest import ROOT, SMA_CROSS
from tests.live.test_broker_time import ServerClockTerminal


def check(config, terminal) -> tuple[int, str]:
    lines: list[str] = []
    code = run_check(config, MT5Connector(config, api=terminal), out=lines.append)
    return code, "\n".join(lines)


def test_a_ready_setup_passes_and_names_the_filling_modes(live_config, make_sim):
    config = live_config(symbols=("EURUSD", "GBPUSD"))
    code, text = check(config, make_sim(symbols=("EURUSD", "GBPUSD")))
    assert code == 0 and "result: ready" in text
    assert "EURUSD: digits 5" in text and "filling FOK" in text
    assert "GBPUSD:" in text and "filling IOC" in text
    assert "account 10000001 on Sim-Demo: demo" in text


@pytest.mark.parametrize(
    ("sim_options", "config_options", "problem", "fix"),
    [
        (
            {"real_account": True},
            {"dry_run": False},
            "REAL account and DRY_RUN=false",
            "ALLOW_REAL_ACCOUNT=true",
        ),
        ({"trade_allowed": False}, {"dry_run": False}, "Algo Trading is off", "press Algo Trading"),
        (
            {"symbols": ("EURUSD", "USDTRY")},
            {"symbols": ("EURUSD", "USDTRY")},
            "USDTRY: order_check refused USDTRY: 10017",
            "",
        ),
        ({}, {"symbols": ("EURUSD.m",)}, "EURUSD.m", "exact symbol name"),
        (
            {"password": "right"},
            {"mt5_login": 10_000_001, "mt5_password": "wrong"},
            "authorization failed",
            "MT5_LOGIN, MT5_PASSWORD",
        ),
    ],
)
def test_problems_are_named_with_their_fix(
    live_config, make_sim, sim_options, config_options, problem, fix
):
    terminal = make_sim(**{"symbols": ("EURUSD",), **sim_options})
    terminal.shutdown()  # the doctor connects by itself
    code, text = check(live_config(**config_options), terminal)
    assert code == 1, text
    assert problem in text and fix in text
    assert "wrong" not in text  # the password is never echoed


def test_algo_trading_off_blocks_dry_runs_too(live_config, make_sim):
    """order_check answers 10027 as well, so a dry run could not validate its orders."""
    code, text = check(live_config(dry_run=True), make_sim(trade_allowed=False))
    assert code == 1 and "FAIL  Algo Trading is off" in text and "10027" in text


def test_command_line_exit_codes(tmp_path):
    env = tmp_path / "test.env"
    env.write_text(f"AUDIT_DB={tmp_path / 'audit.db'}\nKILL_SWITCH_FILE={tmp_path / 'K'}\n")
    base = [sys.executable, str(ROOT / "live" / "live_trader.py"), "--config", str(env), "--check"]
    ready = subprocess.run(
        [*base, "--backend", "sim", "--strategy", str(SMA_CROSS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ready.returncode == 0 and "result: ready" in ready.stdout
    assert not (tmp_path / "audit.db").exists()  # a check writes nothing
    unreachable = subprocess.run(
        [*base, "--backend", "mt5linux"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"MT5LINUX_PORT": "9", "PATH": ""},
    )
    assert unreachable.returncode == 1, unreachable.stdout
    assert "rpyc_classic.py --host 127.0.0.1 -p 18812" in unreachable.stdout
    usage = subprocess.run(
        [*base, "--timeframe", "H7"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert usage.returncode == 2
    assert "FAIL" in usage.stdout and "H7" in usage.stdout and "result: 1 problem" in usage.stdout


def test_auto_falling_back_to_the_simulator_is_not_called_ready(tmp_path):
    """With no MT5 terminal, auto checks the simulator: the verdict must say so, since
    nothing about a broker was checked."""
    env = tmp_path / "test.env"
    env.write_text(f"AUDIT_DB={tmp_path / 'audit.db'}\nKILL_SWITCH_FILE={tmp_path / 'K'}\n")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "live" / "live_trader.py"),
            "--config",
            str(env),
            "--check",
            "--backend",
            "auto",
            "--dry-run",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("result: ready for a dry run on the built-in simulator only")
    assert "no broker connection was checked" in last


def test_a_kill_switch_file_is_reported_before_any_database_exists(live_config, make_sim, tmp_path):
    config = live_config()
    config.kill_switch_file.write_text("halt\n")
    assert not config.audit_db.exists()
    code, text = check(config, make_sim())
    assert code == 0
    assert f"WARN  kill-switch file {config.kill_switch_file} exists" in text


@pytest.mark.parametrize(
    ("server_zone", "broker_tz", "line"),
    [
        ("NY+7", "NY+7", "OK    broker clock: NY+7 (UTC+02:00 now), from BROKER_TZ"),
        (
            "UTC+3",
            "auto",
            "OK    broker clock: UTC+03:00 (UTC+03:00 now), auto from EURUSD tick at ",
        ),
        ("UTC", "auto", "OK    broker clock: UTC+00:00 (UTC+00:00 now), auto from EURUSD tick at "),
    ],
)
def test_the_check_names_the_broker_clock_and_where_it_comes_from(
    live_config, make_sim, server_zone, broker_tz, line
):
    server = ServerClockTerminal(make_sim(), server_zone)
    server.shutdown()  # the doctor connects by itself
    code, text = check(live_config(broker_tz=broker_tz), server)
    assert code == 0, text
    assert line in text
    if broker_tz == "auto":  # the tick's time as the server stamped it, and how sure it is
        stamped = datetime.fromtimestamp(server.server_now(), UTC).strftime("%Y-%m-%d %H:%M")
        assert f"{line}{stamped} server (provisional until a newer tick)" in text


def test_a_broker_tz_the_ticks_contradict_is_a_warning(live_config, make_sim):
    server = ServerClockTerminal(make_sim(), "UTC+3")
    server.shutdown()
    code, text = check(live_config(broker_tz="UTC+2"), server)
    assert code == 0  # a warning: the trader can start, but its times are an hour off
    assert "WARN  broker clock: UTC+2 (UTC+02:00 now), from BROKER_TZ; BROKER_TZ=UTC+2" in text
    assert "says UTC+03:00: BROKER_TZ is likely wrong" in text


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        ({}, "OK    alerts: none (set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID, or WEBHOOK_URL)"),
        (
            {"telegram_bot_token": "123456:tok-never-shown", "telegram_chat_id": "-100123"},
            "OK    alerts: Telegram (chat -100123), at level info and above",
        ),
        (
            {
                "telegram_bot_token": "123456:tok-never-shown",
                "telegram_chat_id": "@desk_alerts",
                "webhook_url": "https://hooks.example.com/s3cret-path",
                "alert_min_level": "warning",
            },
            "OK    alerts: Telegram (chat @desk_alerts), webhook, at level warning and above",
        ),
    ],
    ids=["none", "telegram", "telegram-and-webhook"],
)
def test_the_check_says_which_alert_channels_are_on(live_config, make_sim, settings, line):
    code, text = check(live_config(**settings), make_sim())
    assert code == 0 and line in text
    assert "tok-never-shown" not in text and "s3cret-path" not in text


def test_a_trader_holding_the_account_is_named_from_this_configs_lock_dir(live_config, make_sim):
    config = live_config(dry_run=False)
    assert config.lock_dir is not None and config.lock_dir.parent == config.audit_db.parent
    with account_lock(config.lock_dir, login=10_000_001, server="Sim-Demo", magic=240_601):
        code, text = check(config, make_sim())
    assert code == 0, text
    assert "WARN  a trader is running on this account with magic 240601" in text
