"""LiveConfig: precedence, validation messages naming key and value, paths, redaction, logs."""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path

import pytest

from live.config import PROJECT_ROOT, LiveConfig
from live.errors import ConfigError
from live.json_logs import setup_logging


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trader.env"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_safe():
    config = LiveConfig.load(environ={}, env_file=None)
    assert config.dry_run is True and config.allow_real_account is False
    assert config.audit_db == PROJECT_ROOT / "data" / "audit.db"
    assert config.kill_switch_file == PROJECT_ROOT / "KILL_SWITCH"


def test_precedence_env_file_then_environment_then_overrides(tmp_path):
    env = write_env(tmp_path, "SYMBOLS=EURUSD,GBPUSD\nLOT_SIZE=0.05\nTIMEFRAME=M15\n")
    config = LiveConfig.load(env, environ={"LOT_SIZE": "0.02"}, overrides={"timeframe": "H4"})
    assert config.symbols == ("EURUSD", "GBPUSD")
    assert config.lot_size == 0.02
    assert config.timeframe == "H4"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MAX_DAILY_LOSS_PCT", "abc", "MAX_DAILY_LOSS_PCT='abc': expected a number"),
        ("MAX_DAILY_LOSS_PCT", "150", "must be <= 100"),
        ("DRY_RUN", "maybe", "DRY_RUN='maybe': expected true or false"),
        ("MT5_BACKEND", "mt4", "did you mean mt5"),
        ("TIMEFRAME", "H5", "TIMEFRAME='H5'"),
        ("MT5LINUX_PORT", "70000", "must be <= 65535"),
        ("TRADING_DAY_TZ", "Mars/Base", "unknown timezone"),
        ("SYMBOLS", " , ", "SYMBOLS is empty: give at least one symbol"),
        ("SYMBOLS", "", "SYMBOLS is empty: give at least one symbol"),
        ("LOT_SIZE", "-1", "LOT_SIZE=-1.0: must be > 0"),
        ("SIM_SPEED", "fast", "positive number or max"),
        ("WEBHOOK_URL", "ftp://x", "must start with http"),
        ("KILL_SWITCH_ACTION", "panic", "halt, reduce, close_all"),
    ],
)
def test_bad_values_name_the_key_and_value(tmp_path, key, value, message):
    env = write_env(tmp_path, f"{key}={value}\n")
    with pytest.raises(
        ConfigError,
        match=message.replace("(", r"\(")
        .replace(")", r"\)")
        .replace("+", r"\+")
        .replace("*", r"\*"),
    ):
        LiveConfig.load(env, environ={})


def test_unknown_key_in_env_file_suggests_the_right_one(tmp_path):
    env = write_env(tmp_path, "MAX_DAILY_LOS_PCT=2\n")
    with pytest.raises(ConfigError, match="did you mean MAX_DAILY_LOSS_PCT"):
        LiveConfig.load(env, environ={})


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        LiveConfig.load(tmp_path / "nope.env", environ={})


def test_relative_paths_resolve_against_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = LiveConfig.load(environ={"AUDIT_DB": "data/x.db", "LOG_DIR": "/var/tmp/logs"})
    assert config.audit_db == PROJECT_ROOT / "data" / "x.db"
    assert config.log_dir == Path("/var/tmp/logs")


def test_secrets_are_redacted_in_to_dict_and_errors(tmp_path):
    env = write_env(
        tmp_path,
        "MT5_PASSWORD=hunter2-secret\nTELEGRAM_BOT_TOKEN=123:ABCDEF\nTELEGRAM_CHAT_ID=42\n",
    )
    config = LiveConfig.load(env, environ={})
    shown = json.dumps(config.to_dict())
    assert "hunter2-secret" not in shown and "123:ABCDEF" not in shown
    assert config.to_dict()["MT5_PASSWORD"] == "***"
    assert set(config.secrets()) == {"hunter2-secret", "123:ABCDEF"}


def test_every_setting_has_an_env_key_help_and_section():
    keys = [f.metadata["env"] for f in fields(LiveConfig)]
    assert len(keys) == len(set(keys))
    for spec in fields(LiveConfig):
        assert spec.metadata["help"] and spec.metadata["section"], spec.name


def test_json_logs_carry_context_and_never_the_password(tmp_path):
    config = LiveConfig.load(environ={"LOG_DIR": str(tmp_path), "MT5_PASSWORD": "pa55-word-x"})
    log_file = setup_logging(config, console=False)
    log = logging.getLogger("live.test")
    log.warning("login with pa55-word-x failed", extra={"symbol": "EURUSD", "retcode": 10016})
    try:
        raise RuntimeError("boom pa55-word-x")
    except RuntimeError:
        log.exception("crash")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    first = next(x for x in lines if x["logger"] == "live.test")
    assert first["message"] == "login with *** failed"
    assert (first["symbol"], first["retcode"], first["level"]) == ("EURUSD", 10016, "WARNING")
    assert "pa55-word-x" not in log_file.read_text()
    assert any("exception" in x for x in lines)


