"""Reading and checking setting values: the .env file, each key's text parsed to its field's
kind, every kind's check and canonical case, and the choices those kinds allow.

`live.config` (LiveConfig) declares each setting's kind in its field metadata; this module
says what a kind accepts, so a bad value fails with its key, its value (secrets shown as ***)
and how to fix it.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import logging
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backtest.broker_clock import UTC_ZONE, BrokerZoneError, parse_zone
from live.errors import ConfigError

logger = logging.getLogger(__name__)

REDACTED = "***"
BACKENDS = ("auto", "mt5", "mt5linux", "sim")
KILL_SWITCH_ACTIONS = ("halt", "reduce", "close_all")
DASHBOARD_CONTROL_MODES = ("auto", "on", "off")
TIMEFRAMES = (
    "M1",
    "M2",
    "M3",
    "M4",
    "M5",
    "M6",
    "M10",
    "M12",
    "M15",
    "M20",
    "M30",
    "H1",
    "H2",
    "H3",
    "H4",
    "H6",
    "H8",
    "H12",
    "D1",
)
ALERT_LEVELS = ("info", "warning", "error", "critical")
BROKER_TZ_AUTO = "auto"  # BROKER_TZ: read the server's offset from tick times
TRADING_DAY_BROKER = "broker"  # TRADING_DAY_TZ: the server's zone, as BROKER_TZ resolves it

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_env_text(spec: dataclasses.Field, text: str) -> object:
    """Convert the text of an env value to the field's type; the key is named on failure."""
    kind, key, raw = spec.metadata["kind"], spec.metadata["env"], text.strip()
    try:
        if kind == "bool":
            lowered = raw.lower()
            if lowered not in _TRUE + _FALSE:
                raise ValueError
            return lowered in _TRUE
        if kind.startswith("int") or kind in ("port", "hour"):
            return int(raw)
        if kind.startswith("float") or kind.startswith("percent"):
            return float(raw)
        if kind == "symbols":
            return tuple(s.strip() for s in raw.split(",") if s.strip())
        if kind == "path":
            return Path(raw)
        if kind == "path_or_empty":
            return Path(raw) if raw else None
        if kind == "minutes_or_off":
            return None if raw.lower() in ("", "off") else float(raw)
    except ValueError:
        expected = {"bool": "true or false"}.get(kind, "a number")
        raise ConfigError(f"{key}={text!r}: expected {expected}") from None
    return raw


def check_value(spec: dataclasses.Field, value: object) -> None:
    """Raise ConfigError naming the key and value (*** if secret) if the kind refuses it."""
    kind, key = spec.metadata["kind"], spec.metadata["env"]
    check = _CHECKS.get(kind)
    if check is None:
        return
    problem = check(value)
    if problem and value in ((), ""):
        raise ConfigError(f"{key} is empty: {problem}")
    if problem:
        raise ConfigError(f"{key}={_shown(spec, value)}: {problem}")


def _number(
    low: float, high: float | None = None, *, open_low: bool = False, integer: bool = False
) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if integer and not isinstance(value, int):
            return "must be a whole number"
        if not math.isfinite(value) or value < low or (open_low and value == low):
            return f"must be {'>' if open_low else '>='} {low:g}"
        if high is not None and value > high:
            return f"must be <= {high:g}"
        return None

    return check


