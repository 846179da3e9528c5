"""The connection doctor behind `live_trader.py --check`: validates the settings, connects,
prints the terminal, account and symbol facts the trader will rely on (including the filling
mode it will use and the server's clock), and says plainly what is wrong and how to fix it.
Sends no order. With `--json`, the same checks as one JSON document for monitoring systems.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backtest.strategy import StrategyError
from live.audit_chain import ChainKeyError, key_file_for, load_key
from live.audit_reader import AuditReader
from live.backtesting_bridge import build_order_request, get_strategy_from_file
from live.broker_types import ACCOUNT_TRADE_MODE_REAL
from live.check_report import Finding, Report, document, setting_named
from live.config import LiveConfig
from live.errors import BrokerError, ConfigError
from live.instance_lock import (
    Holder,
    account_lock_path,
    database_lock_path,
    holder_of,
    needs_account_lock,
)
from live.mt5_connector import FILLING_NAMES, MT5Connector

# What the common failures to connect mean (last_error codes and texts users meet).
CONNECT_HINTS = (
    (
        "-10003",
        "the terminal was not found or could not start: install MetaTrader 5, start "
        "it once, or set MT5_PATH to terminal64.exe",
    ),
    (
        "-10005",
        "IPC timeout: the terminal is starting, frozen or blocked by a dialog; open it, "
        "log in by hand once, then retry (or raise MT5_TIMEOUT_MS)",
    ),
    (
        "-6",
        "authorization failed: check MT5_LOGIN, MT5_PASSWORD and MT5_SERVER (the exact "
        "server name shown in the terminal's login dialog)",
    ),
    (
        "mt5linux server",
        "under Wine, in the Windows Python that has `pip install MetaTrader5 "
        "rpyc==5.2.3`, run `rpyc_classic.py --host 127.0.0.1 -p 18812` next "
        "to the logged-in terminal, or correct MT5LINUX_HOST/MT5LINUX_PORT",
    ),
)


def run_check(
    config: LiveConfig,
    connector: MT5Connector | None = None,
    *,
    out: Callable[[str], None] = print,
    as_json: bool = False,
) -> int:
    """Run every check; 0 when the trader can start and trade as configured, else 1. With
    `as_json` the lines are not printed: one JSON document is, at the end (see `document`)."""
    report = Report((lambda _line: None) if as_json else out)
    report.out(
        f"settings: {'dry run' if config.dry_run else 'LIVE'}, backend {config.backend}, symbols "
        f"{','.join(config.symbols)} {config.timeframe}"
    )
    connector = connector or MT5Connector(config)
    _run_checks(config, connector, report)
    result = verdict(config, connector, report.failures)
    report.out("result: " + result)
    code = 0 if not report.failures else 1
    if as_json:
        settings = {
            "dry_run": config.dry_run,
            "backend": config.backend,
            "connected_backend": connector.backend,
            "symbols": list(config.symbols),
            "timeframe": config.timeframe,
        }
        out(document(report.findings, code, result, settings, secrets=config.secrets()))
    return code


def _run_checks(config: LiveConfig, connector: MT5Connector, report: Report) -> None:
    """Each check, its findings under its name; those that need the terminal only when it
    was reached."""
    report.name = "strategy"
    _check_strategy(config, report)
    report.name = "storage"
    _check_storage(config, report)
    report.name = "alerts"
    _check_alerts(config, report)
    report.name = "connection"
    if not _connect(connector, report):
        return
    report.name = "terminal"
    _check_terminal(connector, config, report)
    report.name = "broker_clock"
    _check_clock(connector, report)
    report.name = "market_hours"
    _check_market_hours(connector, config, report)
    report.name = "account_rules"
    _check_account_rules(connector, config, report)
    for symbol in config.symbols:
        report.name = f"symbol {symbol}"
        _check_symbol(connector, config, symbol, report)
    connector.shutdown()


def verdict(config: LiveConfig, connector: MT5Connector, failures: int) -> str:
    """The last line: what the trader can do as configured."""
    if failures:
        return f"{failures} problem(s) to fix before trading"
    if connector.backend == "sim" and config.backend == "auto":
        # auto fell back: the check says nothing about a broker, so "ready" would mislead
        return (
            "ready for a dry run on the built-in simulator only: no MT5 terminal was "
            "found, so no broker connection was checked"
        )
    if connector.backend == "sim":
        return "ready (built-in simulator: prices are simulated, nothing reaches a broker)"
    return "ready"


CONFIG_FIX = "correct that setting in .env or on the command line"


def print_config_error(
    error: ConfigError, out: Callable[[str], None] = print, *, as_json: bool = False
) -> None:
    """A settings error in the check's own format (the settings cannot be read); as JSON,
    the finding names the setting's key too."""
    result = "1 problem(s) to fix before trading"
    if as_json:
        finding = Finding("settings", "fail", str(error), CONFIG_FIX, setting_named(str(error)))
        out(document([finding], 2, result))
        return
    out("settings: cannot be read")
    out(f"  FAIL  {error}\n        fix: {CONFIG_FIX}")
    out(f"result: {result}")