def test_choices_are_case_insensitive(tmp_path):
    env = write_env(
        tmp_path,
        "TIMEFRAME=h4\nLOG_LEVEL=debug\nMT5_BACKEND=SIM\n"
        "KILL_SWITCH_ACTION=Close_All\nSIZING_MODE=Fixed\n",
    )
    config = LiveConfig.load(env, environ={})
    assert (config.timeframe, config.log_level, config.backend) == ("H4", "DEBUG", "sim")
    assert (config.kill_switch_action, config.sizing_mode) == ("close_all", "fixed")


def test_a_relative_settings_file_is_found_in_the_working_folder(tmp_path, monkeypatch):
    write_env(tmp_path, "LOT_SIZE=0.03\n")
    monkeypatch.chdir(tmp_path)
    assert LiveConfig.load("trader.env", environ={}).lot_size == 0.03


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("THIS IS NOT A LINE", "'THIS IS NOT A LINE'"),
        ('SYMBOLS="EURUSD', "'SYMBOLS=\"EURUSD'"),
        ('MT5_PASSWORD="pw-never-shown', "'MT5_PASSWORD=***'"),  # a secret: key only
        ("MT5_PASSWORD pw-never-shown", "'MT5_PASSWORD ***'"),
        ('MT5_PASWORD="pw-never-shown', "'MT5_PASWORD=***'"),  # a misspelt secret key too
    ],
)
def test_a_line_that_cannot_be_parsed_names_the_file_and_line(tmp_path, caplog, line, shown):
    env = write_env(tmp_path, f"SYMBOLS=EURUSD\n\nTIMEFRAME=H1\n{line}\nLOT_SIZE=0.01\n")
    with pytest.raises(ConfigError) as raised:
        LiveConfig.load(env, environ={})
    assert str(raised.value) == f"{env} line 4: cannot parse {shown} (expected KEY=value)"
    assert "pw-never-shown" not in str(raised.value)
    assert not [r for r in caplog.records if r.name.startswith("dotenv")]  # no second warning


def test_a_key_without_value_names_its_line(tmp_path):
    env = write_env(tmp_path, "SYMBOLS=EURUSD\nTIMEFRAME\n")
    with pytest.raises(ConfigError, match=r"trader\.env line 2: TIMEFRAME has no '=' and value"):
        LiveConfig.load(env, environ={})


def test_quoting_comments_and_references_still_read_as_dotenv_does(tmp_path):
    env = write_env(
        tmp_path,
        "# a comment\n\nexport SYMBOLS='EURUSD,GBPUSD'  # two\n"
        'MT5_SERVER="Demo Server"\nMT5_PATH=${MT5_SERVER}/x\n',
    )
    config = LiveConfig.load(env, environ={})
    assert config.symbols == ("EURUSD", "GBPUSD")
    assert (config.mt5_server, config.mt5_path) == ("Demo Server", "Demo Server/x")


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("TELEGRAM_BOT_TOKEN=123456:tok-never-shown\n", "TELEGRAM_CHAT_ID"),
        ("TELEGRAM_CHAT_ID=42\n", "TELEGRAM_BOT_TOKEN"),
    ],
)
def test_telegram_needs_both_its_token_and_its_chat(tmp_path, text, missing):
    with pytest.raises(ConfigError, match=f"{missing} is empty") as raised:
        LiveConfig.load(write_env(tmp_path, text), environ={})
    assert "tok-never-shown" not in str(raised.value)


@pytest.mark.parametrize("chat", ["42", "-1001234567890", "@my_channel"])
def test_telegram_chat_ids_a_chat_can_have(tmp_path, chat):
    text = f"TELEGRAM_BOT_TOKEN=123456:tok\nTELEGRAM_CHAT_ID={chat}\n"
    assert LiveConfig.load(write_env(tmp_path, text), environ={}).telegram_chat_id == chat


@pytest.mark.parametrize("chat", ["my-chat", "42x", "@ab", "https://t.me/my_channel"])
def test_a_telegram_chat_id_no_chat_can_have_is_named(tmp_path, chat):
    text = f"TELEGRAM_BOT_TOKEN=123456:tok\nTELEGRAM_CHAT_ID={chat}\n"
    with pytest.raises(ConfigError, match=f"TELEGRAM_CHAT_ID='{chat}': must be"):
        LiveConfig.load(write_env(tmp_path, text), environ={})