def _choice(options: tuple[str, ...]) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if value in options:
            return None
        close = difflib.get_close_matches(str(value), options, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"must be one of {', '.join(options)}{hint}"

    return check


def _check_symbols(value: object) -> str | None:
    if not isinstance(value, tuple) or not value or not all(isinstance(s, str) for s in value):
        return "give at least one symbol, comma-separated (e.g. EURUSD,GBPUSD)"
    if len(set(value)) != len(value):
        return "a symbol is listed twice"
    return None


def _parsed_by(parse: Callable[[str], object]) -> Callable[[object], str | None]:
    """A text setting's check: `parse` raises ValueError naming what is wrong."""

    def check(value: object) -> str | None:
        try:
            parse(str(value))
        except ValueError as exc:
            return str(exc).removeprefix(": ").removeprefix(" ")
        return None

    return check


def _parse_sessions(text: str) -> object:
    """Syntax only here: the table is read on the broker's clock once it is known."""
    from backtest.sessions import parse_sessions

    return parse_sessions(text, UTC_ZONE, "")


def _parse_hours(text: str) -> object:
    from backtest.sessions import parse_hours

    return parse_hours(text, "")


def parse_preset(text: str) -> object:
    """An ACCOUNT_RULES preset by name or path, or None when empty."""
    from backtest.prop_rules import load_preset

    return load_preset(text.strip()) if text.strip() else None


def _parse_impacts(text: str) -> object:
    from backtest.trading_windows import parse_impacts

    return parse_impacts(text, "")


def _check_timezone(value: object) -> str | None:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        return "unknown timezone; use an IANA name such as UTC or Europe/London"
    return None


def _zone_check(key: str, keyword: str | None = None) -> Callable[[object], str | None]:
    """A zone setting's check: anything parse_zone reads, or its keyword (auto)."""

    def check(value: object) -> str | None:
        if keyword is not None and value == keyword:
            return None
        try:
            parse_zone(str(value), key)
        except BrokerZoneError as exc:
            return str(exc).removeprefix(f"{key}: ")
        return None

    return check


def _check_trading_day_tz(value: object) -> str | None:
    if value == TRADING_DAY_BROKER:
        return None
    try:
        parse_zone(str(value), "TRADING_DAY_TZ")
    except BrokerZoneError:
        return (
            "unknown timezone; use broker (the server's zone) or an IANA name such as UTC or "
            "Europe/London"
        )
    return None


def _zone_keyword(keyword: str) -> Callable[[str], str]:
    """A zone setting's keyword in any case (AUTO, Broker); zone names as written."""
    return lambda value: keyword if value.lower() == keyword else value


def _check_speed(value: object) -> str | None:
    if value == "max":
        return None
    try:
        speed = float(str(value))
    except ValueError:
        return "must be a positive number or max"
    return None if speed > 0 and math.isfinite(speed) else "must be a positive number or max"


_CHAT_ID = re.compile(r"-?[0-9]+|@[A-Za-z][A-Za-z0-9_]{3,31}")


def _check_chat_id(value: object) -> str | None:
    if value == "" or _CHAT_ID.fullmatch(str(value)):
        return None
    return "must be the chat's number (negative for a group, e.g. -1001234567890) or @channelname"


def check_telegram_pair(token: str, chat_id: str) -> None:
    """Telegram needs its bot token and its chat: one without the other is a mistake, not a
    way to turn Telegram off, so it is refused naming the one missing."""
    if token and not chat_id:
        raise ConfigError(
            "TELEGRAM_CHAT_ID is empty but TELEGRAM_BOT_TOKEN is set: set the chat that "
            "receives the alerts, or empty TELEGRAM_BOT_TOKEN for no Telegram"
        )
    if chat_id and not token:
        raise ConfigError(
            f"TELEGRAM_BOT_TOKEN is empty but TELEGRAM_CHAT_ID={chat_id!r} is set: set the "
            "bot's token (from @BotFather), or empty TELEGRAM_CHAT_ID for no Telegram"
        )


def _check_url(value: object, *, allow_empty: bool = False) -> str | None:
    text = str(value)
    if allow_empty and not text:
        return None
    if not text.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    return None


_CHECKS: dict[str, Callable[[object], str | None]] = {
    "int>=0": _number(0, integer=True),
    "int>0": _number(0, open_low=True, integer=True),
    "float>0": _number(0, open_low=True),
    "float>=0": _number(0),
    "percent": _number(0, 100, open_low=True),
    "percent0": _number(0, 100),
    "port": _number(1, 65535, integer=True),
    "hour": _number(0, 23, integer=True),
    "backend": _choice(BACKENDS),
    "kill_action": _choice(KILL_SWITCH_ACTIONS),
    "controls": _choice(DASHBOARD_CONTROL_MODES),
    "sizing": _choice(("fixed", "risk")),
    "timeframe": _choice(TIMEFRAMES),
    "log_level": _choice(("DEBUG", "INFO", "WARNING", "ERROR")),
    "alert_level": _choice(ALERT_LEVELS),
    "symbols": _check_symbols,
    "timezone": _check_timezone,
    "broker_tz": _zone_check("BROKER_TZ", BROKER_TZ_AUTO),
    "server_tz": _zone_check("SIM_SERVER_TZ"),
    "trading_day_tz": _check_trading_day_tz,
    "speed": _check_speed,
    "url": _check_url,
    "url_or_empty": lambda v: _check_url(v, allow_empty=True),
    "chat_id": _check_chat_id,
    "minutes_or_off": lambda v: None if v is None else _number(0)(v),
    "sessions": _parsed_by(_parse_sessions),
    "hours": _parsed_by(_parse_hours),
    "impacts": _parsed_by(_parse_impacts),
    "preset": _parsed_by(parse_preset),
}


CANONICAL_CASE: dict[str, Callable[[str], str]] = {
    "timeframe": str.upper,
    "log_level": str.upper,
    "backend": str.lower,
    "kill_action": str.lower,
    "controls": str.lower,
    "sizing": str.lower,
    "alert_level": str.lower,
    "broker_tz": _zone_keyword(BROKER_TZ_AUTO),
    "trading_day_tz": _zone_keyword(TRADING_DAY_BROKER),
}


def _shown(spec: dataclasses.Field, value: object) -> str:
    return REDACTED if spec.metadata["secret"] else repr(value)


def read_env_file(
    path: Path | None, secret_keys: Mapping[str, bool] | None = None
) -> dict[str, str]:
    """The KEY=value pairs of a .env file ({} for None), read as python-dotenv reads them
    (quotes, comments, ${VAR}); ConfigError naming the file and line if it is missing,
    unreadable or has a line that is not KEY=value. `secret_keys` maps each setting's key to
    whether it is secret: an error quotes a line's value only for a known, non-secret key."""
    from dotenv import dotenv_values  # a field dependency; imported where used
    from dotenv.parser import parse_stream

    if path is None:
        return {}
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    # checked first, so python-dotenv never meets a bad line (it would only warn and skip it)
    for binding in parse_stream(io.StringIO(text)):
        if binding.error or (binding.key is not None and binding.value is None):
            raise ConfigError(_bad_line_message(path, binding, secret_keys or {}))
    raw = dotenv_values(stream=io.StringIO(text))
    return {key: value for key, value in raw.items() if value is not None}


_LINE_KEY = re.compile(r"(?:export\s+)?([^=#\s]+)\s*(=?)")


def _bad_line_message(path: Path, binding: Any, secret_keys: Mapping[str, bool]) -> str:
    """A .env line that is not KEY=value, by its file and line; a value that may be a secret
    (its key is secret, or unknown and perhaps a misspelt secret one) shown as ***."""
    original = binding.original.string
    body = original.lstrip()  # python-dotenv's binding starts at the blank lines before it
    line = binding.original.line + original[: len(original) - len(body)].count("\n")
    if not binding.error:
        return f"{path} line {line}: {binding.key} has no '=' and value"
    text = body.splitlines()[0].rstrip() if body else ""
    match = _LINE_KEY.match(text)
    if match and secret_keys.get(match[1], bool(match[2])):
        text = f"{match[1]}{match[2] or ' '}{REDACTED}"
    elif len(text) > 80:
        text = text[:77] + "..."
    return f"{path} line {line}: cannot parse {text!r} (expected KEY=value)"


def unknown_key_message(key: str, known: Mapping[str, object], env_file: object) -> str:
    """The error for a .env key no setting has, with the nearest known key as a hint."""
    close = difflib.get_close_matches(key.upper(), list(known), n=1)  # risk_percent too
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown key {key} in {env_file or '.env'}{hint} (see .env.template)"