def _check_strategy(config: LiveConfig, report: Report) -> None:
    if not config.strategy_path:
        report.warn("no strategy set (STRATEGY_PATH or --strategy); not checked")
        return
    try:
        strategy = get_strategy_from_file(config.strategy_path, config.strategy_param_pairs())
    except (StrategyError, ConfigError, ValueError, OSError) as exc:
        report.fail(f"strategy: {exc}", "fix the file or the --param values")
        return
    report.ok(f"strategy {strategy.label()}, warm-up {strategy.warmup} bars")


def _check_storage(config: LiveConfig, report: Report) -> None:
    folder = config.audit_db.parent
    _check_kill_switch(config, report)
    _report_holder(holder_of(database_lock_path(config.audit_db)), "this database", report)
    if not config.audit_db.exists():
        report.ok(f"audit database will be created at {config.audit_db}")
        if folder.exists() and not _writable(folder):
            report.fail(f"cannot write in {folder}", "choose AUDIT_DB in a writable folder")
        return
    key_file = config.audit_key_file or key_file_for(config.audit_db)
    try:
        broken = [c for c in AuditReader(config.audit_db).verify(_key(key_file)) if not c.ok]
    except ChainKeyError as exc:
        report.fail(str(exc), f"restore {key_file} from your backup, or set AUDIT_KEY_FILE")
        return
    if broken:
        report.fail(
            f"audit database {config.audit_db}: hash chain of {broken[0].table} "
            f"broken at row {broken[0].broken_id}",
            "keep the file as evidence and start a new AUDIT_DB; see docs/observability.md",
        )
    else:
        report.ok(f"audit database {config.audit_db}: hash chains intact (key {key_file})")


def _check_alerts(config: LiveConfig, report: Report) -> None:
    """Which channels the alerts go to (a webhook's URL may hold its key: not shown)."""
    channels = [f"Telegram (chat {config.telegram_chat_id})"] if config.telegram_bot_token else []
    channels += ["webhook"] if config.webhook_url else []
    if not channels:
        report.ok("alerts: none (set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID, or WEBHOOK_URL)")
        return
    report.ok(f"alerts: {', '.join(channels)}, at level {config.alert_min_level} and above")


def _key(path: Path) -> bytes | None:
    return load_key(path) if path.exists() else None


def _report_holder(holder: Holder | None, what: str, report: Report) -> None:
    if holder is not None:
        report.warn(
            f"a trader is running on {what}: {holder.text()}; a second one would be refused"
        )


def _check_kill_switch(config: LiveConfig, report: Report) -> None:
    if config.kill_switch_file.exists():
        report.warn(
            f"kill-switch file {config.kill_switch_file} exists: no new entries until it is removed"
        )


def _writable(folder: Any) -> bool:
    import os

    return os.access(folder, os.W_OK)


