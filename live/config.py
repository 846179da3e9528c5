"""LiveConfig: every setting of the live trader, loaded from .env and the environment, validated.

Precedence: defaults < the .env file < process environment < command-line overrides. Each
field's metadata holds its environment key, its help text and whether it is a secret, so the
`.env.template` and the README's configuration reference are generated from this one place.
Relative paths resolve against the project root, so the trader behaves the same whether it is
started from the root or from `live/`. How each kind of value is parsed and checked is
`live.config_values`; the logging setup is `live.json_logs` (`setup_logging` is re-exported
here, where the design names it).
"""

from __future__ import annotations

if not __package__ and __name__ != "__main__":
    # imported from inside live/, as the design's quick start does (`cd live && python -c
    # "from mt5_connector import MT5Connector"`): be the package's module, one class per name
    import importlib as _importlib
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
    _sys.modules[__name__] = _importlib.import_module(f"live.{__name__}")

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from live.broker_types import MT5Constants  # noqa: F401  (re-exported: the design's home)
from live.config_values import (
    CANONICAL_CASE,
    REDACTED,
    check_telegram_pair,
    check_value,
    parse_env_text,
    parse_preset,
    read_env_file,
    unknown_key_message,
)
from live.errors import ConfigError
from live.json_logs import setup_logging  # noqa: F401  (re-exported: the design's home)

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _setting(
    env: str, default: object, help_text: str, kind: str, *, secret: bool = False, section: str = ""
) -> object:
    meta = {"env": env, "help": help_text, "kind": kind, "secret": secret, "section": section}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class LiveConfig:
    """The validated settings of one trader process (see `.env.template` for each key)."""

    # --- strategy and market
    strategy_path: str = _setting(
        "STRATEGY_PATH",
        "",
        "Strategy file to trade (path[:ClassName]); --strategy overrides.",
        "str",
        section="Strategy",
    )
    strategy_params: str = _setting(
        "STRATEGY_PARAMS",
        "",
        "Strategy parameters, e.g. fast=10,slow=30 (--param overrides).",
        "str",
        section="Strategy",
    )
    symbols: tuple[str, ...] = _setting(
        "SYMBOLS",
        ("EURUSD",),
        "Comma-separated symbols to trade, as the broker names them.",
        "symbols",
        section="Strategy",
    )
    timeframe: str = _setting(
        "TIMEFRAME",
        "H1",
        "Bar timeframe the strategy runs on (M1..D1).",
        "timeframe",
        section="Strategy",
    )
    bars_lookback: int = _setting(
        "BARS_LOOKBACK",
        0,
        "Closed bars the strategy's signals are computed over, kept and extended bar by bar "
        "(its state may reach this far back); 0 = 5000 (at least twice the warm-up).",
        "int>=0",
        section="Strategy",
    )

    # --- mode and safety
    dry_run: bool = _setting(
        "DRY_RUN",
        True,
        "true: validate orders with order_check and paper-trade them; false: send real orders.",
        "bool",
        section="Mode and safety",
    )
    allow_real_account: bool = _setting(
        "ALLOW_REAL_ACCOUNT",
        False,
        "Allow sending orders to a real (non-demo) account.",
        "bool",
        section="Mode and safety",
    )
    kill_switch_file: Path = _setting(  # noqa: RUF009 (_setting returns a dataclasses.field)
        "KILL_SWITCH_FILE",
        "KILL_SWITCH",
        "File whose presence halts trading (its first word may say halt, reduce or close_all).",
        "path",
        section="Mode and safety",
    )
    kill_switch_action: str = _setting(
        "KILL_SWITCH_ACTION",
        "halt",
        "Default kill-switch level: halt (no entries, exits run), "
        "reduce (only closes), close_all (flatten, then halt).",
        "kill_action",
        section="Mode and safety",
    )

    # --- terminal connection
    backend: str = _setting(
        "MT5_BACKEND",
        "auto",
        "auto, mt5 (official package, Windows), mt5linux (RPyC bridge) "
        "or sim (built-in simulator). auto falls back to sim only in dry-run.",
        "backend",
        section="Terminal",
    )
    mt5_login: int = _setting(
        "MT5_LOGIN",
        0,
        "Account number; 0 = the terminal's current account.",
        "int>=0",
        section="Terminal",
    )
    mt5_password: str = _setting(
        "MT5_PASSWORD", "", "Account password.", "str", secret=True, section="Terminal"
    )
    mt5_server: str = _setting(
        "MT5_SERVER", "", "Trade server name, e.g. MetaQuotes-Demo.", "str", section="Terminal"
    )
    mt5_path: str = _setting(
        "MT5_PATH", "", "Path to terminal64.exe (optional).", "str", section="Terminal"
    )
    mt5_timeout_ms: int = _setting(
        "MT5_TIMEOUT_MS",
        60_000,
        "initialize()/login() timeout in milliseconds.",
        "int>0",
        section="Terminal",
    )
    mt5linux_host: str = _setting(
        "MT5LINUX_HOST", "127.0.0.1", "Host of the mt5linux RPyC server.", "str", section="Terminal"
    )
    mt5linux_port: int = _setting(
        "MT5LINUX_PORT", 18812, "Port of the mt5linux RPyC server.", "port", section="Terminal"
    )
    reconnect_max_seconds: float = _setting(
        "RECONNECT_MAX_SECONDS",
        60.0,
        "Longest wait between reconnection attempts (backoff doubles up to this).",
        "float>0",
        section="Terminal",
    )
    broker_tz: str = _setting(
        "BROKER_TZ",
        "auto",
        "Time zone the trade server stamps times in: auto (read from tick times), an IANA "
        "name (Europe/Athens), UTC+2, or NY+7 (New York close brokers: UTC+2 winter, +3 "
        "summer).",
        "broker_tz",
        section="Terminal",
    )

    # --- orders and sizing
    magic_number: int = _setting(
        "MAGIC_NUMBER",
        240_601,
        "Magic number marking this trader's orders and positions.",
        "int>0",
        section="Orders",
    )
    deviation_points: int = _setting(
        "DEVIATION_POINTS", 20, "Maximum slippage accepted, in points.", "int>=0", section="Orders"
    )
    stops_min_step_points: float = _setting(
        "STOPS_MIN_STEP_POINTS",
        1.0,
        "A position's stops are sent again only when they differ by at least this many points.",
        "float>=0",
        section="Orders",
    )
    stops_min_seconds: float = _setting(
        "STOPS_MIN_SECONDS",
        10.0,
        "At most one stop change per position in this many seconds (servers answer 10024 to "
        "a change every tick).",
        "float>=0",
        section="Orders",
    )
    entry_chase_bars: int = _setting(
        "ENTRY_CHASE_BARS",
        0,
        "An entry missed (trader down, entry refused) is still sent up to this many bars after "
        "its bar; 0 = never chased.",
        "int>=0",
        section="Orders",
    )
    entry_chase_max_points: float = _setting(
        "ENTRY_CHASE_MAX_POINTS",
        0.0,
        "A chased entry only while the price is within this many points of its bar's close "
        "(0 = any price).",
        "float>=0",
        section="Orders",
    )
    sizing_mode: str = _setting(
        "SIZING_MODE",
        "fixed",
        "fixed (LOT_SIZE lots) or risk (RISK_PERCENT of equity at the stop-loss).",
        "sizing",
        section="Orders",
    )
    lot_size: float = _setting(
        "LOT_SIZE",
        0.01,
        "Volume per entry in lots when SIZING_MODE=fixed.",
        "float>0",
        section="Orders",
    )
    risk_percent: float = _setting(
        "RISK_PERCENT",
        1.0,
        "Equity % lost at the stop-loss when SIZING_MODE=risk.",
        "percent",
        section="Orders",
    )
    order_max_retries: int = _setting(
        "ORDER_MAX_RETRIES",
        3,
        "Resends after a retryable refusal (requote, timeout, ...).",
        "int>=0",
        section="Orders",
    )
    order_retry_base_seconds: float = _setting(
        "ORDER_RETRY_BASE_SECONDS",
        0.5,
        "First retry delay; doubles each attempt, with jitter.",
        "float>=0",
        section="Orders",
    )
    order_retry_max_seconds: float = _setting(
        "ORDER_RETRY_MAX_SECONDS", 5.0, "Longest retry delay.", "float>=0", section="Orders"
    )

    # --- loop
    interval_seconds: float = _setting(
        "INTERVAL_SECONDS", 10.0, "Seconds between loop iterations.", "float>0", section="Loop"
    )
    max_bars: int = _setting(
        "MAX_BARS",
        0,
        "Stop after this many closed bars (0 = run until stopped).",
        "int>=0",
        section="Loop",
    )
    snapshot_seconds: float = _setting(
        "SNAPSHOT_SECONDS",
        300.0,
        "Seconds between account snapshots in the audit log.",
        "float>0",
        section="Loop",
    )
    strategy_max_failures: int = _setting(
        "STRATEGY_MAX_FAILURES",
        20,
        "Bars in a row a symbol's strategy may fail before that symbol is paused (one alert; "
        "restart to resume).",
        "int>0",
        section="Loop",
    )

    # --- sessions and news (the backtest's options of the same names apply the same rules)
    sessions: str = _setting(
        "SESSIONS",
        "",
        "Trading sessions in broker time, per symbol: 'EURUSD,GBPUSD=Mon 00:00-Fri 23:55 "
        "break 23:57-00:02; *=...' (empty = forex: Sun 17:00-Fri 17:00 New York, closed "
        "16:55-17:00 daily).",
        "sessions",
        section="Sessions and news",
    )
    trade_hours: str = _setting(
        "TRADE_HOURS",
        "",
        "Enter only between these broker hours, e.g. 08:00-12:00,13:00-20:00 (empty = any).",
        "hours",
        section="Sessions and news",
    )
    no_entry_after_open_min: float = _setting(
        "NO_ENTRY_AFTER_OPEN_MIN",
        0.0,
        "No entries in the first minutes of a session (after the weekly open and each break).",
        "float>=0",
        section="Sessions and news",
    )
    no_entry_before_close_min: float = _setting(
        "NO_ENTRY_BEFORE_CLOSE_MIN",
        0.0,
        "No entries in the last minutes before a session closes (wide spreads).",
        "float>=0",
        section="Sessions and news",
    )
    flat_before_weekend_min: float | None = _setting(
        "FLAT_BEFORE_WEEKEND",
        None,
        "Be flat this many minutes before the weekly close (empty = hold over weekends).",
        "minutes_or_off",
        section="Sessions and news",
    )
    calendar_file: Path | None = _setting(  # noqa: RUF009
        "CALENDAR_FILE",
        None,
        "Economic calendar CSV for news blackouts (format: docs/backtest.md); empty = none.",
        "path_or_empty",
        section="Sessions and news",
    )
    calendar_tz: str = _setting(
        "CALENDAR_TZ",
        "UTC",
        "Zone of a ForexFactory export's times (the project's own format is UTC).",
        "timezone",
        section="Sessions and news",
    )
    news_before_min: float = _setting(
        "NEWS_BEFORE_MIN",
        0.0,
        "No entries from this many minutes before a calendar event of the symbol's currencies.",
        "float>=0",
        section="Sessions and news",
    )
    news_after_min: float = _setting(
        "NEWS_AFTER_MIN",
        0.0,
        "...until this many minutes after it.",
        "float>=0",
        section="Sessions and news",
    )
    news_impact: str = _setting(
        "NEWS_IMPACT",
        "high",
        "Impacts that black out, comma-separated (low, medium, high, holiday).",
        "impacts",
        section="Sessions and news",
    )
    news_flatten: bool = _setting(
        "NEWS_FLATTEN",
        False,
        "Also close positions for a blackout (at the open of the bar it starts in).",
        "bool",
        section="Sessions and news",
    )
    min_trade_seconds: float = _setting(
        "MIN_TRADE_SECONDS",
        0.0,
        "Keep a position at least this long after its entry: a strategy exit sooner waits "
        "for the first bar open that late (0 = off; stops and flat windows do not wait).",
        "float>=0",
        section="Sessions and news",
    )

    # --- limits
    max_trades_per_day: int = _setting(
        "MAX_TRADES_PER_DAY",
        20,
        "New entries allowed per trading day (0 = no limit).",
        "int>=0",
        section="Limits",
    )
    max_daily_loss_pct: float = _setting(
        "MAX_DAILY_LOSS_PCT",
        3.0,
        "Stop new entries when equity is this % below the day's start (0 = off).",
        "percent0",
        section="Limits",
    )
    max_open_positions: int = _setting(
        "MAX_OPEN_POSITIONS",
        5,
        "Open positions allowed over all symbols (0 = no limit).",
        "int>=0",
        section="Limits",
    )
    max_positions_per_symbol: int = _setting(
        "MAX_POSITIONS_PER_SYMBOL",
        1,
        "Open positions allowed per symbol.",
        "int>0",
        section="Limits",
    )
    max_total_lots: float = _setting(
        "MAX_TOTAL_LOTS",
        0.0,
        "Total open volume allowed in lots (0 = no limit).",
        "float>=0",
        section="Limits",
    )
    max_margin_pct: float = _setting(
        "MAX_MARGIN_PCT",
        50.0,
        "Used margin allowed as % of equity (0 = no limit).",
        "percent0",
        section="Limits",
    )
    trading_day_timezone: str = _setting(
        "TRADING_DAY_TZ",
        "broker",
        "Timezone of the trading-day boundary: broker (the server's, see BROKER_TZ) or an "
        "IANA name, e.g. America/New_York.",
        "trading_day_tz",
        section="Limits",
    )
    trading_day_start_hour: int = _setting(
        "TRADING_DAY_START_HOUR",
        0,
        "Hour (0-23, in TRADING_DAY_TZ) when a trading day starts.",
        "hour",
        section="Limits",
    )
    account_rules: str = _setting(
        "ACCOUNT_RULES",
        "",
        "Account-protection preset (a name in presets/ or a .toml path): equity floors that "
        "close and halt, checked every loop; empty = off. Format: docs/backtest.md.",
        "preset",
        section="Limits",
    )
    account_size: float = _setting(
        "ACCOUNT_SIZE",
        0.0,
        "Initial balance the ACCOUNT_RULES percentages are of (0 = the balance when the rules "
        "first run on this audit database).",
        "float>=0",
        section="Limits",
    )

    # --- storage and logs
    audit_db: Path = _setting(  # noqa: RUF009
        "AUDIT_DB", "data/audit.db", "SQLite audit database.", "path", section="Storage and logs"
    )
    audit_key_file: Path | None = _setting(  # noqa: RUF009
        "AUDIT_KEY_FILE",
        None,
        "Key of the audit hash chains, made at the first start (mode 0600); empty = "
        "AUDIT_DB.key beside the database. Back it up: verify needs it.",
        "path_or_empty",
        section="Storage and logs",
    )
    log_dir: Path = _setting(  # noqa: RUF009
        "LOG_DIR",
        "logs",
        "Folder of live_trader.log (JSON lines).",
        "path",
        section="Storage and logs",
    )
    lock_dir: Path | None = _setting(  # noqa: RUF009
        "LOCK_DIR",
        None,
        "Folder of the per-account locks (one live trader per login, server and magic number "
        "on this machine); empty = /run/lock/mt5-live-trader, else the temp folder.",
        "path_or_empty",
        section="Storage and logs",
    )
    log_level: str = _setting(
        "LOG_LEVEL",
        "INFO",
        "DEBUG, INFO, WARNING or ERROR.",
        "log_level",
        section="Storage and logs",
    )
    log_max_bytes: int = _setting(
        "LOG_MAX_BYTES",
        10_000_000,
        "Log file size before rotation.",
        "int>0",
        section="Storage and logs",
    )
    log_backups: int = _setting(
        "LOG_BACKUPS", 5, "Rotated log files kept.", "int>=0", section="Storage and logs"
    )

    # --- simulator (backend sim, or auto without a terminal)
    sim_data: str = _setting(
        "SIM_DATA",
        "",
        "Bars CSV the simulator replays (empty = generated bars).",
        "str",
        section="Simulator",
    )
    sim_speed: str = _setting(
        "SIM_SPEED",
        "max",
        "Simulated seconds per real second, or max: step bar by bar in lockstep with the trader.",
        "speed",
        section="Simulator",
    )
    sim_seed: int = _setting(
        "SIM_SEED", 7, "Seed of generated bars.", "int>=0", section="Simulator"
    )
    sim_history_bars: int = _setting(
        "SIM_HISTORY_BARS",
        1000,
        "Bars of history before the simulated clock starts.",
        "int>0",
        section="Simulator",
    )
    sim_server_tz: str = _setting(
        "SIM_SERVER_TZ",
        "NY+7",
        "The simulated server's time zone (as BROKER_TZ; NY+7: UTC+2 winter, +3 summer, as "
        "most MT5 brokers). Its sessions follow SESSIONS.",
        "server_tz",
        section="Simulator",
    )

    # --- alerts
    telegram_bot_token: str = _setting(
        "TELEGRAM_BOT_TOKEN",
        "",
        "Telegram bot token from @BotFather (empty = no Telegram; needs TELEGRAM_CHAT_ID).",
        "str",
        secret=True,
        section="Alerts",
    )
    telegram_chat_id: str = _setting(
        "TELEGRAM_CHAT_ID",
        "",
        "The only chat that receives alerts and may send commands: its number (negative for "
        "a group) or @channelname (needs TELEGRAM_BOT_TOKEN).",
        "chat_id",
        section="Alerts",
    )
    telegram_api_url: str = _setting(
        "TELEGRAM_API_URL", "https://api.telegram.org", "Bot API base URL.", "url", section="Alerts"
    )
    webhook_url: str = _setting(
        "WEBHOOK_URL",
        "",
        "URL receiving alerts as JSON POSTs (empty = none).",
        "url_or_empty",
        section="Alerts",
    )
    webhook_secret: str = _setting(
        "WEBHOOK_SECRET",
        "",
        "Key of the HMAC-SHA256 signature header (empty = unsigned).",
        "str",
        secret=True,
        section="Alerts",
    )
    alert_min_level: str = _setting(
        "ALERT_MIN_LEVEL",
        "info",
        "Lowest severity sent: info, warning, error or critical.",
        "alert_level",
        section="Alerts",
    )

    # --- dashboard
    dashboard_host: str = _setting(
        "DASHBOARD_HOST",
        "127.0.0.1",
        "Dashboard bind address; anything but loopback requires DASHBOARD_TOKEN.",
        "str",
        section="Dashboard",
    )
    dashboard_port: int = _setting(
        "DASHBOARD_PORT", 5000, "Dashboard port.", "port", section="Dashboard"
    )
    dashboard_token: str = _setting(
        "DASHBOARD_TOKEN",
        "",
        "Token every dashboard request must carry (16+ characters; required beyond loopback).",
        "str",
        secret=True,
        section="Dashboard",
    )
    dashboard_controls: str = _setting(
        "DASHBOARD_CONTROLS",
        "auto",
        "Dashboard buttons to halt, reduce, close all, resume and close a position: auto (shown "
        "when DASHBOARD_TOKEN is set), on (also without a token, on a loopback DASHBOARD_HOST "
        "only), off (never).",
        "controls",
        section="Dashboard",
    )
    dashboard_trust_proxy: bool = _setting(
        "DASHBOARD_TRUST_PROXY",
        False,
        "Trust X-Forwarded-Proto/-Host from one reverse proxy in front of the dashboard (HTTPS "
        "there marks the token cookie Secure).",
        "bool",
        section="Dashboard",
    )
    dashboard_db_dir: Path | None = _setting(  # noqa: RUF009
        "DASHBOARD_DB_DIR",
        None,
        "Folder of audit databases (*.db), one trader each, chosen on the page by file name; "
        "empty = AUDIT_DB alone (or the --db files given).",
        "path_or_empty",
        section="Dashboard",
    )

    def __post_init__(self) -> None:
        for spec in fields(self):
            canonical = CANONICAL_CASE.get(spec.metadata["kind"])
            value = getattr(self, spec.name)
            if canonical is not None and isinstance(value, str):  # h1, debug, SIM are fine
                object.__setattr__(self, spec.name, canonical(value.strip()))
            check_value(spec, getattr(self, spec.name))
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.metadata["kind"] in ("path", "path_or_empty") and value not in (None, ""):
                object.__setattr__(self, spec.name, resolve_path(value))
            elif spec.metadata["kind"] == "path_or_empty":
                object.__setattr__(self, spec.name, None)
        object.__setattr__(self, "strategy_path", _resolve_strategy(self.strategy_path))
        object.__setattr__(self, "sim_data", _resolve_existing(self.sim_data))
        self._tighten_from_preset()
        self._check_hold_span()
        check_telegram_pair(self.telegram_bot_token, self.telegram_chat_id)
        if self.order_retry_max_seconds < self.order_retry_base_seconds:
            raise ConfigError(
                f"ORDER_RETRY_MAX_SECONDS={self.order_retry_max_seconds} must be >= "
                f"ORDER_RETRY_BASE_SECONDS={self.order_retry_base_seconds}"
            )

    def _check_hold_span(self) -> None:
        """A minimum trade duration must fit in the bars a decision sees (BARS_LOOKBACK):
        a position entered before them counts as old enough."""
        from backtest.data import timeframe_seconds

        span = self.bars_lookback * timeframe_seconds(self.timeframe)
        if self.bars_lookback and self.min_trade_seconds > span:
            raise ConfigError(
                f"MIN_TRADE_SECONDS={self.min_trade_seconds:g} is longer than the "
                f"BARS_LOOKBACK={self.bars_lookback} {self.timeframe} bars decisions see "
                f"({span} s): raise BARS_LOOKBACK or set 0 (5000 bars)"
            )

    def _tighten_from_preset(self) -> None:
        """An ACCOUNT_RULES preset's [windows] (news blackouts, flat before the weekend) and
        minimum trade duration make the trader's settings at least as strict (idempotent)."""
        preset = parse_preset(self.account_rules)
        if preset is None:
            return
        for name, value in preset.tightened(self).items():
            object.__setattr__(self, name, value)

    @classmethod
    def load(
        cls,
        env_file: str | Path | None = None,
        overrides: Mapping[str, object] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> LiveConfig:
        """Defaults < env_file (default: .env in the project root, if present) < environ <
        overrides (field names, already typed). Raises ConfigError naming the key and value."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        by_env = {spec.metadata["env"]: spec for spec in fields(cls)}
        secret_keys = {key: spec.metadata["secret"] for key, spec in by_env.items()}
        for key, text in read_env_file(_env_file_path(env_file), secret_keys).items():
            if key not in by_env:
                raise ConfigError(unknown_key_message(key, by_env, env_file))
            values[by_env[key].name] = parse_env_text(by_env[key], text)
        for key, spec in by_env.items():
            if key in environ:
                values[spec.name] = parse_env_text(spec, environ[key])
        names = {spec.name for spec in fields(cls)}
        for name, value in (overrides or {}).items():
            if name not in names:
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = value
        return cls(**values)

    def replace(self, **changes: object) -> LiveConfig:
        """A validated copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        """Settings by environment key, secrets replaced by *** (safe to log or display)."""
        out: dict[str, object] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.metadata["secret"]:
                value = REDACTED if value else ""
            elif value is None:
                value = ""
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = ",".join(value)
            out[spec.metadata["env"]] = value
        return out

    def secrets(self) -> list[str]:
        """The secret values that are set (for log redaction)."""
        return [
            getattr(self, s.name)
            for s in fields(self)
            if s.metadata["secret"] and getattr(self, s.name)
        ]

    @property
    def sim_lockstep(self) -> bool:
        return self.sim_speed == "max"

    def strategy_param_pairs(self) -> list[str]:
        return [p.strip() for p in self.strategy_params.split(",") if p.strip()]


def resolve_path(value: str | Path) -> Path:
    """Relative paths are relative to the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _resolve_existing(value: str) -> str:
    """A file named relative to the working directory if it is there, else to the project
    root, so `python live_trader.py` behaves the same from the root and from live/."""
    if not value or Path(value).expanduser().is_absolute() or Path(value).exists():
        return str(Path(value).expanduser().resolve()) if value else value
    return str(resolve_path(value))


def _resolve_strategy(value: str) -> str:
    """As _resolve_existing, keeping an optional ':ClassName' suffix."""
    head, colon, tail = value.rpartition(":")
    if colon and tail.isidentifier():  # not a Windows drive letter's colon
        return _resolve_existing(head) + colon + tail
    return _resolve_existing(value)


def _env_file_path(env_file: str | Path | None) -> Path | None:
    """The file LiveConfig.load reads: the one named (the working folder first, as --strategy),
    else the project root's .env if there is one."""
    if env_file is None:
        default = PROJECT_ROOT / ".env"
        return default if default.is_file() else None
    return Path(_resolve_existing(str(env_file)))