def _connect(connector: MT5Connector, report: Report) -> bool:
    try:
        connector.connect()
    except (BrokerError, ConfigError) as exc:
        text = str(exc)
        fix = next(
            (hint for key, hint in CONNECT_HINTS if key in text),
            "check that the terminal is running and logged in",
        )
        report.fail(f"connect ({connector.backend}): {text}", fix)
        return False
    report.ok(f"connected via {connector.backend}")
    return True


def _check_terminal(connector: MT5Connector, config: LiveConfig, report: Report) -> None:
    terminal, account = connector.terminal(), connector.account()
    report.ok(
        f"terminal {terminal.name} ({terminal.company}), build {terminal.build}, "
        f"{'connected to' if terminal.connected else 'NOT connected to'} the trade server"
    )
    if not terminal.connected:
        report.fail(
            "the terminal has no connection to the trade server",
            "check the internet connection and the server in the terminal",
        )
    if not terminal.trade_allowed:  # order_check refuses too, so dry runs are blocked as well
        report.fail(
            "Algo Trading is off in the terminal (order_check and order_send fail with 10027)",
            "press Algo Trading in the terminal's toolbar",
        )
    real = int(account.trade_mode) == ACCOUNT_TRADE_MODE_REAL
    report.ok(
        f"account {account.login} on {account.server}: {'REAL' if real else 'demo'}, "
        f"{account.currency} balance {account.balance:,.2f}, equity "
        f"{account.equity:,.2f}, leverage 1:{account.leverage}, "
        f"{'hedging' if int(account.margin_mode) == 2 else 'netting'}"
    )
    if needs_account_lock(dry_run=config.dry_run, backend=connector.backend):
        path = account_lock_path(
            config.lock_dir,
            login=int(account.login),
            server=account.server,
            magic=config.magic_number,
        )
        _report_holder(holder_of(path), f"this account with magic {config.magic_number}", report)
    if real and not config.dry_run and not config.allow_real_account:
        report.fail(
            "a REAL account and DRY_RUN=false: the trader will refuse to start",
            "use a demo account, run with --dry-run, or set ALLOW_REAL_ACCOUNT=true",
        )
    elif real:
        report.warn("this is a REAL account")


def _check_clock(connector: MT5Connector, report: Report) -> None:
    """The server's time zone and where it comes from (BROKER_TZ, or a tick for auto)."""
    clock = connector.clock
    try:
        text = f"broker clock: {clock.describe()}"
    except BrokerError as exc:  # UTC now is the simulator's clock, and it went away
        report.warn(f"broker clock: cannot read the market's time: {exc}")
        return
    if clock.disagreement:
        report.warn(f"{text}; {clock.disagreement}")
    elif not clock.resolved:
        report.warn(f"{text}; set BROKER_TZ (e.g. NY+7 or Europe/Athens) to be sure")
    else:
        report.ok(text)


def _check_market_hours(connector: MT5Connector, config: LiveConfig, report: Report) -> None:
    """Sessions now, the window rules in force and the next news blackout per symbol."""
    from backtest.trading_windows import symbol_currencies
    from live.market_hours import MarketHours

    try:
        now = datetime.fromtimestamp(connector.market_now(), tz=UTC)
        hours = MarketHours(
            config,
            zone=lambda: connector.clock.zone,
            currencies=lambda symbol: symbol_currencies(connector.symbol_spec(symbol)),
            now=lambda: now,
        )
    except ConfigError as exc:
        report.fail(str(exc), "fix the setting it names")
        return
    except BrokerError as exc:
        report.warn(f"market hours: cannot read the market's time: {exc}")
        return
    for symbol in config.symbols:
        state = "open" if hours.is_open(symbol, now) else "closed"
        report.ok(f"{symbol}: session {state} at {now:%Y-%m-%d %H:%M} UTC")
    rules = hours.rules
    if rules.active:
        described = rules.describe()
        shown = {k: v for k, v in described.items() if v not in (None, 0, 0.0, [], False, "")}
        report.ok("trading windows: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    for symbol in config.symbols:
        blackout = hours.next_blackout(symbol, now)
        if blackout is not None:
            report.ok(
                f"{symbol}: next news blackout {blackout['start'][:16]} to "
                f"{blackout['end'][:16]} UTC ({blackout['event']})"
            )
        elif rules.calendar is not None:
            report.ok(f"{symbol}: no news blackout to come in {config.calendar_file}")


def _check_account_rules(connector: MT5Connector, config: LiveConfig, report: Report) -> None:
    """Each ACCOUNT_RULES floor against the terminal's account now: where the trader acts,
    the firm's level, the distance and the next reset (the audit database's memory read,
    nothing written)."""
    if not config.account_rules:
        return
    from backtest.prop_rules import load_preset
    from live.account_guard import AccountGuard

    preset = load_preset(config.account_rules)
    reader = AuditReader(config.audit_db) if config.audit_db.is_file() else None
    try:
        now = datetime.fromtimestamp(connector.market_now(), tz=UTC)
        account = connector.account()
        guard = AccountGuard(
            preset,
            reader,
            record=None,
            zone=lambda: connector.clock.zone,
            now=lambda: now,
            account_size=config.account_size,
        )
        guard.check(float(account.balance), float(account.equity))
    except BrokerError as exc:
        report.warn(f"account rules: cannot read the account: {exc}")
        return
    report.ok(
        f"account rules {preset.name}: initial balance {guard.initial:,.2f}, equity "
        f"{float(account.equity):,.2f} (the terminal's account), buffer {preset.buffer_pct:g}%"
    )
    for floor in guard.floors:
        reset = f", resets {floor.next_reset:%Y-%m-%d %H:%M} UTC" if floor.next_reset else ""
        pct = 100.0 * floor.distance / guard.initial if guard.initial else 0.0
        line = (
            f"  {floor.rule}: stop at {floor.stop_at:,.2f} (firm's level {floor.level:,.2f}), "
            f"{floor.distance:,.2f} away ({pct:.2f}%){reset}"
        )
        (report.ok if floor.distance > 0 else report.warn)(line)
    if guard.breach is not None:
        report.warn(guard.breach.text())
    if preset.windows is not None and preset.windows.news and config.calendar_file is None:
        report.warn(
            f"account rules {preset.name} black out news, but CALENDAR_FILE is empty: "
            "no blackout applies"
        )


def _check_symbol(connector: MT5Connector, config: LiveConfig, symbol: str, report: Report) -> None:
    try:
        spec = connector.symbol_spec(symbol)
        tick = connector.tick(symbol)
    except BrokerError as exc:
        report.fail(
            f"{symbol}: {exc}",
            "use the broker's exact symbol name (suffixes like "
            "EURUSD.m count), as shown in Market Watch",
        )
        return
    filling = connector.filling_mode(symbol)
    age_min = (datetime.now(UTC).timestamp() - float(tick.time)) / 60
    report.ok(
        f"{symbol}: digits {spec.digits}, contract {spec.contract_size:g}, volume "
        f"{spec.volume_min:g}..{spec.volume_max:g} step {spec.volume_step:g}, stops level "
        f"{spec.stops_level} points, filling {FILLING_NAMES[filling]}, bid {tick.bid} "
        f"ask {tick.ask}"
        + ("" if connector.is_simulator else f", last quote {age_min:.0f} min ago")
    )
    request = build_order_request(
        symbol=symbol,
        side="buy",
        volume=spec.volume_min,
        price=float(tick.ask),
        spec=spec,
        magic=config.magic_number,
        comment="check",
        deviation=config.deviation_points,
        filling=filling,
    )
    try:
        connector.check_order(**request)
        report.ok(
            f"{symbol}: order_check of {spec.volume_min:g} lots with filling "
            f"{FILLING_NAMES[filling]} passes"
        )
    except BrokerError as exc:  # the message carries the return code and what it means
        if getattr(exc, "code", None) == 10018:  # a closed market now is no setup problem
            report.warn(f"{symbol}: {exc}")
        else:
            report.fail(f"{symbol}: {exc}")
